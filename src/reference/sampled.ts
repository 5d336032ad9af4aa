/**
 * A float64 reference for a seeded sample of a layer's outputs, at any size (issue 18): the O
 * and dX rows of sampled tokens, and per expert the weight-gradient slices of sampled hidden
 * units j (dW1[e][:,j], dW3[e][:,j], dW2[e][j,:]: each sums over every row of its expert, so
 * a wrong row anywhere in the expert shows). dWr sums over every token through the full
 * FFN, which is the whole layer's cost; it is checked instead on a second GPU step whose dO is
 * zero outside the sampled tokens, where dWr = Σ over the sample (+ the aux loss's part, cheap).
 * The per-pair math is terms.ts, the same code the full reference runs.
 */
import type { LayerConfig } from '../config.js';
import { Xoshiro128 } from '../rng.js';
import type { ReferenceRouting } from './routing.js';
import { auxGradient, expertPairs, routerBackward, routerInputGrads, scaled, unitStep, type ExpertWeights, type Scaled } from './terms.js';

/** At least this many sampled tokens (all of them when T is smaller). */
export const MIN_SAMPLE_TOKENS = 64;
/** Sampled tokens stop here even if some expert is still unreached: its columns still check it. */
export const MAX_SAMPLE_TOKENS = 256;
/** Hidden units sampled per expert that received tokens. */
export const UNITS_PER_EXPERT = 2;

export interface SampleChoice {
  /** Sampled token ids, ascending. */
  tokens: number[];
  /** Sampled (expert, hidden unit) pairs, by expert. */
  units: { expert: number; unit: number }[];
}

/**
 * Seeded: MIN_SAMPLE_TOKENS tokens in a shuffled order, then more from that order until every
 * expert with a kept pair is reached by some sampled token (up to MAX_SAMPLE_TOKENS), and
 * UNITS_PER_EXPERT distinct hidden units of every expert with a kept pair.
 */
export function chooseSample(c: LayerConfig, routing: ReferenceRouting, seed: number): SampleChoice {
  const { tokens: T, experts: E, topK: k, ffn: h } = c;
  const rng = new Xoshiro128((seed ^ 0x5a3b1e) >>> 0);
  const order = Int32Array.from({ length: T }, (_, i) => i);
  const pick = (n: number, list: Int32Array) => {
    // Partial Fisher–Yates: the first n entries become a uniform sample.
    for (let i = 0; i < Math.min(n, list.length - 1); i++) {
      const j = i + Math.floor(rng.uniform() * (list.length - i));
      [list[i], list[j]] = [list[j], list[i]];
    }
  };
  const hasPairs = new Uint8Array(E);
  for (let p = 0; p < T * k; p++) if (routing.kept[p]) hasPairs[routing.experts[p]] = 1;
  const reached = new Uint8Array(E);
  const reach = (t: number) => {
    for (let s = 0; s < k; s++) if (routing.kept[t * k + s]) reached[routing.experts[t * k + s]] = 1;
  };
  pick(T, order);
  const chosen: number[] = [];
  for (const t of order) {
    const needed = chosen.length < MIN_SAMPLE_TOKENS || Array.from({ length: k }, (_, s) => t * k + s).some((p) => routing.kept[p] && !reached[routing.experts[p]]);
    if (!needed) continue;
    chosen.push(t);
    reach(t);
    if (chosen.length >= MAX_SAMPLE_TOKENS || (chosen.length >= MIN_SAMPLE_TOKENS && hasPairs.every((v, e) => !v || reached[e]))) break;
  }
  const units: SampleChoice['units'] = [];
  const hidden = Int32Array.from({ length: h }, (_, j) => j);
  for (let e = 0; e < E; e++) {
    if (!hasPairs[e]) continue;
    pick(UNITS_PER_EXPERT, hidden);
    for (const j of Array.from(hidden.subarray(0, Math.min(UNITS_PER_EXPERT, h))).sort((a, b) => a - b)) units.push({ expert: e, unit: j });
  }
  return { tokens: chosen.sort((a, b) => a - b), units };
}

export interface SampledInputs {
  /** [T,d], [T,d], [d,E] in float64 */
  X: Float64Array;
  dO: Float64Array;
  Wr: Float64Array;
  /** Expert e's weights; asked once per expert, in order, so a GPU reader can fetch one at a time. */
  weights(e: number): Promise<ExpertWeights>;
}

export interface SampledReference {
  sample: SampleChoice;
  /** [S,d] rows of the sampled tokens */
  O: Scaled;
  dX: Scaled;
  /** [U,d]: dW1[e][:,j] and dW3[e][:,j] of each sampled unit, over i */
  dW1: Scaled;
  dW3: Scaled | null;
  /** [U,d]: dW2[e][j,:] of each sampled unit */
  dW2: Scaled;
  /** [d,E]: dWr of the step whose dO is zero outside the sampled tokens */
  dWrMasked: Scaled;
}

