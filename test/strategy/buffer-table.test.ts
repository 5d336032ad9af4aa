import { describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { summaryFromLoads } from '../../src/plan/routing.js';
import { STRATEGIES } from '../../src/registry.js';
import { stackFigures, tableFigures, type BufferTable } from '../../src/strategy/buffer-table.js';
import type { Strategy } from '../../src/strategy/contract.js';

/** stackFigures: the step of L layers on one allocator, from their buffer tables (docs/design.md#memory). */
const config = layerConfig({ tokens: 60, hidden: 12, ffn: 20, experts: 4, topK: 2 });
const limits = { chunkBytes: Infinity };
const table = (s: Strategy, loads = [40, 30, 30, 20]) => s.bufferTable(config, summaryFromLoads(config, s.dropless, loads), limits);
const bytes = (t: BufferTable, names: string[]) => t.persistent.concat(t.step).filter((s) => names.includes(s.name)).reduce((a, s) => a + s.bytes, 0);

describe('stackFigures', () => {
  for (const strategy of STRATEGIES) {
    it(`${strategy.id}: one layer is the table's own figures`, () => {
      const t = table(strategy);
      const { byPhase: _, ...one } = tableFigures(t);
      const stack = stackFigures([t]);
      expect({ ...stack, held: undefined, peakLayer: undefined }).toEqual({ ...one, held: undefined, peakLayer: undefined });
      expect(stack.peakLayer).toBe(0);
    });

    it(`${strategy.id}: L equal layers hold L × (persistent, what forward leaves for backward), the kernel parameters once, and one layer's activation peak on top`, () => {
      const t = table(strategy);
      const one = tableFigures(t);
      const L = 4;
      const stack = stackFigures(Array.from({ length: L }, () => t));
      const params = bytes(t, ['kernelParams']);
      expect(params).toBeGreaterThan(0);
      expect(stack.baseline).toBe(L * (one.baseline - params) + params);
      // What forward leaves for backward: saved for backward, plus the output O its runner holds until released.
      const end = t.phases.indexOf(t.forwardEnd);
      const across = t.step.filter((s) => t.phases.indexOf(s.from) <= end && end < t.phases.indexOf(s.to));
      expect(across.filter((s) => s.tag !== 'activations-saved' && s.tag !== 'routing-metadata').map((s) => s.name)).toEqual(['O']);
      expect(stack.held).toEqual(Array(L).fill(one.savedForBackward + bytes(t, ['O'])));
      expect(stack.savedForBackward).toBe(L * one.savedForBackward);
      expect(stack.stepPeak).toBe(stack.baseline + (L - 1) * stack.held[0] + one.activationPeak);
      expect([stack.peakLayer, stack.peakPhase]).toEqual([L - 1, one.peakPhase]);
      // Without sharing the kernel context each layer has its own parameter arena.
      expect(stackFigures([t, t, t, t], []).baseline).toBe(L * one.baseline);
    });
  }

  it('layers of different sizes: the peak is the worst layer above what the layers before it hold', () => {
    const megablocks = STRATEGIES.find((s) => s.id === 'megablocks')!;
    const c = layerConfig({ tokens: 300, hidden: 12, ffn: 20, experts: 4, topK: 2 });
    const at = (loads: number[]) => megablocks.bufferTable(c, summaryFromLoads(c, true, loads), limits);
    // Bins padded to 128 rows: 4 × 256 rows against 3 × 128 + 256.
    const big = at([129, 157, 157, 157]);
    const small = at([128, 128, 128, 216]);
    const [b, s] = [tableFigures(big), tableFigures(small)];
    expect(b.activationPeak).toBeGreaterThan(s.activationPeak);
    const baseline = b.baseline + s.baseline - bytes(big, ['kernelParams']);
    const bigFirst = stackFigures([big, small]);
    const smallFirst = stackFigures([small, big]);
    expect(bigFirst.held[0]).toBeGreaterThan(smallFirst.held[0]);
    expect(bigFirst.stepPeak).toBe(baseline + Math.max(b.activationPeak, bigFirst.held[0] + s.activationPeak));
    expect(smallFirst.stepPeak).toBe(baseline + smallFirst.held[0] + b.activationPeak);
    expect(smallFirst.peakLayer).toBe(1);
  });

  it('refuses an empty stack', () => {
    expect(() => stackFigures([])).toThrow(/no layers/);
  });
});
