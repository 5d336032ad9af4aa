import { describe, expect, it } from 'vitest';
import { tableFigures } from '../../src/buffer-table.js';
import { findPreset, layerConfig, type LayerConfig } from '../../src/config.js';
import { UsageError } from '../../src/errors.js';
import { floatBytes, layerMemory, modelEstimate, optimizerBytesPerElement, specBytes } from '../../src/plan/memory.js';
import { evaluate, largestFitting, planModel, type PlanOptions } from '../../src/plan/model.js';
import { expectedRouting, routingModel, sampleRoutings, selectionProbabilities } from '../../src/plan/routing.js';
import { strategyTraffic } from '../../src/plan/traffic.js';
import { STRATEGIES, findStrategy } from '../../src/strategies/index.js';
import type { Strategy } from '../../src/strategy.js';

const SMALL = layerConfig({ tokens: 512, hidden: 64, ffn: 96, experts: 8, topK: 2 });
const GIB = 2 ** 30;

function options(config: LayerConfig, over: Partial<PlanOptions> = {}): PlanOptions {
  return { config, layers: 1, dtype: 'f32', optimizer: 'none', expertParallel: 1, memory: null, ...over };
}

function deepseek(): LayerConfig {
  const p = findPreset('deepseek-v3-like-layer');
  return layerConfig({ tokens: p.tokens, hidden: p.hidden[0], ffn: (p.ffn as number[])[0], experts: p.experts[0], topK: p.topK[0] });
}

function anyRouting(s: Strategy, c: LayerConfig) {
  return sampleRoutings(c, s.dropless, { ...routingModel(c), samples: 1 })[0];
}

describe('dtype scaling of the buffer tables', () => {
  const configs = [SMALL, layerConfig({ tokens: 300, hidden: 24, ffn: 40, experts: 6, topK: 3, activation: 'gelu', checkpoint: 'full', capacityFactor: 0 })];
  for (const s of STRATEGIES) {
    it(`${s.id}: every f32 spec's bytes follow from its shape, so rescaling by shape is sound`, () => {
      for (const c of configs) {
        const table = s.bufferTable(c, anyRouting(s, c), { chunkBytes: 8192 });
        for (const spec of [...table.persistent, ...table.step].filter((x) => x.dtype === 'f32')) {
          const elements = spec.shape.reduce((a, b) => a * b, 1);
          expect(spec.bytes, `${spec.name} [${spec.shape}]`).toBe(Math.max(4 * spec.chunks, elements * 4));
        }
      }
    });
  }

  it('f32 leaves the table as it is: the figures are tableFigures exactly', () => {
    for (const s of STRATEGIES) {
      const table = s.bufferTable(SMALL, anyRouting(s, SMALL), { chunkBytes: Infinity });
      const m = layerMemory(table, SMALL, 'f32');
      const f = tableFigures(table);
      expect([m.baseline, m.stepPeak, m.activationPeak, m.savedForBackward]).toEqual([f.baseline, f.stepPeak, f.activationPeak, f.savedForBackward]);
      expect(m.routerWeights + m.expertWeights + m.routerGradients + m.expertGradients + m.inputs).toBe(f.baseline);
    }
  });

  it('bf16 halves float tensors and keeps index tensors', () => {
    const s = findStrategy('zero-buffer');
    const table = s.bufferTable(SMALL, anyRouting(s, SMALL), { chunkBytes: Infinity });
    for (const spec of table.step) {
      const half = specBytes(spec, 'bf16');
      if (spec.dtype === 'f32') expect(half, spec.name).toBe(Math.max(4, Math.ceil(spec.bytes / 2 / 4) * 4));
      else expect(half, spec.name).toBe(spec.bytes);
    }
    const f32 = layerMemory(table, SMALL, 'f32');
    const bf16 = layerMemory(table, SMALL, 'bf16');
    expect(bf16.expertWeights).toBe(f32.expertWeights / 2);
    expect(bf16.expertWeightElements).toBe(f32.expertWeightElements);
    expect(bf16.savedForBackward).toBeLessThan(f32.savedForBackward);
    expect(bf16.savedForBackward).toBeGreaterThan(f32.savedForBackward / 2);
  });
});

