import { describe, expect, it } from 'vitest';
import { DEFAULT_TRAIN, moeConfig, trainConfig } from '../../src/train/model.js';
import type { StrategyTraining, TrainResult } from '../../src/train/run.js';
import { coincidingRuns, formatLoss, renderTrainHtml, renderTrainSummary, trainChartSvg } from '../../src/render/train.js';

function run(strategy: string, losses: number[]): StrategyTraining {
  const steps = losses.map((loss, step) => ({ step, loss, mse: loss, aux: 0, ms: 1, peakBytes: 1024 }));
  return { strategy, steps, firstLoss: losses[0], finalLoss: losses.at(-1)!, reduction: losses[0] / losses.at(-1)!, tokensPerSecond: 1000, peakBytes: 1024, peakByTag: {}, expertLoads: [3, 5], wallSeconds: 1 };
}

const curve = [2.8, 1.2, 0.5, 0.2];
const result: TrainResult = {
  config: { ...DEFAULT_TRAIN, steps: 4 },
  lossScale: 1,
  runs: [run('zero-buffer', curve), run('megablocks', curve.map((l) => l * (1 + 1e-9))), run('tutel', [2.8, 1.3, 0.7, 0.4])],
};

describe('train rendering', () => {
  it('finds the curves that coincide and says so', () => {
    expect(coincidingRuns(result)).toEqual([['zero-buffer', 'megablocks']]);
    const text = renderTrainSummary(result);
    expect(text).toMatch(/note: zero-buffer and megablocks: the same loss at every step/);
    expect(text).toMatch(/capacity factor 0 \(no drops\)/);
    expect(renderTrainHtml(result)).toMatch(/class="note">Note: zero-buffer and megablocks/);
  });

  it('draws coinciding curves wide-to-narrow and dashed, so each one shows; the log axis says log', () => {
    const svg = trainChartSvg(result);
    const lines = [...svg.matchAll(/<polyline [^>]*stroke="([^"]+)" stroke-width="([\d.]+)"( stroke-dasharray="[^"]+")?/g)];
    expect(lines).toHaveLength(3);
    const [zb, mb] = lines;
    expect(Number(zb[2])).toBeGreaterThan(Number(mb[2]));
    expect(zb[3]).toBeUndefined();
    expect(mb[3]).toBeDefined();
    expect(svg).toMatch(/loss \(MSE \+ aux\), log scale/);
  });

  it('prints losses in one notation across 0.01', () => {
    expect(formatLoss(0.01)).toBe('0.01000');
    expect(formatLoss(0.009998)).toBe('0.009998');
    expect(formatLoss(2.808)).toBe('2.808');
  });

  it('--capacity-factor reaches the student layer, never the teacher', () => {
    const c = trainConfig({ capacityFactor: 1.25 });
    expect(moeConfig(c).capacityFactor).toBe(1.25);
    expect(moeConfig(trainConfig({})).capacityFactor).toBe(0);
    expect(() => trainConfig({ capacityFactor: -1 })).toThrow(/--capacity-factor/);
  });
});
