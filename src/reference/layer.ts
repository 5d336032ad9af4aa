/**
 * The float64 CPU reference of docs/design.md#the-layer: one forward and backward of the MoE layer, the
 * yardstick every GPU strategy is verified against. Plain loops over typed arrays, token by
 * expert by expert (the per-pair math is in terms.ts, shared with the sampled reference): it runs on the "quick" shapes (T=512, d=64, h=128,
 * E=16) inside the test suite.
 */
import type { LayerConfig } from '../config.js';
import type { LayerInputs } from '../rng.js';
import { routeReference, type ReferenceRouting, type RouteOptions } from './routing.js';
import { auxGradient, expertPairs, finishScale, routerBackward, routerInputGrads, scaled, type ExpertWeights, type Scaled } from './terms.js';

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
  /** α·E·Σ_e f_e·P̄_e when config.auxLoss > 0, else null */
  auxLoss: number | null;
  /** Each tensor's scale, element by element: √(Σ terms²) of its sum, the comparison's floor (compare.ts). */
  scale: { O: Float64Array; dX: Float64Array; dWr: Float64Array; dW1: Float64Array; dW2: Float64Array; dW3: Float64Array | null };
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
 * adds its own gradient through the router probabilities. `routing` reuses a routing already
 * computed (verify's near-tie forcing) instead of routing again.
 */
export function referenceStep(config: LayerConfig, inputs: ReferenceInputs, options: RouteOptions & { routing?: ReferenceRouting } = {}): ReferenceResult {
  checkShapes(config, inputs);
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = config;
  const { X, dO, Wr } = inputs;
  const swiglu = config.activation === 'swiglu';
  const routing = options.routing ?? routeReference(config, X, Wr, options);
  const O = scaled(T * d);
  const dX = scaled(T * d);
  const dWr = scaled(d * E);
  const dW1 = scaled(E * d * h);
  const dW2 = scaled(E * h * d);
  const dW3 = swiglu ? scaled(E * d * h) : null;
  const view = (m: Scaled, e: number, n: number): Scaled => ({ v: m.v.subarray(e * n, (e + 1) * n), s: m.s.subarray(e * n, (e + 1) * n) });
  const row = (m: Scaled, t: number) => view(m, t, d);
  const x = (t: number) => X.subarray(t * d, t * d + d);
  // Expert by expert, every kept pair of it at once (terms.ts reads each weight row once a batch).
  const dg = new Float64Array(T * k); // stays 0 for dropped pairs
  for (let e = 0; e < E; e++) {
    const pairs: number[] = [];
    for (let p = 0; p < T * k; p++) if (routing.kept[p] && routing.experts[p] === e) pairs.push(p);
    if (!pairs.length) continue;
    const jobs = pairs.map((p) => {
      const t = Math.floor(p / k);
      return { x: x(t), dO: dO.subarray(t * d, t * d + d), g: routing.gates[p], o: row(O, t), dx: row(dX, t) };
    });
    const grads = { dW1: view(dW1, e, d * h), dW3: dW3 && view(dW3, e, d * h), dW2: view(dW2, e, h * d) };
    const out = new Float64Array(pairs.length);
    expertPairs(config, expertWeights(config, inputs, e), jobs, grads, out);
    pairs.forEach((p, i) => (dg[p] = out[i]));
  }
  const aux = auxGradient(config, routing);
  const dz = scaled(E);
  for (let t = 0; t < T; t++) {
    routerBackward(config, routing, t, dg.subarray(t * k, t * k + k), aux?.q ?? null, dz);
    routerInputGrads(config, x(t), Wr, dz, row(dX, t), dWr);
  }
  return {
    O: O.v,
    dX: dX.v,
    dWr: dWr.v,
    dW1: dW1.v,
    dW2: dW2.v,
    dW3: dW3?.v ?? null,
    routing,
    auxLoss: aux?.loss ?? null,
    scale: { O: finishScale(O)!, dX: finishScale(dX)!, dWr: finishScale(dWr)!, dW1: finishScale(dW1)!, dW2: finishScale(dW2)!, dW3: finishScale(dW3) },
  };
}

/** Expert e's slices of W1, W3, W2 as views (no copy). */
export function expertWeights(config: LayerConfig, inputs: Pick<ReferenceInputs, 'W1' | 'W2' | 'W3'>, e: number): ExpertWeights {
  const n = config.hidden * config.ffn;
  return { W1: inputs.W1.subarray(e * n, (e + 1) * n), W3: inputs.W3 && config.activation === 'swiglu' ? inputs.W3.subarray(e * n, (e + 1) * n) : null, W2: inputs.W2.subarray(e * n, (e + 1) * n) };
}
