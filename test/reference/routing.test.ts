import { describe, expect, it } from 'vitest';
import { balancedLoads, layerConfig, type LayerConfig } from '../../src/config.js';
import { routeReference, type RouteOptions } from '../../src/reference/routing.js';

/** Routes hand-written logits: hidden = E and Wr = I, so z_t = x_t (+ β). */
function route(rows: number[][], partial: Partial<LayerConfig>, options?: RouteOptions) {
  const E = rows[0].length;
  const config = layerConfig({ tokens: rows.length, hidden: E, ffn: 1, experts: E, topK: 1, ...partial });
  const Wr = new Float64Array(E * E);
  for (let e = 0; e < E; e++) Wr[e * E + e] = 1;
  return routeReference(config, Float64Array.from(rows.flat()), Wr, options);
}

describe('reference routing', () => {
  it('computes z = X·Wr + β and a stable softmax', () => {
    const config = layerConfig({ tokens: 2, hidden: 2, ffn: 1, experts: 3, topK: 1, skew: { kind: 'zipf', s: 1 } });
    const X = Float64Array.from([1, 2, 1000, -3]);
    const Wr = Float64Array.from([1, 0, 2, 0, 1, -1]);
    const r = routeReference(config, X, Wr);
    const want = [1, 2 - Math.log(2), 0 - Math.log(3), 1000, -3 - Math.log(2), 2003 - Math.log(3)];
    for (let i = 0; i < 6; i++) expect(r.logits[i]).toBeCloseTo(want[i], 12);
    const e = [Math.exp(1), Math.exp(2 - Math.log(2)), Math.exp(-Math.log(3))];
    const sum = e[0] + e[1] + e[2];
    for (let i = 0; i < 3; i++) expect(r.probs[i]).toBeCloseTo(e[i] / sum, 15);
    expect(r.probs[5]).toBeCloseTo(1, 12); // no overflow at z ≈ 2000
    expect(Number.isFinite(r.probs[3])).toBe(true);
  });

  it('orders slots by logit and breaks ties toward the lower expert id', () => {
    const r = route([[1, 2, 2, 0], [5, 5, 5, 5], [0, 3, 1, 2]], { topK: 2 });
    expect(Array.from(r.experts)).toEqual([1, 2, 0, 1, 1, 3]);
    expect(Array.from(r.expertLoad)).toEqual([1, 3, 1, 1]);
    const k1 = route([[4, 4, 1]], { topK: 1 });
    expect(Array.from(k1.experts)).toEqual([0]);
  });

  it('renormalises gates over the chosen experts, or not', () => {
    const rows = [[0.3, -1, 2, 0.7], [1.5, 0.2, -0.4, 0.1]];
    const on = route(rows, { topK: 2, normalizeGates: true });
    const off = route(rows, { topK: 2, normalizeGates: false });
    expect(Array.from(on.experts)).toEqual(Array.from(off.experts));
    for (let t = 0; t < 2; t++) {
      const [e0, e1] = [on.experts[2 * t], on.experts[2 * t + 1]];
      const [p0, p1] = [on.probs[4 * t + e0], on.probs[4 * t + e1]];
      expect(on.gates[2 * t]).toBeCloseTo(p0 / (p0 + p1), 15);
      expect(on.gates[2 * t] + on.gates[2 * t + 1]).toBeCloseTo(1, 15);
      expect(off.gates[2 * t]).toBe(p0);
      expect(off.gates[2 * t + 1]).toBe(p1);
    }
  });

  it('k = 1 keeps the gate equal to p by default (Tutel: renormalise only for k > 1)', () => {
    const r = route([[0.3, -1, 2], [1, 0, 0]], { topK: 1 });
    expect(Array.from(r.experts)).toEqual([2, 0]);
    expect(r.gates[0]).toBe(r.probs[2]);
    expect(r.gates[1]).toBe(r.probs[3]);
    expect(r.gates[0]).toBeLessThan(1);
  });

  it('is dropless unless the capacity rule is asked for', () => {
    const r = route([[1, 0], [1, 0], [1, 0]], { topK: 1, capacityFactor: 0.5 });
    expect(r.capacity).toBeNull();
    expect(r.dropped).toBe(0);
    expect(Array.from(r.kept)).toEqual([1, 1, 1]);
  });

  // Hand-worked: T=4, E=3, k=2, cf=0.5 ⇒ C = 2·⌊0.5·⌈4/3⌉⌋ = 2.
  // Experts: t0 [1,0], t1 [2,0], t2 [0,1], t3 [0,2]. Slot 0 fills e1, e2, e0, e0 (all fit);
  // slot 1 then finds e0 full for t0 and t1 and places t2→e1, t3→e2.
  // (Token by token would instead have dropped t2's and t3's slot 0.)
  const handWorked = [[2, 3, 1], [2, 1, 3], [3, 2, 1], [3, 1, 2]];

  it('drops slot by slot, every slot 0 before any slot 1', () => {
    const r = route(handWorked, { topK: 2, capacityFactor: 0.5 }, { capacity: true });
    expect(Array.from(r.experts)).toEqual([1, 0, 2, 0, 0, 1, 0, 2]);
    expect(r.capacity).toBe(2);
    expect(Array.from(r.kept)).toEqual([1, 0, 1, 0, 1, 1, 1, 1]);
    expect(r.dropped).toBe(2);
    expect(Array.from(r.expertLoad)).toEqual([4, 2, 2]); // counted before drops
    // Gates are formed before the capacity check: a dropped pair keeps its gate.
    expect(r.gates[1]).toBeCloseTo(r.probs[0] / (r.probs[0] + r.probs[1]), 15);
  });

  it('cf = 0 sets C to the busiest expert, so nothing is dropped', () => {
    const r = route(handWorked, { topK: 2, capacityFactor: 0 }, { capacity: true });
    expect(r.capacity).toBe(4);
    expect(r.dropped).toBe(0);
    expect(Array.from(r.kept)).toEqual(new Array(8).fill(1));
  });

  it('C = 0 drops everything', () => {
    const r = route(handWorked, { topK: 1, capacityFactor: 0.4 }, { capacity: true });
    expect(r.capacity).toBe(0);
    expect(r.dropped).toBe(4);
  });

  it('zipf skew makes expert 0 the hot one', () => {
    const T = 400, d = 8, E = 8;
    let seed = 12345;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
    const X = Float64Array.from({ length: T * d }, rand);
    const Wr = Float64Array.from({ length: d * E }, () => rand() * 0.3);
    const base = { tokens: T, hidden: d, ffn: 1, experts: E, topK: 2 };
    const uniform = routeReference(layerConfig(base), X, Wr);
    const zipf = routeReference(layerConfig({ ...base, skew: { kind: 'zipf', s: 1.2 } }), X, Wr);
    const uniformMax = Math.max(...uniform.expertLoad);
    expect(uniformMax).toBeLessThan(T / 2);
    expect(zipf.expertLoad[0]).toBe(Math.max(...zipf.expertLoad));
    expect(zipf.expertLoad[0]).toBeGreaterThan(0.8 * T);
    expect(zipf.expertLoad[E - 1]).toBeLessThan(uniform.expertLoad[E - 1] + 1);
  });

  it("logits are the plain loop's to the bit (four tokens share a pass over Wr; T off a multiple of 4, zipf bias)", () => {
    const [T, d, E] = [11, 9, 7];
    let seed = 5;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
    const X = Float64Array.from({ length: T * d }, rand);
    const Wr = Float64Array.from({ length: d * E }, rand);
    const config = layerConfig({ tokens: T, hidden: d, ffn: 1, experts: E, topK: 2, skew: { kind: 'zipf', s: 1.1 } });
    const beta = Array.from({ length: E }, (_, e) => -1.1 * Math.log(e + 1));
    const plain = new Float64Array(T * E);
    for (let t = 0; t < T; t++)
      for (let e = 0; e < E; e++) {
        let z = beta[e];
        for (let i = 0; i < d; i++) z += X[t * d + i] * Wr[i * E + e];
        plain[t * E + e] = z;
      }
    expect(Array.from(routeReference(config, X, Wr).logits)).toEqual(Array.from(plain));
  });

  it('lists tokens whose k-th and (k+1)-th logits nearly tie', () => {
    const rows = [
      [1, 0.5, 0.5 + 1e-7], // k=2: 0.5+1e-7 vs 0.5 ⇒ near tie
      [1, 0.5, 0.5 + 1e-3], // clear
      [1, 1, 0.2], // exact tie inside the top 2 only: not the k-th/(k+1)-th boundary
      [0, 0, 0], // exact tie at zero
      [10, 5, 5 + 5e-5], // gap 5e-5 < 1e-5·10
    ];
    expect(route(rows, { topK: 2 }).nearTies).toEqual([0, 3, 4]);
    expect(route(rows, { topK: 1 }).nearTies).toEqual([2, 3]);
    expect(route(rows, { topK: 3 }).nearTies).toEqual([]); // k = E: nothing to tie with
  });

  it('forcedExperts overrides the choice; gates, loads and drops follow it', () => {
    const natural = route(handWorked, { topK: 2, capacityFactor: 0.5 }, { capacity: true });
    const forcedExperts = new Map([[2, [2, 1]], [3, [1, 2]]]);
    const r = route(handWorked, { topK: 2, capacityFactor: 0.5 }, { capacity: true, forcedExperts });
    expect(Array.from(r.experts)).toEqual([1, 0, 2, 0, 2, 1, 1, 2]);
    const p = r.probs;
    expect(r.gates[4]).toBeCloseTo(p[8] / (p[8] + p[7]), 15);
    expect(r.gates[6]).toBeCloseTo(p[10] / (p[10] + p[11]), 15);
    expect(Array.from(r.expertLoad)).toEqual([2, 3, 3]);
    // Slot 0: e1, e2, e2, e1 all fit (C = 2); slot 1: e0, e0 fit, then e1 and e2 are full.
    expect(Array.from(r.kept)).toEqual([1, 1, 1, 1, 1, 0, 1, 0]);
    expect(Array.from(r.logits)).toEqual(Array.from(natural.logits));
    expect(r.nearTies).toEqual(natural.nearTies);
    // The forced pass may reuse the first pass's logits (verify's routingFor does): the same routing.
    const reused = route(handWorked, { topK: 2, capacityFactor: 0.5 }, { capacity: true, forcedExperts, logits: natural.logits });
    expect(reused).toEqual(r);
    expect(() => route(handWorked, { topK: 2 }, { logits: new Float64Array(3) })).toThrow(/logits has 3 elements/);
  });

  it('rejects malformed forcedExperts', () => {
    const bad = (m: Map<number, number[]>) => () => route(handWorked, { topK: 2 }, { forcedExperts: m });
    expect(bad(new Map([[0, [1]]]))).toThrow(/expected k = 2/);
    expect(bad(new Map([[0, [1, 1]]]))).toThrow(/twice/);
    expect(bad(new Map([[0, [1, 3]]]))).toThrow(/not in 0..2/);
    expect(bad(new Map([[4, [1, 0]]]))).toThrow(/token 4/);
  });
});

