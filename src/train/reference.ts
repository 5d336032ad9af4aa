/**
 * The float64 side of `moeblaze train`: the teacher's data and a CPU training loop of the model
 * of ./model.ts (every layer through the layer reference of src/reference), the yardstick the
 * GPU trainer is checked against.
 */
import { referenceStep } from '../reference/layer.js';
import { Xoshiro128 } from '../rng.js';
import { MOE_PARAMS, moeConfig, studentWeights, subSeed, teacherWeights, type ModelWeights, type MoeWeights, type TrainConfig } from './model.js';

const f64 = (a: Float32Array | Float64Array) => Float64Array.from(a);

/** C[M,N] = A[M,K]·B[K,N] in float64. */
export function matmul(A: Float64Array, B: Float64Array, M: number, K: number, N: number): Float64Array {
  const C = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let k = 0; k < K; k++) {
      const a = A[m * K + k];
      if (a === 0) continue;
      for (let n = 0; n < N; n++) C[m * N + n] += a * B[k * N + n];
    }
  return C;
}

/** C[M,N] = A[K,M]ᵀ·B[K,N]. */
export function matmulTN(A: Float64Array, B: Float64Array, K: number, M: number, N: number): Float64Array {
  const C = new Float64Array(M * N);
  for (let k = 0; k < K; k++)
    for (let m = 0; m < M; m++) {
      const a = A[k * M + m];
      for (let n = 0; n < N; n++) C[m * N + n] += a * B[k * N + n];
    }
  return C;
}

/** C[M,N] = A[M,K]·B[N,K]ᵀ. */
export function matmulNT(A: Float64Array, B: Float64Array, M: number, K: number, N: number): Float64Array {
  const C = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += A[m * K + k] * B[n * K + k];
      C[m * N + n] = s;
    }
  return C;
}

type Wide<T> = { [K in keyof T]: Float64Array };
type Moe64 = Wide<MoeWeights>;

interface Weights64 {
  Win: Float64Array;
  Wout: Float64Array;
  moe: Moe64[];
}

function widen(w: ModelWeights): Weights64 {
  return { Win: f64(w.Win), Wout: f64(w.Wout), moe: w.moe.map((m) => ({ Wr: f64(m.Wr), W1: f64(m.W1), W2: f64(m.W2), W3: f64(m.W3) })) };
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v + b[i]);
}

/**
 * Forward (and, given the target, backward) of the model in float64: x_{i+1} = x_i + MoE_i(x_i)
 * forward; backward from the last layer down, the residual passing dO_i on to the layer below
 * next to layer i's dX (dO_{i−1} = dO_i + dX_i). The layers are those of `w` (the teacher has one).
 */
function modelPass(c: TrainConfig, w: Weights64, x: Float64Array, target: Float64Array | null) {
  const { tokens: T, inputDim: di, hidden: d, outputDim: dout } = c;
  const cfg = moeConfig(c);
  const zero = new Float64Array(T * d);
  // inputs[i] is layer i's X; the last entry is the head's input r.
  const inputs = [matmul(x, w.Win, T, di, d)];
  for (const m of w.moe) inputs.push(add(inputs.at(-1)!, referenceStep(cfg, { X: inputs.at(-1)!, dO: zero, ...m }).O));
  const r = inputs.at(-1)!;
  const y = matmul(r, w.Wout, T, d, dout);
  if (!target) return { y, loss: 0, grads: null };
  const n = T * dout;
  let sse = 0;
  const dY = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const e = y[i] - target[i];
    sse += e * e;
    dY[i] = (2 / n) * e;
  }
  const dWout = matmulTN(r, dY, T, d, dout);
  let dO = matmulNT(dY, w.Wout, T, dout, d);
  const moe: Moe64[] = [];
  let aux = 0;
  let expertLoads: number[] = [];
  for (let i = w.moe.length - 1; i >= 0; i--) {
    const bwd = referenceStep(cfg, { X: inputs[i], dO, ...w.moe[i] });
    moe[i] = { Wr: bwd.dWr, W1: bwd.dW1, W2: bwd.dW2, W3: bwd.dW3 as Float64Array };
    aux += bwd.auxLoss ?? 0;
    if (i === 0) expertLoads = Array.from(bwd.routing.expertLoad);
    dO = add(dO, bwd.dX);
  }
  const dWin = matmulTN(x, dO, T, di, d);
  const mse = sse / n;
  return { y, mse, aux, loss: mse + aux, grads: { Win: dWin, Wout: dWout, moe }, expertLoads };
}

/** Batch `step` (0-based): inputs x ~ N(0,1) [T, d_in] and the teacher's outputs [T, d_out]. */
export interface Batch {
  x: Float32Array;
  target: Float32Array;
}

export class TeacherData {
  private readonly teacher: Weights64;

  constructor(readonly config: TrainConfig) {
    this.teacher = widen(teacherWeights(config));
  }

  batch(step: number): Batch {
    const c = this.config;
    const x = new Xoshiro128(subSeed(c.seed, 1000 + step)).normalArray(c.tokens * c.inputDim);
    // The target function must not depend on the student's capacity: the teacher never drops.
    const { y } = modelPass({ ...c, capacityFactor: 0 }, this.teacher, f64(x), null);
    return { x, target: Float32Array.from(y) };
  }
}

