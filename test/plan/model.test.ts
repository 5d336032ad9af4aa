import { describe, expect, it } from 'vitest';
import { tableFigures, type BufferSpec } from '../../src/strategy/buffer-table.js';
import { findPreset, layerConfig, type LayerConfig } from '../../src/config.js';
import { UsageError } from '../../src/errors.js';
import { floatBytes } from '../../src/f16.js';
import { layerMemory, modelEstimate, optimizerBytesPerElement } from '../../src/plan/memory.js';
import { evaluate, largestFitting, planModel, type PlanOptions } from '../../src/plan/model.js';
import { expectedRouting, routingModel, sampleRoutings, selectionProbabilities } from '../../src/plan/routing.js';
import { STRATEGIES, findStrategy } from '../../src/registry.js';
import type { Strategy } from '../../src/strategy/contract.js';

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

describe('buffer tables at the planning dtype', () => {
  const configs = [SMALL, layerConfig({ tokens: 300, hidden: 24, ffn: 40, experts: 6, topK: 3, activation: 'gelu', checkpoint: 'full', capacityFactor: 0 })];
  const f16Ready = STRATEGIES.filter((s) => s.unsupported({ ...SMALL, dtype: 'f16' }) === null);

  it('f32 leaves the table as it is: the figures are tableFigures exactly', () => {
    for (const s of STRATEGIES) {
      const table = s.bufferTable(SMALL, anyRouting(s, SMALL), { chunkBytes: Infinity });
      const m = layerMemory(table, SMALL);
      const f = tableFigures(table);
      expect([m.baseline, m.stepPeak, m.activationPeak, m.savedForBackward]).toEqual([f.baseline, f.stepPeak, f.activationPeak, f.savedForBackward]);
      expect(m.routerWeights + m.expertWeights + m.routerGradients + m.expertGradients + m.inputs).toBe(f.baseline);
    }
  });

  it('f16 tables, spec by spec against f32: f16 tensors at 2 bytes an element, router state f32 and indices as at f32', () => {
    expect(f16Ready.map((s) => s.id)).toContain('zero-buffer');
    for (const s of f16Ready) {
      for (const c of configs) {
        const routing = anyRouting(s, c);
        const wide = s.bufferTable(c, routing, { chunkBytes: 8192 });
        const half = s.bufferTable({ ...c, dtype: 'f16' }, routing, { chunkBytes: 8192 });
        // A buffer is its name and first phase (zero-buffer's recomputed a, b reuse names).
        const key = (x: BufferSpec) => `${x.name}@${x.from}`;
        const atF32 = new Map([...wide.persistent, ...wide.step].map((x) => [key(x), x]));
        for (const h of [...half.persistent, ...half.step]) {
          const w = atF32.get(key(h));
          const what = `${s.id} ${h.name} [${h.shape}]`;
          const elements = h.shape.reduce((a, b) => a * b, 1);
          // Shapes may differ (scratch blocks sized in bytes); a 16-bit buffer was a float one at f32.
          if (h.dtype === 'f16') {
            if (w) expect(w.dtype, what).toBe('f32');
            // Each chunk is rounded up to whole 4-byte words, as the allocator does.
            expect(h.bytes, what).toBeGreaterThanOrEqual(elements * 2);
            expect(h.bytes, what).toBeLessThanOrEqual(elements * 2 + 2 * h.chunks);
          } else if (w) {
            expect(h.dtype, what).toBe(w.dtype);
            if (h.shape.join() === w.shape.join()) expect(h.bytes, what).toBe(w.bytes);
          }
        }
        // The router's softmax state stays f32: a rescaling of every f32 spec would have halved it.
        expect(half.step.filter((x) => x.dtype === 'f32').length, s.id).toBeGreaterThan(0);
      }
    }
  });

  it('f16 halves the weights and keeps their element count; saved lies between half and all of f32\'s', () => {
    for (const s of f16Ready) {
      const routing = anyRouting(s, SMALL);
      const f32 = layerMemory(s.bufferTable(SMALL, routing, { chunkBytes: Infinity }), SMALL);
      const f16Config = { ...SMALL, dtype: 'f16' as const };
      const f16 = layerMemory(s.bufferTable(f16Config, routing, { chunkBytes: Infinity }), f16Config);
      expect(f16.expertWeights, s.id).toBe(f32.expertWeights / 2);
      expect(f16.expertWeightElements, s.id).toBe(f32.expertWeightElements);
      expect(f16.savedForBackward, s.id).toBeLessThan(f32.savedForBackward);
      expect(f16.savedForBackward, s.id).toBeGreaterThan(f32.savedForBackward / 2);
    }
  });

  it('plan at f16 and bf16 sums the f16 tables as declared; bf16 is f16\'s sizes', () => {
    const model = { ...routingModel(SMALL), samples: 1 };
    const f16 = planModel(options(SMALL, { dtype: 'f16', samples: 1 }));
    const bf16 = planModel(options(SMALL, { dtype: 'bf16', samples: 1 }));
    for (const [i, p] of f16.strategies.entries()) {
      const s = findStrategy(p.strategy);
      const c = { ...SMALL, dtype: 'f16' as const };
      const table = s.bufferTable(c, sampleRoutings(c, s.dropless, model)[0], { chunkBytes: Infinity });
      expect(p.layer, s.id).toEqual(layerMemory(table, c));
      expect(p.unsupported, s.id).toBe(s.unsupported(c));
      expect(bf16.strategies[i].estimate, s.id).toEqual(p.estimate);
    }
    expect(bf16.assumptions.join('\n')).toMatch(/bf16: modelled only/);
    expect(f16.assumptions.join('\n')).toMatch(/shader-f16/);
    expect(f16.assumptions.join('\n')).not.toMatch(/computes in f32/);
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
    const capacity = expectedRouting(c, findStrategy('tutel'), model);
    expect(capacity.droppedPairs).toBe(0); // cf = 0 sizes every expert to the busiest
    expect(capacity.capacity).toBeGreaterThan(1024);
    expect(capacity.capacity).toBeLessThan(1024 * 1.15);
    // 64 expected pairs per expert never spill past one 128-row bin.
    const c64 = { ...c, tokens: 256 };
    expect(expectedRouting(c64, findStrategy('megablocks'), model).paddedRows).toBe(8 * 128);
    expect(expectedRouting(c64, findStrategy('megablocks'), model).paddingFraction).toBe(1024 / 512 - 1);
    expect(expectedRouting(c64, findStrategy('zero-buffer'), model)).toMatchObject({ paddedRows: 512, paddingFraction: 0 });
    const cf1 = { ...c, capacityFactor: 1 };
    const drops = expectedRouting(cf1, findStrategy('tutel'), model);
    expect(drops.capacity).toBe(1024);
    expect(drops.droppedFraction).toBeGreaterThan(0);
    expect(drops.droppedFraction).toBeLessThan(0.05);
  });
});

