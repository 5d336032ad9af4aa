/**
 * Float64 router of docs/design.md#the-layer: logits, softmax, top-k (or the fixed assignment of
 * docs/design.md#balanced-routing), gates and the capacity rule. Kept
 * apart from the experts because verify also needs it alone (near ties, drops, dumps).
 */
import { capacityOf, skewBias, type LayerConfig } from '../config.js';

export interface RouteOptions {
  /** Apply the capacity rule (capacity strategies); default false = dropless. */
  capacity?: boolean;
  /**
   * Per-token experts, in slot order, that replace the top-k choice: verify passes the GPU's
   * choice for near-tie tokens, where f32 and f64 may legitimately disagree.
   */
  forcedExperts?: Map<number, number[]>;
  /** z = X·Wr + β of an earlier call on the same inputs ([T, E]), reused: at DeepSeek-V3-like sizes it is 7.5·10⁹ multiply-adds. */
  logits?: Float64Array;
}

export interface ReferenceRouting {
  /** [T, E] z = X·Wr + β */
  logits: Float64Array;
  /** [T, E] softmax(z) */
  probs: Float64Array;
  /** [T, k] chosen experts, slot s = rank by z (ties: lower id first); balanced: (t·k + s) mod E */
  experts: Int32Array;
  /** [T, k] gates, formed before the capacity check (a dropped pair keeps its gate) */
  gates: Float64Array;
  /** [T, k] 1 = the pair is computed, 0 = dropped by capacity */
  kept: Uint8Array;
  /** [E] pairs routed to each expert, before drops */
  expertLoad: Int32Array;
  /** C when the capacity rule applied, else null */
  capacity: number | null;
  dropped: number;
  /** Tokens whose k-th and (k+1)-th logits differ by < 1e-5·max|z| (ascending token order); none when balanced */
  nearTies: number[];
}

export const NEAR_TIE_RELATIVE = 1e-5;

export function routeReference(config: LayerConfig, X: Float64Array, Wr: Float64Array, options: RouteOptions = {}): ReferenceRouting {
  const { tokens: T, hidden: d, experts: E, topK: k } = config;
  if (X.length !== T * d) throw new Error(`X has ${X.length} elements; expected ${T}·${d}`);
  if (Wr.length !== d * E) throw new Error(`Wr has ${Wr.length} elements; expected ${d}·${E}`);
  for (const t of options.forcedExperts?.keys() ?? []) {
    if (!Number.isInteger(t) || t < 0 || t >= T) throw new Error(`forcedExperts: token ${t} is not in 0..${T - 1}`);
  }
  const given = options.logits;
  if (given && given.length !== T * E) throw new Error(`logits has ${given.length} elements; expected ${T}·${E}`);
  const logits = given ? Float64Array.from(given) : routerLogits(X, Wr, skewBias(config.skew, E), T, d, E);
  const probs = new Float64Array(T * E);
  const experts = new Int32Array(T * k);
  const gates = new Float64Array(T * k);
  const kept = new Uint8Array(T * k).fill(1);
  const expertLoad = new Int32Array(E);
  const nearTies: number[] = [];
  const taken = new Uint8Array(E);

  for (let t = 0; t < T; t++) {
    const z = logits.subarray(t * E, t * E + E);
    let zMax = -Infinity;
    for (let e = 0; e < E; e++) if (z[e] > zMax) zMax = z[e];
    const p = probs.subarray(t * E, t * E + E);
    let sum = 0;
    for (let e = 0; e < E; e++) sum += p[e] = Math.exp(z[e] - zMax);
    for (let e = 0; e < E; e++) p[e] /= sum;

    if (config.routing === 'balanced') {
      // The logits play no part in the choice, so no token is near a tie.
      for (let s = 0; s < k; s++) experts[t * k + s] = (t * k + s) % E;
    } else if (selectTopK(z, taken, experts.subarray(t * k, t * k + k))) {
      nearTies.push(t);
    }

    const forced = options.forcedExperts?.get(t);
    if (forced) {
      checkForced(t, forced, k, E);
      for (let s = 0; s < k; s++) experts[t * k + s] = forced[s];
    }
    let chosenSum = 0;
    for (let s = 0; s < k; s++) chosenSum += p[experts[t * k + s]];
    const scale = config.normalizeGates ? 1 / chosenSum : 1;
    for (let s = 0; s < k; s++) {
      const e = experts[t * k + s];
      gates[t * k + s] = p[e] * scale;
      expertLoad[e]++;
    }
  }

  let capacity: number | null = null;
  let dropped = 0;
  if (options.capacity) {
    const C = capacityOf(config, expertLoad);
    capacity = C;
    // Slot-major placement (every token's slot 0 before any slot 1), as Tutel's cumsum does.
    const fill = new Int32Array(E);
    for (let s = 0; s < k; s++) {
      for (let t = 0; t < T; t++) {
        const e = experts[t * k + s];
        if (fill[e] < C) fill[e]++;
        else {
          kept[t * k + s] = 0;
          dropped++;
        }
      }
    }
  }
  return { logits, probs, experts, gates, kept, expertLoad, capacity, dropped, nearTies };
}

