/**
 * The small training model and its task (the layer of docs/design.md#the-layer inside a real model):
 *   z = x·W_in (d_in → d), x_1 = z, x_{i+1} = x_i + MoE_i(x_i) for layers i = 1..L,
 *   y = x_{L+1}·W_out (d → d_out),
 *   loss = mean over T·d_out of (y − y*)² (+ each layer's load-balancing loss when α > 0),
 * where y* comes from a fixed random teacher of the same architecture with one MoE layer (other
 * weights). The teacher's MoE part is scaled up (`teacherMoeScale`) so that a linear map cannot
 * fit it: the experts are needed. Data are drawn on the fly: batch `step` is a function of
 * (seed, step). The float64 side (teacher data, reference loop) is in ./reference.ts.
 */
import { layerConfig, type DType, type LayerConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { generateInputs, Xoshiro128 } from '../rng.js';

/**
 * The most MoE layers `train --layers` stacks. Every layer is real GPU memory and a step of host
 * round trips (forward, routing readback, backward): a software adapter would take host memory
 * until the machine gives out long before the allocator could report a device out-of-memory.
 */
export const TRAIN_LAYERS_MAX = 1024;

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
  /** L: MoE layers of the student, each with its residual (the teacher has one). */
  layers: number;
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
  layers: 1,
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
  if (!Number.isSafeInteger(c.layers) || c.layers < 1 || c.layers > TRAIN_LAYERS_MAX) throw new UsageError(`--layers: ${c.layers} is not allowed; use a positive integer (at most ${TRAIN_LAYERS_MAX})`);
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

/** One MoE layer's parameters, row-major float32 (docs/design.md#the-layer), in this order. */
export const MOE_PARAMS = ['Wr', 'W1', 'W2', 'W3'] as const;
export type MoeWeights = Record<(typeof MOE_PARAMS)[number], Float32Array>;

/** Parameters of the model: W_in [d_in,d], W_out [d,d_out], and each MoE layer's weights in order. */
export interface ModelWeights {
  Win: Float32Array;
  Wout: Float32Array;
  moe: MoeWeights[];
}

/** Distinct seeds for distinct streams of one run. */
export function subSeed(seed: number, stream: number): number {
  let z = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x2c1b3c6d) >>> 0;
  return (z ^ (z >>> 12)) >>> 0;
}

function moeWeights(c: TrainConfig, seed: number): MoeWeights {
  const moe = generateInputs(moeConfig(c, seed));
  return { Wr: moe.Wr, W1: moe.W1, W2: moe.W2, W3: moe.W3 as Float32Array };
}

/** Layer 1 draws from `seed` itself, so a one-layer model keeps the weights it always had. */
function initWeights(c: TrainConfig, seed: number, layers: number): ModelWeights {
  const rng = new Xoshiro128(subSeed(seed, 7));
  return {
    Win: rng.normalArray(c.inputDim * c.hidden, 1 / Math.sqrt(c.inputDim)),
    Wout: rng.normalArray(c.hidden * c.outputDim, 1 / Math.sqrt(c.hidden)),
    moe: Array.from({ length: layers }, (_, i) => moeWeights(c, i === 0 ? seed : subSeed(seed, 100 + i))),
  };
}

/**
 * The student's initial weights: `layers` MoE layers, each one's W2 scaled by 1/L, so that the
 * L residual branches together start as large as one. The layer has no normalisation and SwiGLU
 * is quadratic in its input: unscaled, each layer would square the residual stream's size (a
 * first loss in the thousands at L = 4); with 1/√L (GPT-2's residual scaling) an 8-layer run at
 * the default learning rate blew up within 40 steps. At L = 1 the weights are the one-layer model's.
 */
export function studentWeights(c: TrainConfig): ModelWeights {
  const w = initWeights(c, subSeed(c.seed, 1), c.layers);
  if (c.layers > 1) for (const m of w.moe) m.W2 = m.W2.map((v) => v / c.layers);
  return w;
}

/** The fixed teacher: same family with one MoE layer, other weights, experts scaled up. */
export function teacherWeights(c: TrainConfig): ModelWeights {
  const w = initWeights(c, subSeed(c.seed, 2), 1);
  const [moe] = w.moe;
  moe.W2 = moe.W2.map((v) => v * c.teacherMoeScale);
  // A sharper router makes the teacher's routing (and so its experts) matter more.
  moe.Wr = moe.Wr.map((v) => v * c.teacherRouterScale);
  return w;
}
