/**
 * The float64 math of docs/design.md#the-layer at its smallest units, shared by the full reference
 * (layer.ts) and the sampled one (sampled.ts) so that the two cannot drift apart: one
 * (token, expert) pair, one hidden unit, one token's router backward, the load-balancing
 * gradient. Each sum also accumulates Σ terms² beside it (finishScale takes the root): the scale
 * of compare.ts.
 */
import type { LayerConfig } from '../config.js';
import { gelu, geluGrad, silu, siluGrad } from './erf.js';
import type { ReferenceRouting } from './routing.js';

/** One expert's weights as views: W1, W3 [d,h], W2 [h,d] (W3 null without SwiGLU). */
export interface ExpertWeights {
  W1: Float64Array;
  W3: Float64Array | null;
  W2: Float64Array;
}

/** A value and its scale side by side (same length): Σ terms² while summing, √ after finishScale. */
export interface Scaled {
  v: Float64Array;
  s: Float64Array;
}

export function scaled(n: number): Scaled {
  return { v: new Float64Array(n), s: new Float64Array(n) };
}

/** Σ terms² → √(Σ terms²), in place, once every term is in. */
export function finishScale(m: Scaled | null): Float64Array | null {
  if (!m) return null;
  for (let i = 0; i < m.s.length; i++) m.s[i] = Math.sqrt(m.s[i]);
  return m.s;
}

/** u, da, db of one hidden unit given a, b, G = ⟨dO_t, W2_e[j]⟩ and the gate g. */
export interface Unit {
  u: number;
  da: number;
  db: number;
}

export function unitStep(c: LayerConfig, a: number, b: number, G: number, g: number, out: Unit): Unit {
  const dU = g * G;
  if (c.activation === 'swiglu') {
    out.u = silu(a) * b;
    out.da = dU * b * siluGrad(a);
    out.db = dU * silu(a);
  } else {
    const gel = c.activation === 'gelu';
    out.u = gel ? gelu(a) : silu(a);
    out.da = dU * (gel ? geluGrad(a) : siluGrad(a));
    out.db = 0;
  }
  return out;
}

/** Optional weight-gradient accumulators of one expert (views, like ExpertWeights). */
export interface ExpertGrads {
  dW1: Scaled;
  dW3: Scaled | null;
  dW2: Scaled;
}

/** One kept (token, expert) pair: the token's rows x, dO, its gate g, and where its o and dx go. */
export interface PairJob {
  x: Float64Array;
  dO: Float64Array;
  g: number;
  o: Scaled;
  dx: Scaled;
}

/** Pairs of one expert computed together: each weight row is read once for the batch, not once a pair. */
const BATCH = 32;

/**
 * The pairs of one expert e: adds g·y to each output row o, the expert part of dx, and (given
 * grads) the pairs' share of dW1/dW3/dW2. Writes dg = ⟨G, u⟩ (= ⟨dO_t, y⟩) of pair p to dg[p].
 */
export function expertPairs(c: LayerConfig, w: ExpertWeights, jobs: PairJob[], grads: ExpertGrads | null, dg: Float64Array): void {
  for (let from = 0; from < jobs.length; from += BATCH) batchPairs(c, w, jobs.slice(from, from + BATCH), grads, dg.subarray(from, from + BATCH));
}

function batchPairs(c: LayerConfig, w: ExpertWeights, jobs: PairJob[], grads: ExpertGrads | null, dg: Float64Array): void {
  const { hidden: d, ffn: h } = c;
  const n = jobs.length;
  const { W1, W3, W2 } = w;
  const a = new Float64Array(n * h);
  const b = new Float64Array(n * h);
  const da = new Float64Array(n * h);
  const db = new Float64Array(n * h);
  const unit: Unit = { u: 0, da: 0, db: 0 };
  for (let i = 0; i < d; i++) {
    const row = i * h;
    for (let p = 0; p < n; p++) {
      const xi = jobs[p].x[i];
      const at = p * h;
      for (let j = 0; j < h; j++) a[at + j] += xi * W1[row + j];
      if (W3) for (let j = 0; j < h; j++) b[at + j] += xi * W3[row + j];
    }
  }
  for (let j = 0; j < h; j++) {
    const row = j * d;
    for (let p = 0; p < n; p++) {
      const { dO, g, o } = jobs[p];
      let G = 0;
      for (let i = 0; i < d; i++) G += dO[i] * W2[row + i];
      unitStep(c, a[p * h + j], b[p * h + j], G, g, unit);
      da[p * h + j] = unit.da;
      db[p * h + j] = unit.db;
      dg[p] += G * unit.u;
      const gu = g * unit.u;
      const ov = o.v;
      const os = o.s;
      for (let i = 0; i < d; i++) {
        const term = gu * W2[row + i];
        ov[i] += term;
        os[i] += term * term;
      }
      if (grads) {
        const gv = grads.dW2.v;
        const gs = grads.dW2.s;
        for (let i = 0; i < d; i++) {
          const term = gu * dO[i];
          gv[row + i] += term;
          gs[row + i] += term * term;
        }
      }
    }
  }
  for (let i = 0; i < d; i++) {
    const row = i * h;
    for (let p = 0; p < n; p++) {
      const { x, dx } = jobs[p];
      const at = p * h;
      let acc = 0;
      let mag = 0;
      for (let j = 0; j < h; j++) {
        const term = da[at + j] * W1[row + j];
        acc += term;
        mag += term * term;
      }
      if (W3) {
        for (let j = 0; j < h; j++) {
          const term = db[at + j] * W3[row + j];
          acc += term;
          mag += term * term;
        }
      }
      dx.v[i] += acc;
      dx.s[i] += mag;
      if (grads) {
        const xi = x[i];
        for (let j = 0; j < h; j++) {
          grads.dW1.v[row + j] += xi * da[at + j];
          grads.dW1.s[row + j] += (xi * da[at + j]) ** 2;
        }
        if (grads.dW3) {
          for (let j = 0; j < h; j++) {
            grads.dW3.v[row + j] += xi * db[at + j];
            grads.dW3.s[row + j] += (xi * db[at + j]) ** 2;
          }
        }
      }
    }
  }
}