describe('balanced routing (docs/design.md#balanced-routing): exact loads, nothing sampled', () => {
  it('T·k/E a multiple of 128: every strategy\'s loads are exact, with no padding, no drops and no empty slot', () => {
    const c = layerConfig({ tokens: 512, hidden: 64, ffn: 96, experts: 8, topK: 2, routing: 'balanced' });
    const model = routingModel(c);
    expect([model.method, model.samples]).toEqual(['balanced', 1]);
    for (const cf of [0, 1]) {
      const plan = planModel(options({ ...c, capacityFactor: cf }));
      expect(plan.settings.routing).toBe('balanced');
      expect(plan.routingModel.selectionTokens).toBeNull();
      for (const p of plan.strategies) {
        const r = p.routing;
        expect(r.expertLoads, p.strategy).toEqual(new Array(8).fill(128));
        expect([r.samples, r.maxLoad, r.droppedPairs, r.paddedRows, r.paddingFraction], p.strategy).toEqual([1, 128, 0, 1024, 0]);
        // cf = 0 sizes every expert to the busiest, here every expert: E·C = R.
        expect(r.capacity, p.strategy).toBe(p.dropless ? null : cf === 0 ? 128 : 2 * Math.ceil(512 / 8));
      }
    }
  });

  it('E not dividing T·k: the remainder on the lowest experts, padded bins and expert-parallel traffic from the exact loads', () => {
    const c = layerConfig({ tokens: 300, hidden: 16, ffn: 16, experts: 8, topK: 3, routing: 'balanced' });
    const loads = [113, 113, 113, 113, 112, 112, 112, 112]; // 900 = 8·112 + 4
    const megablocks = planModel(options(c, { strategies: [findStrategy('megablocks')], expertParallel: 2 })).strategies[0];
    expect(megablocks.routing.expertLoads).toEqual(loads);
    expect(megablocks.routing.paddedRows).toBe(8 * 128);
    // GPU 0 owns experts 0–3 (452 pairs), GPU 1 experts 4–7 (448); each receives from the other.
    expect(megablocks.allToAll!.maxReceivedRows).toBe(452);
    expect(megablocks.allToAll!.meanReceivedRows).toBe(450);
    const tutel = planModel(options({ ...c, capacityFactor: 0 }, { strategies: [findStrategy('tutel')] })).strategies[0];
    expect([tutel.routing.capacity, tutel.routing.droppedPairs, tutel.routing.maxLoad]).toEqual([113, 0, 113]);
    // A larger T is another exact routing, not a rescaled one (the largest-micro-batch search evaluates many).
    expect(evaluate(findStrategy('megablocks'), c, 301, options(c), routingModel(c)).routing.expertLoads).toEqual([113, 113, 113, 113, 113, 113, 113, 112]);
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

  it('at 16 bits, only weights the table stores at 16 bits get an f32 master copy', () => {
    for (const s of STRATEGIES.filter((x) => x.unsupported({ ...SMALL, dtype: 'f16' }) === null)) {
      const o = options(SMALL, { optimizer: 'adam', dtype: 'f16', layers: 2 });
      const m = evaluate(s, SMALL, SMALL.tokens, o, routingModel(SMALL)).layer;
      expect(m.expertHalfWeightElements, s.id).toBe(m.expertWeightElements);
      expect(m.routerHalfWeightElements === 0 || m.routerHalfWeightElements === m.routerWeightElements, s.id).toBe(true);
      const all = m.routerWeightElements + m.expertWeightElements;
      expect(modelEstimate(m, SMALL, o).optimizer, s.id).toBe(2 * (8 * all + 4 * (m.routerHalfWeightElements + m.expertHalfWeightElements)));
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
      // Zero-buffer and ScatterMoE gather from X, so under EP they keep the received rows; the others save them anyway.
      const extraSaved = p.estimate.saved - single.strategies[i].estimate.saved;
      expect(extraSaved, p.strategy).toBe(p.strategy === 'zero-buffer' || p.strategy === 'scattermoe' ? R * SMALL.hidden * 4 : 0);
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
  it('is the strategy\'s own work entries (Strategy.work), summed per pass and averaged over the sampled routings', () => {
    const model = routingModel(SMALL);
    const limits = { chunkBytes: Infinity };
    for (const s of STRATEGIES) {
      const t = planModel(options(SMALL, { strategies: [s] })).strategies[0].traffic;
      const samples = sampleRoutings(SMALL, s.dropless, model);
      const runs = samples.map((r) => s.work(SMALL, r, limits));
      const mean = (pass: 'forward' | 'backward') => runs.reduce((a, run) => a + run.filter((w) => w.pass === pass).reduce((b, w) => b + w.bytes, 0), 0) / runs.length;
      expect(t.forward, s.id).toBeCloseTo(mean('forward'), 3);
      expect(t.backward, s.id).toBeCloseTo(mean('backward'), 3);
      expect(t.total, s.id).toBe(t.forward + t.backward);
      expect(t.kernels.reduce((a, w) => a + w.bytes, 0), s.id).toBeCloseTo(t.total, 3);
      // One routing: exactly that routing's entries.
      const one = planModel(options(SMALL, { strategies: [s], samples: 1 })).strategies[0].traffic;
      expect(one.kernels, s.id).toEqual(s.work(SMALL, sampleRoutings(SMALL, s.dropless, { ...model, samples: 1 })[0], limits));
    }
  });

  it('follows what zero-buffer runs: scratch-row blocks at DeepSeek-V3-like shapes (T/E < 256), slot passes that read W2 k times otherwise', () => {
    const zb = findStrategy('zero-buffer');
    const names = (c: LayerConfig) => planModel(options(c, { strategies: [zb], samples: 1 })).strategies[0].traffic.kernels.map((w) => w.kernel);
    expect(names(deepseek())).toContain('row-reduce');
    expect(names(deepseek())).toContain('expert-down-combine-swiglu-rows');
    const slots = layerConfig({ tokens: 4096, hidden: 64, ffn: 96, experts: 8, topK: 2 });
    expect(names(slots)).not.toContain('row-reduce');
    const combine = planModel(options(slots, { strategies: [zb], samples: 1 })).strategies[0].traffic.kernels.find((w) => w.kernel === 'expert-down-combine-swiglu')!;
    const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = slots;
    // 2 slot passes: a and b, the row tokens and gates, W2 twice, O written twice and read once.
    expect(combine.bytes).toBe(4 * (2 * T * k * h + 2 * T * k + k * E * h * d + (2 * k - 1) * T * d));
  });

  it('at 16 bits, token rows move at 2 bytes and router state (probabilities, gates) at 4', () => {
    const { tokens: T, hidden: d, experts: E, topK: k } = SMALL;
    const zb = findStrategy('zero-buffer');
    const router = (dtype: 'f32' | 'f16' | 'bf16') => planModel(options(SMALL, { strategies: [zb], dtype, samples: 1 })).strategies[0].traffic.kernels.filter((w) => w.phase === 'router');
    expect(router('f16').map((w) => w.bytes)).toEqual([T * d * 2 + (d * E + T * E) * 4, (2 * T * E + 2 * T * k) * 4]);
    expect(router('f32')[0].bytes).toBe(T * d * 4 + (d * E + T * E) * 4);
    expect(router('bf16')).toEqual(router('f16'));
    expect(floatBytes('bf16')).toBe(2);
  });
});
