import { describe, expect, it } from 'vitest';
import { DEFAULT_TRAIN, moeConfig, trainConfig } from '../../src/train/model.js';
import type { StrategyTraining, TrainResult } from '../../src/train/run.js';
import { coincidingRuns, formatLoss, gap, renderTrainHtml, renderTrainSummary, stackLines, trainChartSvg } from '../../src/render/train.js';
import type { StackMemory } from '../../src/train/stack.js';

function run(strategy: string, losses: number[]): StrategyTraining {
  const steps = losses.map((loss, step) => ({ step, loss, mse: loss, aux: 0, ms: 1, peakBytes: 1024, stepPeakBytes: 1024, tablePeakBytes: 1024, pairs: 16, droppedPairs: 0 }));
  return { strategy, steps, firstLoss: losses[0], finalLoss: losses.at(-1)!, reduction: losses[0] / losses.at(-1)!, tokensPerSecond: 1000, peakBytes: 1024, peakByTag: {}, expertLoads: [3, 5], expertLoadsByLayer: [[3, 5]], wallSeconds: 1 };
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

  it('the L-layer memory: measured peak against the buffer tables, bench and plan, with signed gaps', () => {
    const memory: StackMemory = { layers: 4, baseline: 600_000, stepPeak: 970_192, tablePeak: 970_192, peakLayer: 4, peakPhase: 'input-grad', activationPeak: 333_264, benchEstimate: 308_688, moePeak: 927_184, planEstimate: 878_032 };
    expect(gap(1024, 2048)).toBe('-1.00 KiB (-50.0%)');
    expect(gap(3072, 2048)).toBe('+1.00 KiB (+50.0%)');
    expect(stackLines(memory)).toEqual([
      '4-layer step: peak 947 KiB, as the buffer tables predict (layer 4 of 4, phase input-grad)',
      "activation peak 325 KiB vs bench's estimate 301 KiB: +24.0 KiB (+8.0%)",
      "MoE part 905 KiB vs plan's estimate (Adam) 857 KiB: +48.0 KiB (+5.6%)",
    ]);
    expect(stackLines({ ...memory, tablePeak: 970_000 })[0]).toBe('4-layer step: peak 947 KiB, the buffer tables predict 947 KiB (layer 4 of 4, phase input-grad)');
    const withMemory: TrainResult = { ...result, config: { ...result.config, layers: 4 }, runs: result.runs.map((r) => ({ ...r, memory })) };
    const text = renderTrainSummary(withMemory);
    expect(text).toContain('d_out=8 L=4,');
    expect(text).toContain('  4-layer step: peak 947 KiB');
    expect(text).toContain('fresh batch; layer 1 of 4; --json has every layer\'s)');
    expect(text).toMatch(/memory: bench's L × saved \+ transient and plan's model free each layer's output/);
    const html = renderTrainHtml(withMemory);
    expect(html).toContain('<h2>Memory of the 4-layer step</h2>');
    expect(html).toContain('<td>+24.0 KiB (+8.0%)</td>');
    // Results without the memory figures (train.json from before --layers) render without the section.
    expect(renderTrainHtml(result)).not.toContain('Memory of the');
  });
});
