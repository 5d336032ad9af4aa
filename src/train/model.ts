/**
 * The small training model and its task (the layer of docs/design.md#the-layer inside a real model):
 *   z = x·W_in (d_in → d), r = z + MoE(z), y = r·W_out (d → d_out),
 *   loss = mean over T·d_out of (y − y*)² (+ the layer's load-balancing loss when α > 0),
 * where y* comes from a fixed random teacher of the same architecture (other weights). The
 * teacher's MoE part is scaled up (`teacherMoeScale`) so that a linear map cannot fit it: the
 * experts are needed. Data are drawn on the fly: batch `step` is a function of (seed, step).
 */
import { layerConfig, type DType, type LayerConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { referenceStep } from '../reference/layer.js';
import { generateInputs, Xoshiro128 } from '../rng.js';

export interface TrainConfig {
  /** T: tokens per step */
  tokens: number;
  inputDim: number;
  /** d */
  hidden: number;
  /** h */
  ffn: number;
  experts: number;
  topK: number;
  outputDim: number;
  steps: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Switch load-balancing coefficient α; 0 = off. */
  auxLoss: number;
  /**
   * The student layer's capacity factor, for capacity strategies (Tutel, GShard): 0 = no drops
   * (every expert padded to the busiest). Dropless strategies compute the same function at any
   * value, so their curves coincide. The teacher is always dropless.
   */
  capacityFactor: number;
  seed: number;
  /** The teacher's MoE weights W2 are multiplied by this, so its experts matter. */
  teacherMoeScale: number;
  /** The teacher's router weights Wr are multiplied by this (sharper routing). */
  teacherRouterScale: number;
  /**
   * Storage of the model's activations, weights and gradients. At f16 the optimizer keeps f32
   * master weights and f32 moments (mixed precision); every sum and the loss stay f32.
   */
  dtype: DType;
}

export const DEFAULT_TRAIN: TrainConfig = {
  tokens: 128,
  inputDim: 16,
  hidden: 16,
  ffn: 32,
  experts: 4,
  topK: 2,
  outputDim: 8,
  steps: 200,
  capacityFactor: 0,
  lr: 0.01,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  auxLoss: 0,
  seed: 1,
  teacherMoeScale: 1.5,
  teacherRouterScale: 2,
  dtype: 'f32',
};

export function trainConfig(partial: Partial<TrainConfig> = {}): TrainConfig {
  const c: TrainConfig = { ...DEFAULT_TRAIN };
  for (const [key, value] of Object.entries(partial)) if (value !== undefined) (c as unknown as Record<string, unknown>)[key] = value;
  for (const key of ['tokens', 'inputDim', 'hidden', 'ffn', 'experts', 'topK', 'outputDim', 'steps'] as const) {
    if (!Number.isSafeInteger(c[key]) || c[key] < 1) throw new UsageError(`${key}: ${c[key]} is not allowed; use a positive integer`);
  }
  if (!(c.capacityFactor >= 0 && Number.isFinite(c.capacityFactor))) throw new UsageError(`--capacity-factor: ${c.capacityFactor} is not allowed; use a number ≥ 0`);
  if (!(c.lr > 0 && Number.isFinite(c.lr))) throw new UsageError(`--lr: ${c.lr} is not allowed; use a number > 0`);
  if (c.topK > c.experts) throw new UsageError(`--top-k ${c.topK} exceeds --experts ${c.experts}`);
  moeConfig(c); // validates the layer part
  return c;
}

/** The MoE layer inside the model (SwiGLU, renormalised gates for k > 1, the run's capacity factor). */
export function moeConfig(c: TrainConfig, seed = c.seed): LayerConfig {
  return layerConfig({ tokens: c.tokens, hidden: c.hidden, ffn: c.ffn, experts: c.experts, topK: c.topK, auxLoss: c.auxLoss, seed, capacityFactor: c.capacityFactor, dtype: c.dtype });
}

/**
 * Static loss scale of a run: a power of two, 1 at f32 (mixed precision's loss scaling). The MSE
 * gradient carries 1/(T·d_out), so at large T the per-token gradients (dY, the layer's dO, its
 * experts' hidden gradients, dX) would sink below f16's normal range (6.1e-5), where precision
 * is lost and some GPUs flush to zero. Scaling the loss by S ≈ T lifts them to O(error/d_out);
 * the weight gradients, means over the tokens, grow by S too, so S stops at 2^10 to stay far
 * below f16's largest value (65504). Adam reads g/S, exactly: S is a power of two.
 */
export function lossScale(c: Pick<TrainConfig, 'dtype' | 'tokens'>): number {
  return c.dtype === 'f32' ? 1 : 2 ** Math.min(10, Math.floor(Math.log2(c.tokens)));
}

/** Parameters of the model, row-major float32: W_in [d_in,d], W_out [d,d_out], MoE weights. */
export interface ModelWeights {
  Win: Float32Array;
  Wout: Float32Array;
  Wr: Float32Array;
  W1: Float32Array;
  W2: Float32Array;
  W3: Float32Array;
}

/** Distinct seeds for distinct streams of one run. */
function subSeed(seed: number, stream: number): number {
  let z = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x2c1b3c6d) >>> 0;
  return (z ^ (z >>> 12)) >>> 0;
}

