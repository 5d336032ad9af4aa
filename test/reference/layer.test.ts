import { describe, expect, it } from 'vitest';
import { layerConfig, type LayerConfig } from '../../src/config.js';
import { compareTensors } from '../../src/reference/compare.js';
import { gelu, silu } from '../../src/reference/erf.js';
import { referenceStep, toFloat64, type ReferenceInputs, type ReferenceResult } from '../../src/reference/layer.js';
import type { RouteOptions } from '../../src/reference/routing.js';
import { generateInputs } from '../../src/rng.js';

const TINY = { tokens: 5, hidden: 3, ffn: 4, experts: 3, topK: 2 };
const STEP = 1e-5;

/** The scalar whose gradient referenceStep returns: ⟨O, dO⟩ + L_aux. */
function objective(r: ReferenceResult, dO: Float64Array): number {
  let sum = r.auxLoss ?? 0;
  for (let i = 0; i < dO.length; i++) sum += r.O[i] * dO[i];
  return sum;
}

type Param = 'X' | 'Wr' | 'W1' | 'W2' | 'W3';
const GRAD: Record<Param, 'dX' | 'dWr' | 'dW1' | 'dW2' | 'dW3'> = { X: 'dX', Wr: 'dWr', W1: 'dW1', W2: 'dW2', W3: 'dW3' };

/**
 * Central differences of the objective for every element of every input. Each perturbed step
 * must route exactly like the base step (same experts, same drops): a flip inside the
 * difference would make the finite difference meaningless, so it fails loudly instead.
 */
function checkGradients(config: LayerConfig, options: RouteOptions = {}, inputs = toFloat64(generateInputs(config))) {
  const base = referenceStep(config, inputs, options);
  const sameRouting = (r: ReferenceResult) =>
    r.routing.experts.every((e, i) => e === base.routing.experts[i]) && r.routing.kept.every((v, i) => v === base.routing.kept[i]);
  const params: Param[] = config.activation === 'swiglu' ? ['X', 'Wr', 'W1', 'W2', 'W3'] : ['X', 'Wr', 'W1', 'W2'];
  const errors: Record<string, number> = {};
  for (const name of params) {
    const data = inputs[name] as Float64Array;
    const fd = new Float64Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const saved = data[i];
      data[i] = saved + STEP;
      const plus = referenceStep(config, inputs, options);
      data[i] = saved - STEP;
      const minus = referenceStep(config, inputs, options);
      data[i] = saved;
      expect(sameRouting(plus) && sameRouting(minus), `${name}[${i}] flips the routing; pick another seed`).toBe(true);
      fd[i] = (objective(plus, inputs.dO) - objective(minus, inputs.dO)) / (2 * STEP);
    }
    const analytic = base[GRAD[name]] as Float64Array;
    if (analytic.every((v) => v === 0)) {
      // dWr with E = 1: exactly zero analytically, round-off only in the differences.
      errors[name] = 0;
      for (const v of fd) expect(Math.abs(v)).toBeLessThan(1e-9);
    } else {
      errors[name] = compareTensors(analytic, fd).relError;
    }
  }
  for (const [name, error] of Object.entries(errors)) expect(error, `d${name}`).toBeLessThanOrEqual(1e-6);
  return base;
}

describe('float64 reference layer: gradients against central differences', () => {
  const cases: [string, Partial<LayerConfig>, RouteOptions?][] = [
    ['swiglu, k=2, renormalised', {}],
    ['k=1 (gate = p)', { topK: 1 }],
    ['k=1 with forced renormalisation (gate = 1)', { topK: 1, normalizeGates: true }],
    ['E=1, k=1', { experts: 1, topK: 1 }],
    ['k=E=3', { topK: 3 }],
    ['silu MLP', { activation: 'silu' }],
    ['gelu MLP', { activation: 'gelu' }],
    ['gates not renormalised', { normalizeGates: false }],
    ['aux loss on', { auxLoss: 0.3 }],
    ['aux loss on, gelu, not renormalised', { auxLoss: 0.3, activation: 'gelu', normalizeGates: false }],
    ['zipf skew', { skew: { kind: 'zipf', s: 1.2 } }],
    ['capacity cf=0 (busiest expert)', { capacityFactor: 0 }, { capacity: true }],
    ['larger: T=9, d=4, h=5, E=4, k=2, seed 3', { tokens: 9, hidden: 4, ffn: 5, experts: 4, seed: 3 }],
  ];
  for (const [name, partial, options] of cases) {
    it(name, () => {
      checkGradients(layerConfig({ ...TINY, ...partial }), options);
    });
  }

  it('capacity with drops (and the aux loss)', () => {
    const config = layerConfig({ ...TINY, capacityFactor: 0.5, auxLoss: 0.2 });
    const base = checkGradients(config, { capacity: true });
    expect(base.routing.capacity).toBe(2);
    expect(base.routing.dropped).toBeGreaterThan(0);
  });

  it('forced experts (the routing verify hands over for near ties)', () => {
    const config = layerConfig(TINY);
    const natural = referenceStep(config, toFloat64(generateInputs(config)));
    const [e0, e1] = [natural.routing.experts[0], natural.routing.experts[1]];
    const other = [0, 1, 2].find((e) => e !== e0 && e !== e1) as number;
    const forcedExperts = new Map([[0, [other, e0]], [3, [natural.routing.experts[7], natural.routing.experts[6]]]]);
    const base = checkGradients(config, { forcedExperts });
    expect(Array.from(base.routing.experts.subarray(0, 2))).toEqual([other, e0]);
  });
});