describe('routing model', () => {
  it('uniform: p = k/E exactly; Zipf: seeded Monte-Carlo, Σp = k, hot low-numbered experts', () => {
    expect(selectionProbabilities(8, 2, { kind: 'uniform' }).selection).toEqual(new Array(8).fill(0.25));
    const a = selectionProbabilities(16, 4, { kind: 'zipf', s: 1.2 });
    const b = selectionProbabilities(16, 4, { kind: 'zipf', s: 1.2 });
    expect(a).toEqual(b);
    expect(a.method).toBe('monte-carlo');
    expect(a.selection.reduce((x, y) => x + y, 0)).toBeCloseTo(4, 10);
    expect(a.selection[0]).toBeGreaterThan(0.9);
    expect(a.selection[15]).toBeLessThan(a.selection[1]);
  });

  it('sampled loads average T·p; expected drops, capacity and padding follow the capacity and bin rules', () => {
    const c = layerConfig({ tokens: 4096, hidden: 8, ffn: 8, experts: 8, topK: 2, capacityFactor: 0 });
    const model = { ...routingModel(c), samples: 64 };
    const loads = sampleRoutings(c, true, model).map((s) => s.expertLoads.reduce((a, b) => a + b, 0));
    expect(loads.reduce((a, b) => a + b, 0) / loads.length).toBeCloseTo(8192, -2);
    const capacity = expectedRouting(c, false, model);
    expect(capacity.droppedPairs).toBe(0); // cf = 0 sizes every expert to the busiest
    expect(capacity.capacity).toBeGreaterThan(1024);
    expect(capacity.capacity).toBeLessThan(1024 * 1.15);
    // 64 expected pairs per expert never spill past one 128-row bin.
    const c64 = { ...c, tokens: 256 };
    expect(expectedRouting(c64, true, model).paddedRows).toBe(8 * 128);
    const cf1 = { ...c, capacityFactor: 1 };
    const drops = expectedRouting(cf1, false, model);
    expect(drops.capacity).toBe(1024);
    expect(drops.droppedFraction).toBeGreaterThan(0);
    expect(drops.droppedFraction).toBeLessThan(0.05);
  });
});