/**
 * z = X·Wr + β, [T, E]: each z[t][e] summed as β_e, then x_t,i·Wr[i][e] for i ascending. Four
 * tokens share each pass over Wr (at DeepSeek-V3-like sizes Wr is 14.7 MB, streamed once per
 * token otherwise); the order of every sum is the plain loop's, so the values are too.
 */
function routerLogits(X: Float64Array, Wr: Float64Array, beta: Float64Array | number[], T: number, d: number, E: number): Float64Array {
  const z = new Float64Array(T * E);
  for (let t = 0; t < T; t++) z.set(beta, t * E);
  let t = 0;
  for (; t + 4 <= T; t += 4) {
    const [o0, o1, o2, o3] = [t * E, (t + 1) * E, (t + 2) * E, (t + 3) * E];
    for (let i = 0; i < d; i++) {
      const x0 = X[t * d + i];
      const x1 = X[(t + 1) * d + i];
      const x2 = X[(t + 2) * d + i];
      const x3 = X[(t + 3) * d + i];
      const row = i * E;
      for (let e = 0; e < E; e++) {
        const w = Wr[row + e];
        z[o0 + e] += x0 * w;
        z[o1 + e] += x1 * w;
        z[o2 + e] += x2 * w;
        z[o3 + e] += x3 * w;
      }
    }
  }
  for (; t < T; t++) {
    for (let i = 0; i < d; i++) {
      const x = X[t * d + i];
      const row = i * E;
      for (let e = 0; e < E; e++) z[t * E + e] += x * Wr[row + e];
    }
  }
  return z;
}

function checkForced(t: number, forced: number[], k: number, E: number): void {
  if (forced.length !== k) throw new Error(`forcedExperts for token ${t} has ${forced.length} experts; expected k = ${k}`);
  for (let s = 0; s < k; s++) {
    const e = forced[s];
    if (!Number.isInteger(e) || e < 0 || e >= E) throw new Error(`forcedExperts for token ${t}: expert ${e} is not in 0..${E - 1}`);
    for (let r = 0; r < s; r++) if (forced[r] === e) throw new Error(`forcedExperts for token ${t}: expert ${e} appears twice`);
  }
}

/**
 * Top-k of z by repeated selection into `chosen` (k = its length): strict ">" over ascending ids
 * gives ties to the lower id. Returns whether the k-th and (k+1)-th logits nearly tie.
 */
function selectTopK(z: Float64Array, taken: Uint8Array, chosen: Int32Array): boolean {
  const E = z.length;
  const k = chosen.length;
  let zAbsMax = 0;
  for (let e = 0; e < E; e++) if (Math.abs(z[e]) > zAbsMax) zAbsMax = Math.abs(z[e]);
  taken.fill(0);
  let kthLogit = 0;
  for (let s = 0; s < k; s++) {
    let best = -1;
    for (let e = 0; e < E; e++) if (!taken[e] && (best < 0 || z[e] > z[best])) best = e;
    taken[best] = 1;
    chosen[s] = best;
    kthLogit = z[best];
  }
  if (k === E) return false;
  let next = -Infinity;
  for (let e = 0; e < E; e++) if (!taken[e] && z[e] > next) next = z[e];
  const gap = kthLogit - next;
  // An exact tie counts even when every logit is 0 (where the relative bound is 0 too).
  return gap < NEAR_TIE_RELATIVE * zAbsMax || gap === 0;
}