/** Independent forward: one token at a time, straight from the formulas of docs/design.md#the-layer. */
function naiveOutput(config: LayerConfig, x: ReferenceInputs, r: ReferenceResult): Float64Array {
  const { tokens: T, hidden: d, ffn: h, topK: k } = config;
  const O = new Float64Array(T * d);
  const at = (W: Float64Array, e: number, rows: number, cols: number, i: number, j: number) => W[e * rows * cols + i * cols + j];
  for (let t = 0; t < T; t++) {
    for (let s = 0; s < k; s++) {
      if (!r.routing.kept[t * k + s]) continue;
      const e = r.routing.experts[t * k + s];
      const u: number[] = [];
      for (let j = 0; j < h; j++) {
        let a = 0;
        let b = 0;
        for (let i = 0; i < d; i++) {
          a += x.X[t * d + i] * at(x.W1, e, d, h, i, j);
          if (x.W3) b += x.X[t * d + i] * at(x.W3, e, d, h, i, j);
        }
        u.push(config.activation === 'swiglu' ? silu(a) * b : config.activation === 'gelu' ? gelu(a) : silu(a));
      }
      for (let i = 0; i < d; i++) {
        let y = 0;
        for (let j = 0; j < h; j++) y += u[j] * at(x.W2, e, h, d, j, i);
        O[t * d + i] += r.routing.gates[t * k + s] * y;
      }
    }
  }
  return O;
}

describe('float64 reference layer: forward and shape', () => {
  for (const activation of ['swiglu', 'silu', 'gelu'] as const) {
    it(`O matches a naive per-token forward (${activation}, with drops)`, () => {
      const config = layerConfig({ tokens: 12, hidden: 5, ffn: 6, experts: 4, topK: 2, activation, capacityFactor: 0.5 });
      const inputs = toFloat64(generateInputs(config));
      const r = referenceStep(config, inputs, { capacity: true });
      expect(r.routing.dropped).toBeGreaterThan(0);
      expect(compareTensors(r.O, naiveOutput(config, inputs, r)).relError).toBeLessThan(1e-14);
      expect(r.dW3 === null).toBe(activation !== 'swiglu');
      expect(r.auxLoss).toBeNull();
    });
  }

  it('a token whose pairs are all dropped gets zero output and only router gradient', () => {
    const config = layerConfig({ ...TINY, capacityFactor: 0.4 }); // C = 0
    const inputs = toFloat64(generateInputs(config));
    const r = referenceStep(config, inputs, { capacity: true });
    expect(r.routing.dropped).toBe(10);
    expect(r.O.every((v) => v === 0)).toBe(true);
    expect(r.dW1.every((v) => v === 0) && r.dW2.every((v) => v === 0)).toBe(true);
    expect(r.dWr.every((v) => v === 0)).toBe(true); // dg = 0 everywhere
  });

  it('E=1: dWr is exactly zero', () => {
    const config = layerConfig({ ...TINY, experts: 1, topK: 1 });
    const r = referenceStep(config, toFloat64(generateInputs(config)));
    expect(r.dWr.every((v) => v === 0)).toBe(true);
    expect(r.routing.gates.every((g) => g === 1)).toBe(true);
  });

  it('aux loss: α·E·Σ f·P̄, and exactly α when routing and probabilities are uniform', () => {
    const config = layerConfig({ ...TINY, auxLoss: 0.01 });
    const r = referenceStep(config, toFloat64(generateInputs(config)));
    expect(r.auxLoss).toBeGreaterThan(0);
    const uniform = layerConfig({ ...TINY, topK: 3, auxLoss: 0.01 });
    const inputs = toFloat64(generateInputs(uniform));
    inputs.Wr.fill(0);
    expect(referenceStep(uniform, inputs).auxLoss).toBeCloseTo(0.01, 15);
  });

  it('rejects inputs of the wrong shape', () => {
    const config = layerConfig(TINY);
    const inputs = toFloat64(generateInputs(config));
    expect(() => referenceStep(config, { ...inputs, W3: null })).toThrow(/W3 is missing/);
    expect(() => referenceStep(config, { ...inputs, X: new Float64Array(3) })).toThrow(/X has 3 elements/);
  });

  it('runs the quick shape (T=512, d=64, h=128, E=16, k=2) fast and deterministically', () => {
    const config = layerConfig({ tokens: 512, hidden: 64, ffn: 128, experts: 16, topK: 2 });
    const inputs = toFloat64(generateInputs(config));
    const start = performance.now();
    const a = referenceStep(config, inputs);
    const ms = performance.now() - start;
    const b = referenceStep(config, inputs, { capacity: true });
    expect(ms).toBeLessThan(5000);
    expect(a.O.every(Number.isFinite) && a.dX.every(Number.isFinite)).toBe(true);
    expect(compareTensors(referenceStep(config, inputs).dW1, a.dW1).relError).toBe(0);
    expect(b.routing.capacity).toBe(64);
  });
});