describe('model estimate', () => {
  it('optimizer state: adam 8 B (+4 master at 16 bits), sgd 4 B (+4), none 0', () => {
    expect(optimizerBytesPerElement('adam', 'f32')).toBe(8);
    expect(optimizerBytesPerElement('adam', 'bf16')).toBe(12);
    expect(optimizerBytesPerElement('sgd', 'f16')).toBe(8);
    expect(optimizerBytesPerElement('none', 'bf16')).toBe(0);
  });

  it('one layer with no optimizer is the table\'s step peak; each extra layer adds its weights, state, saved and input', () => {
    for (const s of STRATEGIES) {
      const one = evaluate(s, SMALL, SMALL.tokens, options(SMALL), routingModel(SMALL));
      expect(one.estimate.total, s.id).toBe(one.layer.stepPeak);
      const m = one.layer;
      const o = options(SMALL, { optimizer: 'adam', dtype: 'f32' });
      const perLayer = modelEstimate(m, SMALL, { ...o, layers: 3 }).total - modelEstimate(m, SMALL, { ...o, layers: 2 }).total;
      const weights = m.routerWeights + m.expertWeights;
      expect(perLayer).toBe(2 * weights + 8 * (m.routerWeightElements + m.expertWeightElements) + m.savedForBackward + SMALL.tokens * SMALL.hidden * 4);
    }
  });

  it('expert parallelism: E/N experts per GPU, router replicated, four all-to-alls of (N−1)/N of the rows', () => {
    const N = 4;
    const plan = planModel(options(SMALL, { expertParallel: N }));
    const single = planModel(options(SMALL));
    const R = SMALL.tokens * SMALL.topK;
    for (const [i, p] of plan.strategies.entries()) {
      const m = p.layer;
      expect(p.estimate.weights).toBe(m.routerWeights + m.expertWeights / N);
      const a = p.allToAll!;
      const rows = p.dropless ? R : SMALL.experts * p.routing.capacity!;
      expect(a.rowsPerGpu).toBeCloseTo(p.dropless ? R - p.routing.droppedPairs : rows, 6);
      expect(a.bytes.total).toBe(4 * a.bytes.dispatchForward);
      expect(a.bytes.dispatchForward).toBe(Math.round((a.rowsPerGpu * (N - 1) * SMALL.hidden * 4) / N));
      expect(a.meanReceivedRows).toBeCloseTo(((N - 1) * a.rowsPerGpu) / N, 6);
      // Zero-buffer gathers from X, so under EP it keeps the received rows; the others save them anyway.
      const extraSaved = p.estimate.saved - single.strategies[i].estimate.saved;
      expect(extraSaved, p.strategy).toBe(p.strategy === 'zero-buffer' ? R * SMALL.hidden * 4 : 0);
    }
    expect(() => planModel(options(SMALL, { expertParallel: 3 }))).toThrow(UsageError);
  });

  it('largestFitting finds the boundary of a monotone predicate, and 0 when nothing fits', () => {
    for (const limit of [1, 2, 3, 1000, 123457]) expect(largestFitting((t) => t <= limit)).toBe(limit);
    expect(largestFitting(() => false)).toBe(0);
    expect(largestFitting(() => true, 1024)).toBe(1024);
  });

  it('DeepSeek-V3-like layer, bf16, 80 GiB: a largest micro-batch per strategy, zero-buffer\'s the largest, each on the fit boundary', () => {
    const c = deepseek();
    const o = options(c, { dtype: 'bf16', memory: 80 * GIB });
    const plan = planModel(o);
    const model = routingModel(c);
    const zb = plan.strategies.find((p) => p.strategy === 'zero-buffer')!;
    for (const p of plan.strategies) {
      expect(Number.isInteger(p.largestTokens) && p.largestTokens! > 0, p.strategy).toBe(true);
      expect(zb.largestTokens!, p.strategy).toBeGreaterThanOrEqual(p.largestTokens!);
      expect(p.atLargest!.estimate.total).toBeLessThanOrEqual(80 * GIB);
      const s = findStrategy(p.strategy);
      expect(evaluate(s, c, p.largestTokens! + 1, o, model).estimate.total, p.strategy).toBeGreaterThan(80 * GIB);
    }
    // Adam for 32 layers of 256 experts does not fit one GPU at any batch.
    const adam = planModel({ ...o, layers: 32, optimizer: 'adam' });
    expect(adam.strategies.every((p) => p.largestTokens === 0)).toBe(true);
  });
});

describe('traffic estimate', () => {
  it('sums per pass and uses the kernel model for known strategies, the table for others', () => {
    const routing = expectedRouting(SMALL, true, routingModel(SMALL));
    for (const s of STRATEGIES) {
      const t = strategyTraffic(s.id, SMALL, 'f32', expectedRouting(SMALL, s.dropless, routingModel(SMALL)), s.bufferTable(SMALL, anyRouting(s, SMALL), { chunkBytes: Infinity }));
      expect(t.basis).toBe('kernel model');
      expect(t.forward + t.backward).toBe(t.total);
      expect(t.kernels.every((k) => k.read >= 0 && k.written >= 0)).toBe(true);
    }
    const zb = findStrategy('zero-buffer');
    const fallback = strategyTraffic('someone-elses', SMALL, 'bf16', routing, zb.bufferTable(SMALL, anyRouting(zb, SMALL), { chunkBytes: Infinity }));
    expect(fallback.basis).toBe('buffer table (fallback)');
    expect(fallback.total).toBeGreaterThan(0);
    expect(floatBytes('bf16')).toBe(2);
  });
});
