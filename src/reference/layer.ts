/**
 * The float64 CPU reference of docs/design.md#the-layer: one forward and backward of the MoE layer, the
 * yardstick every GPU strategy is verified against. Plain loops over typed arrays, token by
 * token and slot by slot, with one set of length-h scratch rows: it runs on the "quick"
 * shapes (T=512, d=64, h=128, E=16) inside the test suite.
 */
import type { LayerConfig } from '../config.js';
import type { LayerInputs } from '../rng.js';
import { gelu, geluGrad, silu, siluGrad } from './erf.js';
import { routeReference, type ReferenceRouting, type RouteOptions } from './routing.js';

/** LayerInputs widened to float64 (same shapes, row-major). */
export interface ReferenceInputs {
  X: Float64Array;
  dO: Float64Array;
  Wr: Float64Array;
  W1: Float64Array;
  W2: Float64Array;
  W3: Float64Array | null;
}

export interface ReferenceResult {
  /** [T, d] */
  O: Float64Array;
  /** [T, d] */
  dX: Float64Array;
  /** [d, E] */
  dWr: Float64Array;
  /** [E, d, h] */
  dW1: Float64Array;
  /** [E, h, d] */
  dW2: Float64Array;
  /** [E, d, h]; SwiGLU only */
  dW3: Float64Array | null;
  routing: ReferenceRouting;
  /** α·E·Σ_e f_e·P̄_e when config.auxLossCoef > 0, else null */
  auxLoss: number | null;
}

export function toFloat64(inputs: LayerInputs): ReferenceInputs {
  return {
    X: Float64Array.from(inputs.X),
    dO: Float64Array.from(inputs.dO),
    Wr: Float64Array.from(inputs.Wr),
    W1: Float64Array.from(inputs.W1),
    W2: Float64Array.from(inputs.W2),
    W3: inputs.W3 ? Float64Array.from(inputs.W3) : null,
  };
}

function checkShapes(config: LayerConfig, inputs: ReferenceInputs): void {
  const { tokens: T, hidden: d, ffn: h, experts: E } = config;
  const want: [string, Float64Array | null, number][] = [
    ['X', inputs.X, T * d],
    ['dO', inputs.dO, T * d],
    ['Wr', inputs.Wr, d * E],
    ['W1', inputs.W1, E * d * h],
    ['W2', inputs.W2, E * h * d],
  ];
  if (config.activation === 'swiglu') want.push(['W3', inputs.W3, E * d * h]);
  for (const [name, data, length] of want) {
    if (!data) throw new Error(`${name} is missing; the ${config.activation} layer needs it`);
    if (data.length !== length) throw new Error(`${name} has ${data.length} elements; expected ${length}`);
  }
}

/**
 * Forward and backward in float64. The scalar whose gradients are returned is
 * ⟨O, dO⟩ + L_aux: dO is the upstream gradient of O, and the load-balancing loss (when on)
 * adds its own gradient through the router probabilities.
 */