/**
 * ∂L_aux/∂p_{t,e} = q_e = α·E·f_e/T (f_e counts pairs before drops and is held constant, so the
 * loss reaches z only through P̄_e), and the loss itself; null when the loss is off.
 */
export function auxGradient(c: LayerConfig, routing: ReferenceRouting): { q: Float64Array; loss: number } | null {
  const { tokens: T, experts: E, topK: k } = c;
  const alpha = c.auxLoss;
  if (!(alpha > 0)) return null;
  const q = new Float64Array(E);
  let loss = 0;
  for (let e = 0; e < E; e++) {
    const f = routing.expertLoad[e] / (T * k);
    let pMean = 0;
    for (let t = 0; t < T; t++) pMean += routing.probs[t * E + e];
    loss += (alpha * E * f * pMean) / T;
    q[e] = (alpha * E * f) / T;
  }
  return { q, loss };
}

/**
 * One token's router backward: dz from the gate gradients dg [k] of its pairs (0 for dropped
 * pairs) and the aux gradient q; dz.s is the size of each dz before its cancellations,
 * dp − ⟨dp,p⟩ and, renormalised, dg − ⟨g,dg⟩ (dz ≈ 0 on a saturated router, its parts not):
 * the magnitude of dz as a term of dX and dWr.
 */
export function routerBackward(c: LayerConfig, routing: ReferenceRouting, t: number, dg: ArrayLike<number>, q: Float64Array | null, dz: Scaled): void {
  const { experts: E, topK: k } = c;
  const p = routing.probs.subarray(t * E, t * E + E);
  const dp = new Float64Array(E);
  const dpMag = new Float64Array(E);
  let chosen = 0;
  let gdg = 0;
  let gdgMag = 0;
  for (let s = 0; s < k; s++) {
    chosen += p[routing.experts[t * k + s]];
    gdg += routing.gates[t * k + s] * dg[s];
    gdgMag += Math.abs(routing.gates[t * k + s] * dg[s]);
  }
  for (let s = 0; s < k; s++) {
    const e = routing.experts[t * k + s];
    // g = p/s over S_t (dropped pairs included, with dg = 0): dp = (dg − ⟨g, dg⟩)/s.
    dp[e] = c.normalizeGates ? (dg[s] - gdg) / chosen : dg[s];
    dpMag[e] = c.normalizeGates ? (Math.abs(dg[s]) + gdgMag) / chosen : Math.abs(dg[s]);
  }
  let dpDot = 0;
  let dpDotMag = 0;
  let qDot = 0;
  let qDotMag = 0;
  for (let e = 0; e < E; e++) {
    dpDot += dp[e] * p[e];
    dpDotMag += dpMag[e] * p[e];
    if (q) {
      qDot += q[e] * p[e];
      qDotMag += Math.abs(q[e]) * p[e];
    }
  }
  for (let e = 0; e < E; e++) {
    dz.v[e] = p[e] * (dp[e] - dpDot) + (q ? p[e] * (q[e] - qDot) : 0);
    dz.s[e] = p[e] * (dpMag[e] + dpDotMag) + (q ? p[e] * (Math.abs(q[e]) + qDotMag) : 0);
  }
}

/** dx += dz·Wrᵀ and dWr += x ⊗ dz for one token (dWr null: dx only). */
export function routerInputGrads(c: LayerConfig, x: Float64Array, Wr: Float64Array, dz: Scaled, dx: Scaled, dWr: Scaled | null): void {
  const { hidden: d, experts: E } = c;
  for (let i = 0; i < d; i++) {
    const row = i * E;
    let acc = 0;
    let mag = 0;
    for (let e = 0; e < E; e++) {
      acc += dz.v[e] * Wr[row + e];
      mag += (dz.s[e] * Wr[row + e]) ** 2;
      if (dWr) {
        dWr.v[row + e] += x[i] * dz.v[e];
        dWr.s[row + e] += (x[i] * dz.s[e]) ** 2;
      }
    }
    dx.v[i] += acc;
    dx.s[i] += mag;
  }
}