function initWeights(c: TrainConfig, seed: number): ModelWeights {
  const moe = generateInputs(moeConfig(c, seed));
  const rng = new Xoshiro128(subSeed(seed, 7));
  return {
    Win: rng.normalArray(c.inputDim * c.hidden, 1 / Math.sqrt(c.inputDim)),
    Wout: rng.normalArray(c.hidden * c.outputDim, 1 / Math.sqrt(c.hidden)),
    Wr: moe.Wr,
    W1: moe.W1,
    W2: moe.W2,
    W3: moe.W3 as Float32Array,
  };
}

/** The student's initial weights. */
export function studentWeights(c: TrainConfig): ModelWeights {
  return initWeights(c, subSeed(c.seed, 1));
}

/** The fixed teacher: same family, other weights, experts scaled up. */
export function teacherWeights(c: TrainConfig): ModelWeights {
  const w = initWeights(c, subSeed(c.seed, 2));
  w.W2 = w.W2.map((v) => v * c.teacherMoeScale);
  // A sharper router makes the teacher's routing (and so its experts) matter more.
  w.Wr = w.Wr.map((v) => v * c.teacherRouterScale);
  return w;
}

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

interface Weights64 {
  Win: Float64Array;
  Wout: Float64Array;
  Wr: Float64Array;
  W1: Float64Array;
  W2: Float64Array;
  W3: Float64Array;
}

function widen(w: ModelWeights): Weights64 {
  return { Win: f64(w.Win), Wout: f64(w.Wout), Wr: f64(w.Wr), W1: f64(w.W1), W2: f64(w.W2), W3: f64(w.W3) };
}

/** Forward (and, given dY's maker, backward) of the model in float64. */
function modelPass(c: TrainConfig, w: Weights64, x: Float64Array, target: Float64Array | null) {
  const { tokens: T, inputDim: di, hidden: d, outputDim: dout } = c;
  const cfg = moeConfig(c);
  const z = matmul(x, w.Win, T, di, d);
  const zero = new Float64Array(T * d);
  const fwd = referenceStep(cfg, { X: z, dO: zero, Wr: w.Wr, W1: w.W1, W2: w.W2, W3: w.W3 });
  const r = new Float64Array(T * d);
  for (let i = 0; i < r.length; i++) r[i] = z[i] + fwd.O[i];
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
  const dR = matmulNT(dY, w.Wout, T, dout, d);
  const bwd = referenceStep(cfg, { X: z, dO: dR, Wr: w.Wr, W1: w.W1, W2: w.W2, W3: w.W3 });
  const dZ = new Float64Array(T * d);
  for (let i = 0; i < dZ.length; i++) dZ[i] = dR[i] + bwd.dX[i];
  const dWin = matmulTN(x, dZ, T, di, d);
  const mse = sse / n;
  return {
    y,
    mse,
    aux: bwd.auxLoss ?? 0,
    loss: mse + (bwd.auxLoss ?? 0),
    grads: { Win: dWin, Wout: dWout, Wr: bwd.dWr, W1: bwd.dW1, W2: bwd.dW2, W3: bwd.dW3 as Float64Array },
    expertLoads: bwd.routing.expertLoad,
  };
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
  expertLoads: number[];
}

/** The float64 CPU training loop on the same data and initial weights: the yardstick for the GPU. */
export function referenceTraining(c: TrainConfig, steps = c.steps): ReferenceStepRecord[] {
  const data = new TeacherData(c);
  const w = widen(studentWeights(c));
  const names = ['Win', 'Wout', 'Wr', 'W1', 'W2', 'W3'] as const;
  const m = Object.fromEntries(names.map((k) => [k, new Float64Array(w[k].length)])) as unknown as Weights64;
  const v = Object.fromEntries(names.map((k) => [k, new Float64Array(w[k].length)])) as unknown as Weights64;
  const out: ReferenceStepRecord[] = [];
  for (let s = 0; s < steps; s++) {
    const b = data.batch(s);
    const pass = modelPass(c, w, f64(b.x), f64(b.target));
    const g = pass.grads!;
    const t = s + 1;
    const bc1 = 1 - c.beta1 ** t;
    const bc2 = 1 - c.beta2 ** t;
    for (const k of names) {
      const p = w[k], gk = g[k], mk = m[k], vk = v[k];
      for (let i = 0; i < p.length; i++) {
        mk[i] = c.beta1 * mk[i] + (1 - c.beta1) * gk[i];
        vk[i] = c.beta2 * vk[i] + (1 - c.beta2) * gk[i] * gk[i];
        p[i] -= (c.lr * (mk[i] / bc1)) / (Math.sqrt(vk[i] / bc2) + c.eps);
      }
    }
    out.push({ step: s, loss: pass.loss, mse: pass.mse!, aux: pass.aux!, expertLoads: Array.from(pass.expertLoads!) });
  }
  return out;
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