export async function sampledReference(c: LayerConfig, data: SampledInputs, routing: ReferenceRouting, sample: SampleChoice): Promise<SampledReference> {
  const { tokens: T, hidden: d, experts: E, topK: k } = c;
  const S = sample.tokens.length;
  const U = sample.units.length;
  const out: SampledReference = { sample, O: scaled(S * d), dX: scaled(S * d), dW1: scaled(U * d), dW3: c.activation === 'swiglu' ? scaled(U * d) : null, dW2: scaled(U * d), dWrMasked: scaled(d * E) };
  const sub = (m: Scaled, r: number): Scaled => ({ v: m.v.subarray(r * d, r * d + d), s: m.s.subarray(r * d, r * d + d) });
  const xRow = (t: number) => data.X.subarray(t * d, t * d + d);
  const dORow = (t: number) => data.dO.subarray(t * d, t * d + d);
  const pairsOf: number[][] = Array.from({ length: E }, () => []);
  for (let p = 0; p < T * k; p++) if (routing.kept[p]) pairsOf[routing.experts[p]].push(p);
  const sampledPairs: number[][] = Array.from({ length: E }, () => []);
  sample.tokens.forEach((t, r) => {
    for (let s = 0; s < k; s++) if (routing.kept[t * k + s]) sampledPairs[routing.experts[t * k + s]].push(r * k + s);
  });
  const dg = new Float64Array(S * k);
  for (let e = 0; e < E; e++) {
    const units = sample.units.map((u, i) => ({ ...u, i })).filter((u) => u.expert === e);
    if (!sampledPairs[e].length && !units.length) continue;
    const w = await data.weights(e);
    const jobs = sampledPairs[e].map((rs) => {
      const r = Math.floor(rs / k);
      const t = sample.tokens[r];
      return { x: xRow(t), dO: dORow(t), g: routing.gates[t * k + (rs % k)], o: sub(out.O, r), dx: sub(out.dX, r) };
    });
    const pairDg = new Float64Array(jobs.length);
    expertPairs(c, w, jobs, null, pairDg);
    sampledPairs[e].forEach((rs, i) => (dg[rs] = pairDg[i]));
    for (const u of units) unitColumns(c, data, routing, pairsOf[e], w, u.unit, sub(out.dW1, u.i), out.dW3 && sub(out.dW3, u.i), sub(out.dW2, u.i));
  }
  const aux = auxGradient(c, routing);
  const dz = scaled(E);
  const zero = new Float64Array(k);
  const sink = scaled(d);
  let r = 0;
  for (let t = 0; t < T; t++) {
    const inSample = sample.tokens[r] === t;
    // Outside the sample dO is 0 in the masked step: only the aux loss reaches dz there.
    if (!inSample && !aux) continue;
    routerBackward(c, routing, t, inSample ? dg.subarray(r * k, r * k + k) : zero, aux?.q ?? null, dz);
    routerInputGrads(c, xRow(t), data.Wr, dz, inSample ? sub(out.dX, r) : sink, out.dWrMasked);
    if (inSample) r++;
  }
  return out;
}

/** dW1[e][:,j], dW3[e][:,j], dW2[e][j,:] over every kept pair of expert e. */
function unitColumns(c: LayerConfig, data: SampledInputs, routing: ReferenceRouting, pairs: number[], w: ExpertWeights, j: number, dW1: Scaled, dW3: Scaled | null, dW2: Scaled): void {
  const { hidden: d, ffn: h, topK: k } = c;
  const w1 = Float64Array.from({ length: d }, (_, i) => w.W1[i * h + j]);
  const w3 = w.W3 ? Float64Array.from({ length: d }, (_, i) => w.W3![i * h + j]) : null;
  const w2 = w.W2.subarray(j * d, j * d + d);
  const unit = { u: 0, da: 0, db: 0 };
  for (const p of pairs) {
    const t = Math.floor(p / k);
    const x = data.X.subarray(t * d, t * d + d);
    const dO = data.dO.subarray(t * d, t * d + d);
    let a = 0;
    let b = 0;
    let G = 0;
    for (let i = 0; i < d; i++) {
      a += x[i] * w1[i];
      if (w3) b += x[i] * w3[i];
      G += dO[i] * w2[i];
    }
    const g = routing.gates[p];
    unitStep(c, a, b, G, g, unit);
    for (let i = 0; i < d; i++) {
      dW1.v[i] += x[i] * unit.da;
      dW1.s[i] += Math.abs(x[i] * unit.da);
      if (dW3) {
        dW3.v[i] += x[i] * unit.db;
        dW3.s[i] += Math.abs(x[i] * unit.db);
      }
      dW2.v[i] += g * unit.u * dO[i];
      dW2.s[i] += Math.abs(g * unit.u * dO[i]);
    }
  }
}
