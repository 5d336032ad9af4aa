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
import { runExpertTasks, type ExpertFill, type PairRows } from './expert-task.js';
import { auxGradient, finishScale, routerBackward, routerInputGrads, scaled, type ExpertWeights, type Scaled } from './terms.js';

/** At least this many sampled tokens (all of them when T is smaller). */
export const MIN_SAMPLE_TOKENS = 64;
/** Sampled tokens stop here even if some expert is still unreached: its columns still check it. */
export const MAX_SAMPLE_TOKENS = 256;
/**
 * Tokens beyond the first 64 are added only within this many multiply-adds of their pairs
 * (6·d·h each): at moeblaze-conf4 64 tokens already cost 1.3e10, at deepseek-v3-like 4.5e10.
 */
export const SAMPLE_PAIR_BUDGET = 2e10;
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
 * expert with a kept pair is reached by some sampled token (up to MAX_SAMPLE_TOKENS tokens and
 * SAMPLE_PAIR_BUDGET multiply-adds; an expert left out is still checked by its columns), and
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
    if (chosen.length >= MIN_SAMPLE_TOKENS && (chosen.length + 1) * k * 6 * c.hidden * h > SAMPLE_PAIR_BUDGET) break;
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
  /**
   * Expert e's weights, or the GPU fill that made them (the worker regenerates them then);
   * asked once per expert, in order, so a GPU reader can fetch one at a time.
   */
  weights(e: number): Promise<ExpertWeights | ExpertFill>;
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

/** `threads`: worker threads for the experts (default: the cores but one, up to 16, at least one; 0: inline). */
export async function sampledReference(c: LayerConfig, data: SampledInputs, routing: ReferenceRouting, sample: SampleChoice, threads?: number): Promise<SampledReference> {
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
  const gather = (pairs: number[], token: (p: number) => number): PairRows => {
    const x = new Float64Array(pairs.length * d);
    const dO = new Float64Array(pairs.length * d);
    pairs.forEach((p, i) => {
      x.set(xRow(token(p)), i * d);
      dO.set(dORow(token(p)), i * d);
    });
    return { x, dO, g: Float64Array.from(pairs, (p) => routing.gates[p]) };
  };
  // Pair ids of the sampled rows: (row r, slot s) → routing pair t·k + s.
  const routed = (rs: number) => sample.tokens[Math.floor(rs / k)] * k + (rs % k);
  await runExpertTasks(
    E,
    async (e) => {
      const units = sample.units.filter((u) => u.expert === e).map((u) => u.unit);
      if (!sampledPairs[e].length && !units.length) return null;
      const w = await data.weights(e);
      const own = (a: Float64Array) => (a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : a.slice());
      return {
        config: c,
        weights: 'fillSeed' in w ? w : { W1: own(w.W1), W3: w.W3 && own(w.W3), W2: own(w.W2) },
        sampled: gather(sampledPairs[e].map(routed), (p) => Math.floor(p / k)),
        all: gather(pairsOf[e], (p) => Math.floor(p / k)),
        units,
      };
    },
    (e, result) => {
      const d2 = (from: Scaled, at: number, to: Scaled, r: number) => {
        to.v.set(from.v.subarray(at * d, at * d + d), r * d);
        to.s.set(from.s.subarray(at * d, at * d + d), r * d);
      };
      sampledPairs[e].forEach((rs, i) => {
        const r = Math.floor(rs / k);
        // A token's rows sum over its experts: add, do not overwrite.
        for (let j = 0; j < d; j++) {
          out.O.v[r * d + j] += result.o.v[i * d + j];
          out.O.s[r * d + j] += result.o.s[i * d + j];
          out.dX.v[r * d + j] += result.dx.v[i * d + j];
          out.dX.s[r * d + j] += result.dx.s[i * d + j];
        }
        dg[rs] = result.dg[i];
      });
      sample.units.forEach((u, i) => {
        if (u.expert !== e) return;
        const at = sample.units.slice(0, i).filter((v) => v.expert === e).length;
        d2(result.dW1, at, out.dW1, i);
        d2(result.dW2, at, out.dW2, i);
        if (out.dW3 && result.dW3) d2(result.dW3, at, out.dW3, i);
      });
    },
    threads,
  );
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
  for (const m of [out.O, out.dX, out.dW1, out.dW3, out.dW2, out.dWrMasked]) finishScale(m);
  return out;
}