export function referenceStep(config: LayerConfig, inputs: ReferenceInputs, options: RouteOptions = {}): ReferenceResult {
  checkShapes(config, inputs);
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = config;
  const { X, dO, Wr, W1, W2 } = inputs;
  const swiglu = config.activation === 'swiglu';
  const W3 = swiglu ? (inputs.W3 as Float64Array) : null;
  const act = config.activation === 'gelu' ? gelu : silu;
  const actGrad = config.activation === 'gelu' ? geluGrad : siluGrad;

  const routing = routeReference(config, X, Wr, options);
  const { experts, gates, kept, probs } = routing;
  const O = new Float64Array(T * d);
  const dX = new Float64Array(T * d);
  const dWr = new Float64Array(d * E);
  const dW1 = new Float64Array(E * d * h);
  const dW2 = new Float64Array(E * h * d);
  const dW3 = swiglu ? new Float64Array(E * d * h) : null;
  const dg = new Float64Array(T * k); // stays 0 for dropped pairs
  const a = new Float64Array(h);
  const b = new Float64Array(h);
  const u = new Float64Array(h);
  const da = new Float64Array(h);
  const db = new Float64Array(h);

  for (let t = 0; t < T; t++) {
    const xo = t * d;
    for (let s = 0; s < k; s++) {
      if (!kept[t * k + s]) continue;
      const e = experts[t * k + s];
      const g = gates[t * k + s];
      const w1 = e * d * h; // W1, W3 and dW1, dW3 [E, d, h]
      const w2 = e * h * d; // W2 and dW2 [E, h, d]

      a.fill(0);
      b.fill(0);
      for (let i = 0; i < d; i++) {
        const xi = X[xo + i];
        const row = w1 + i * h;
        for (let j = 0; j < h; j++) a[j] += xi * W1[row + j];
        if (W3) for (let j = 0; j < h; j++) b[j] += xi * W3[row + j];
      }
      for (let j = 0; j < h; j++) u[j] = swiglu ? silu(a[j]) * b[j] : act(a[j]);

      // o_t += g·(u·W2_e); then, per row j of W2_e: G_j = ⟨dO_t, W2_e[j]⟩, dg = ⟨G, u⟩.
      let gateGrad = 0;
      for (let j = 0; j < h; j++) {
        const row = w2 + j * d;
        const gu = g * u[j];
        let G = 0;
        for (let i = 0; i < d; i++) {
          const w = W2[row + i];
          O[xo + i] += gu * w;
          G += dO[xo + i] * w;
          dW2[row + i] += gu * dO[xo + i];
        }
        gateGrad += G * u[j];
        const dU = g * G;
        if (swiglu) {
          da[j] = dU * b[j] * siluGrad(a[j]);
          db[j] = dU * silu(a[j]);
        } else {
          da[j] = dU * actGrad(a[j]);
        }
      }
      dg[t * k + s] = gateGrad;

      for (let i = 0; i < d; i++) {
        const xi = X[xo + i];
        const row = w1 + i * h;
        let acc = 0;
        for (let j = 0; j < h; j++) {
          dW1[row + j] += xi * da[j];
          acc += da[j] * W1[row + j];
        }
        if (W3 && dW3) {
          for (let j = 0; j < h; j++) {
            dW3[row + j] += xi * db[j];
            acc += db[j] * W3[row + j];
          }
        }
        dX[xo + i] += acc;
      }
    }
  }

  // Load balancing: f_e counts pairs before drops and is held constant, so the loss reaches
  // z only through P̄_e = mean_t p_{t,e}, with ∂L_aux/∂p_{t,e} = q_e = α·E·f_e/T.
  const alpha = config.auxLossCoef;
  let auxLoss: number | null = null;
  const q = new Float64Array(E);
  if (alpha > 0) {
    auxLoss = 0;
    for (let e = 0; e < E; e++) {
      const f = routing.expertLoad[e] / (T * k);
      let pMean = 0;
      for (let t = 0; t < T; t++) pMean += probs[t * E + e];
      pMean /= T;
      auxLoss += alpha * E * f * pMean;
      q[e] = (alpha * E * f) / T;
    }
  }

  const dp = new Float64Array(E);
  const dz = new Float64Array(E);
  for (let t = 0; t < T; t++) {
    const po = t * E;
    dp.fill(0);
    if (config.normalizeGates) {
      // g = p/s over S_t (dropped pairs included, with dg = 0): dp = (dg − ⟨g, dg⟩)/s.
      let chosen = 0;
      let gdg = 0;
      for (let s = 0; s < k; s++) {
        chosen += probs[po + experts[t * k + s]];
        gdg += gates[t * k + s] * dg[t * k + s];
      }
      for (let s = 0; s < k; s++) dp[experts[t * k + s]] = (dg[t * k + s] - gdg) / chosen;
    } else {
      for (let s = 0; s < k; s++) dp[experts[t * k + s]] = dg[t * k + s];
    }
    let dpDot = 0;
    let qDot = 0;
    for (let e = 0; e < E; e++) {
      dpDot += dp[e] * probs[po + e];
      qDot += q[e] * probs[po + e];
    }
    for (let e = 0; e < E; e++) {
      const p = probs[po + e];
      dz[e] = p * (dp[e] - dpDot);
      if (alpha > 0) dz[e] += p * (q[e] - qDot);
    }
    const xo = t * d;
    for (let i = 0; i < d; i++) {
      const xi = X[xo + i];
      const row = i * E;
      let acc = 0;
      for (let e = 0; e < E; e++) {
        dWr[row + e] += xi * dz[e];
        acc += dz[e] * Wr[row + e];
      }
      dX[xo + i] += acc;
    }
  }

  return { O, dX, dWr, dW1, dW2, dW3, routing, auxLoss };
}
