import { describe, expect, it } from 'vitest';
import { tutel } from '../baselines/capacity/tutel.js';
import { capacityOf, currentNames, DEFAULT_LAYER, layerConfig } from '../src/config.js';
import { summaryFromLoads } from '../src/plan/routing.js';
import { routeReference, toFloat64 } from '../src/reference/index.js';
import { generateInputs } from '../src/rng.js';

describe('capacityOf: the capacity rule (docs/design.md#capacity-and-drops)', () => {
  const shape = { tokens: 65, experts: 8, topK: 2 };

  it('cf > 0: C = k·⌊cf·⌈T/E⌉⌋, whatever the routing', () => {
    // ⌈65/8⌉ = 9
    expect(capacityOf({ ...shape, capacityFactor: 1 })).toBe(18);
    expect(capacityOf({ ...shape, capacityFactor: 1.25 })).toBe(2 * 11);
    expect(capacityOf({ ...shape, capacityFactor: 1.25 }, [40, 30, 20, 10, 10, 10, 5, 5])).toBe(22);
    // A factor too small for one slot gives none: every pair is dropped.
    expect(capacityOf({ ...shape, capacityFactor: 0.1 }, [40, 30, 20, 10, 10, 10, 5, 5])).toBe(0);
  });

  it('cf = 0 with routing: the busiest expert load', () => {
    expect(capacityOf({ ...shape, capacityFactor: 0 }, [3, 41, 0, 17, 20, 19, 20, 10])).toBe(41);
    expect(capacityOf({ ...shape, capacityFactor: 0 }, Int32Array.from([7, 0, 0, 0, 0, 0, 0, 123]))).toBe(123);
  });

  it('cf = 0 without routing: the uniform share ⌈T·k/E⌉', () => {
    for (const loads of [undefined, null, []]) expect(capacityOf({ ...shape, capacityFactor: 0 }, loads)).toBe(17);
    expect(capacityOf({ tokens: 64, experts: 8, topK: 2, capacityFactor: 0 })).toBe(16);
  });

  it('is what the planner, the float64 reference and the capacity strategies\' tables use', () => {
    for (const capacityFactor of [0, 0.5, 1.25]) {
      const c = layerConfig({ tokens: 48, hidden: 8, ffn: 12, experts: 4, topK: 2, capacityFactor, skew: { kind: 'zipf', s: 1 } });
      const inputs = toFloat64(generateInputs(c));
      const routing = routeReference(c, inputs.X, inputs.Wr, { capacity: true });
      const loads = Array.from(routing.expertLoad);
      expect(routing.capacity, `reference, cf ${capacityFactor}`).toBe(capacityOf(c, loads));
      const summary = summaryFromLoads(c, false, loads);
      expect(summary.capacity, `plan, cf ${capacityFactor}`).toBe(capacityOf(c, loads));
      const dispatched = tutel.bufferTable(c, summary, { chunkBytes: 1 << 30 }).step.find((s) => s.name === 'dispatched')!;
      expect(dispatched.shape, `tutel's table, cf ${capacityFactor}`).toEqual([c.experts, capacityOf(c, loads), c.hidden]);
    }
  });
});

describe('layer options: the CLI\'s names, and the 0.1 names mapped in one place', () => {
  it('maps each deprecated name to the current one; the current one wins when both are given', () => {
    expect(currentNames({ numExperts: 4, dispatch: 'tutel', auxLossCoef: 0.2, topK: 1 })).toEqual({ experts: 4, impl: 'tutel', auxLoss: 0.2, topK: 1 });
    expect(currentNames({ strategies: ['gshard'], tolerance: 1e-3 })).toEqual({ impl: ['gshard'], tolerance: 1e-3 });
    expect(currentNames({ experts: 8, numExperts: 4, auxLoss: 0, auxLossCoef: 1 })).toEqual({ experts: 8, auxLoss: 0 });
  });

  it('layerConfig takes auxLoss (the flag is --aux-loss), and auxLossCoef and numExperts for one more version', () => {
    expect(layerConfig({ auxLoss: 0.01 })).toEqual({ ...DEFAULT_LAYER, auxLoss: 0.01 });
    expect(layerConfig({ auxLossCoef: 0.01, numExperts: 4 })).toEqual({ ...DEFAULT_LAYER, auxLoss: 0.01, experts: 4 });
    expect(() => layerConfig({ auxLossCoef: -1 })).toThrow(/^--aux-loss: -1 is not allowed/);
  });

  it('layerConfig: undefined fields take their default, other keys are not copied', () => {
    const config = layerConfig({ topK: 1, normalizeGates: undefined, seed: undefined, impl: 'tutel', memoryLimit: 5 } as Parameters<typeof layerConfig>[0]);
    expect(config).toEqual({ ...DEFAULT_LAYER, topK: 1, normalizeGates: false });
  });
});

describe('capacity factors beyond any use are refused (issue 28, items 6 and 8)', () => {
  it('cf > E: a usage error naming the limit, before any buffer is sized', () => {
    expect(() => layerConfig({ experts: 4, capacityFactor: 2147483648 })).toThrow(/^--capacity-factor: 2147483648 is more than --experts 4: at cf = E every expert already has a slot for every token .*; use 0\.\.4$/);
    expect(() => layerConfig({ experts: 8, capacityFactor: 9007199254740993 })).toThrow(/use 0\.\.8$/);
    // At cf = E every token fits: C ≥ k·T.
    const c = layerConfig({ tokens: 65, experts: 8, topK: 2, capacityFactor: 8 });
    expect(capacityOf(c)).toBeGreaterThanOrEqual(c.topK * c.tokens);
  });
});