export interface ReferenceStepRecord {
  step: number;
  loss: number;
  mse: number;
  aux: number;
  /** Layer 1's. */
  expertLoads: number[];
}

/** Every parameter of a float64 model, flat: W_in, W_out, then each layer's Wr, W1, W2, W3. */
function parameters(w: Weights64): Float64Array[] {
  return [w.Win, w.Wout, ...w.moe.flatMap((m) => MOE_PARAMS.map((k) => m[k]))];
}

/** The float64 CPU training loop on the same data and initial weights: the yardstick for the GPU. */
export function referenceTraining(c: TrainConfig, steps = c.steps): ReferenceStepRecord[] {
  const data = new TeacherData(c);
  const w = widen(studentWeights(c));
  const params = parameters(w);
  const m = params.map((p) => new Float64Array(p.length));
  const v = params.map((p) => new Float64Array(p.length));
  const out: ReferenceStepRecord[] = [];
  for (let s = 0; s < steps; s++) {
    const b = data.batch(s);
    const pass = modelPass(c, w, f64(b.x), f64(b.target));
    const g = parameters(pass.grads!);
    const t = s + 1;
    const bc1 = 1 - c.beta1 ** t;
    const bc2 = 1 - c.beta2 ** t;
    for (const [k, p] of params.entries()) {
      const gk = g[k], mk = m[k], vk = v[k];
      for (let i = 0; i < p.length; i++) {
        mk[i] = c.beta1 * mk[i] + (1 - c.beta1) * gk[i];
        vk[i] = c.beta2 * vk[i] + (1 - c.beta2) * gk[i] * gk[i];
        p[i] -= (c.lr * (mk[i] / bc1)) / (Math.sqrt(vk[i] / bc2) + c.eps);
      }
    }
    out.push({ step: s, loss: pass.loss, mse: pass.mse!, aux: pass.aux!, expertLoads: pass.expertLoads! });
  }
  return out;
}

/**
 * The Switch load-balancing loss α·E·Σ_e f_e·P̄_e of one layer (docs/design.md#backward): f_e from
 * its expert loads, P̄_e the mean router probability over its input X [T,d] with router Wr [d,E].
 */
export function loadBalancingLoss(c: TrainConfig, X: Float32Array, Wr: Float32Array, expertLoads: readonly number[]): number {
  const { tokens: T, hidden: d, experts: E, topK: k } = c;
  const pMean = new Float64Array(E);
  const logits = new Float64Array(E);
  for (let t = 0; t < T; t++) {
    let max = -Infinity;
    for (let e = 0; e < E; e++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += X[t * d + i] * Wr[i * E + e];
      logits[e] = s;
      max = Math.max(max, s);
    }
    let sum = 0;
    for (let e = 0; e < E; e++) sum += (logits[e] = Math.exp(logits[e] - max));
    for (let e = 0; e < E; e++) pMean[e] += logits[e] / sum / T;
  }
  let aux = 0;
  for (let e = 0; e < E; e++) aux += c.auxLoss * E * (expertLoads[e] / (T * k)) * pMean[e];
  return aux;
}

/**
 * The best a model without experts can do: the least-squares linear map x → y* fitted on
 * `fitBatches` batches (the model's residual path alone is linear), its MSE on later batches.
 * A trained model whose loss is well below this uses its experts.
 */
export function linearBaselineMse(c: TrainConfig, fitBatches = 20, testBatches = 5): number {
  const data = new TeacherData(c);
  const { inputDim: di, outputDim: dout, tokens: T } = c;
  const xtx = new Float64Array(di * di);
  const xty = new Float64Array(di * dout);
  for (let b = 0; b < fitBatches; b++) {
    const { x, target } = data.batch(100_000 + b);
    for (let t = 0; t < T; t++)
      for (let i = 0; i < di; i++) {
        const xi = x[t * di + i];
        for (let j = 0; j < di; j++) xtx[i * di + j] += xi * x[t * di + j];
        for (let o = 0; o < dout; o++) xty[i * dout + o] += xi * target[t * dout + o];
      }
  }
  // Gauss–Jordan on [XᵀX | XᵀY] (XᵀX is positive definite for fitBatches·T ≫ d_in).
  const A = Array.from({ length: di }, (_, i) => [...xtx.subarray(i * di, (i + 1) * di), ...xty.subarray(i * dout, (i + 1) * dout)]);
  for (let col = 0; col < di; col++) {
    let pivot = col;
    for (let r = col + 1; r < di; r++) if (Math.abs(A[r][col]) > Math.abs(A[pivot][col])) pivot = r;
    [A[col], A[pivot]] = [A[pivot], A[col]];
    const p = A[col][col];
    for (let j = 0; j < di + dout; j++) A[col][j] /= p;
    for (let r = 0; r < di; r++) {
      if (r === col) continue;
      const f = A[r][col];
      if (f !== 0) for (let j = 0; j < di + dout; j++) A[r][j] -= f * A[col][j];
    }
  }
  let sse = 0;
  let n = 0;
  for (let b = 0; b < testBatches; b++) {
    const { x, target } = data.batch(200_000 + b);
    for (let t = 0; t < T; t++)
      for (let o = 0; o < dout; o++) {
        let y = 0;
        for (let i = 0; i < di; i++) y += x[t * di + i] * A[i][di + o];
        const e = y - target[t * dout + o];
        sse += e * e;
        n++;
      }
  }
  return sse / n;
}