describe('balanced routing (docs/design.md#balanced-routing)', () => {
  /** Random X and Wr (never zeros), routed both ways from the same inputs. */
  function both(partial: Partial<LayerConfig>) {
    const base = layerConfig({ hidden: 6, ffn: 1, ...partial });
    let seed = 777 + base.tokens;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
    const X = Float64Array.from({ length: base.tokens * base.hidden }, rand);
    const Wr = Float64Array.from({ length: base.hidden * base.experts }, rand);
    const config = { ...base, routing: 'balanced' as const };
    return { config, X, Wr, balanced: routeReference(config, X, Wr), topK: routeReference(base, X, Wr) };
  }

  const CASES: [string, Partial<LayerConfig>, number[]][] = [
    ['E divides T·k', { tokens: 6, experts: 4, topK: 2 }, [3, 3, 3, 3]],
    ['E does not divide T·k: the remainder goes to the lowest experts', { tokens: 7, experts: 5, topK: 3 }, [5, 4, 4, 4, 4]],
    ['k = E: every token uses every expert', { tokens: 3, experts: 4, topK: 4 }, [3, 3, 3, 3]],
    ['T = 1: fewer pairs than experts, the last ones empty', { tokens: 1, experts: 5, topK: 2 }, [1, 1, 0, 0, 0]],
    ['k = 1, E > T', { tokens: 3, experts: 8, topK: 1 }, [1, 1, 1, 0, 0, 0, 0, 0]],
  ];
  for (const [name, partial, loads] of CASES) {
    it(`${name}: loads ${loads.join(', ')}`, () => {
      const { config, balanced } = both(partial);
      const { tokens: T, experts: E, topK: k } = config;
      expect(Array.from(balanced.expertLoad)).toEqual(loads);
      expect(balancedLoads(config)).toEqual(loads);
      for (let t = 0; t < T; t++) {
        const chosen = Array.from(balanced.experts.subarray(t * k, t * k + k));
        expect(chosen).toEqual(chosen.map((_, j) => (t * k + j) % E));
        expect(new Set(chosen).size).toBe(k);
      }
      expect(balanced.nearTies).toEqual([]);
    });
  }

  it('keeps logits and probabilities; gates are the probabilities at the assigned experts, renormalised or not', () => {
    for (const normalizeGates of [true, false]) {
      const { balanced, topK } = both({ tokens: 9, experts: 5, topK: 3, normalizeGates });
      expect(Array.from(balanced.logits)).toEqual(Array.from(topK.logits));
      expect(Array.from(balanced.probs)).toEqual(Array.from(topK.probs));
      expect(Array.from(balanced.experts)).not.toEqual(Array.from(topK.experts));
      for (let t = 0; t < 9; t++) {
        const p = [0, 1, 2].map((s) => balanced.probs[t * 5 + balanced.experts[t * 3 + s]]);
        const sum = normalizeGates ? p[0] + p[1] + p[2] : 1;
        for (let s = 0; s < 3; s++) expect(balanced.gates[t * 3 + s]).toBeCloseTo(p[s] / sum, 15);
      }
    }
  });

  it('the capacity rule still applies: nothing dropped at cf = 1, drops once C is below a load', () => {
    const { config, X, Wr } = both({ tokens: 7, experts: 5, topK: 3 });
    const full = routeReference({ ...config, capacityFactor: 1 }, X, Wr, { capacity: true });
    expect([full.capacity, full.dropped]).toEqual([6, 0]); // C = 3·⌊1·⌈7/5⌉⌋ = 6 ≥ 5
    const tight = routeReference({ ...config, capacityFactor: 0.5 }, X, Wr, { capacity: true });
    expect(tight.capacity).toBe(3); // 3·⌊0.5·2⌋
    expect(tight.dropped).toBe(2 + 1 + 1 + 1 + 1); // loads 5, 4, 4, 4, 4 over C = 3
  });
});
