import { tableFigures, type BufferSpec, type BufferTable } from '../strategy/buffer-table.js';
import { floatBytes } from '../f16.js';
import type { DType, LayerConfig } from '../config.js';
import type { BufferTag } from '../gpu/allocator.js';

/**
 * Memory of one layer's train step as its strategy's buffer table declares it (docs/design.md#memory), at
 * a planning dtype, and the step of an L-layer model built from it. The tables are the single
 * source of truth: this file never lists a strategy's buffers, it only sums them.
 */
export type PlanDType = 'f32' | 'f16' | 'bf16';
export const PLAN_DTYPES: readonly PlanDType[] = ['f32', 'f16', 'bf16'];
export type Optimizer = 'adam' | 'sgd' | 'none';
export const OPTIMIZERS: readonly Optimizer[] = ['adam', 'sgd', 'none'];

/**
 * The storage dtype whose tables model a planning dtype. bf16 has f16's sizes, so its plan is
 * the f16 tables; the tables, not a rescaling, know which tensors stay f32 at any dtype (router
 * state, dg partial sums) and how 2-byte elements chunk.
 */
export function tableDtype(dtype: PlanDType): DType {
  return dtype === 'f32' ? 'f32' : 'f16';
}

/** The layer as the tables are built for this planning dtype. */
export function planConfig(config: LayerConfig, dtype: PlanDType): LayerConfig {
  return { ...config, dtype: tableDtype(dtype) };
}

function elements(s: BufferSpec): number {
  return s.shape.reduce((a, b) => a * b, 1);
}

/** One layer's step, as the table (built at the layer's dtype) predicts it, bytes as declared. */
export interface LayerMemory {
  /** Figures the allocator measures (docs/design.md#memory). */
  baseline: number;
  stepPeak: number;
  activationPeak: number;
  savedForBackward: number;
  /** activationPeak − savedForBackward: what the worst phase holds beyond the layer's own saved state. */
  transient: number;
  peakPhase: string;
  peakByTag: Partial<Record<BufferTag, number>>;
  /** The persistent part split for an L-layer, expert-parallel model. */
  routerWeights: number;
  expertWeights: number;
  routerGradients: number;
  expertGradients: number;
  /** X, dO and the kernel-parameter arena: once per model, not per layer. */
  inputs: number;
  routerWeightElements: number;
  expertWeightElements: number;
  /** Of those, the elements stored at 16 bits: each needs an f32 master copy for the update. */
  routerHalfWeightElements: number;
  expertHalfWeightElements: number;
  /** True when no saved tensor holds token rows on the expert side (the strategy gathers from X). */
  gathersFromInput: boolean;
}

/** Expert tensors are [E, ·, ·]; everything else persistent (router, inputs) is shared. */
function isExpertTensor(s: BufferSpec, experts: number): boolean {
  return s.shape.length === 3 && s.shape[0] === experts;
}

function halfElements(specs: BufferSpec[]): number {
  return specs.filter((s) => s.dtype === 'f16').reduce((a, s) => a + elements(s), 0);
}

export function layerMemory(table: BufferTable, config: LayerConfig): LayerMemory {
  const f = tableFigures(table);
  const sum = (specs: BufferSpec[]) => specs.reduce((a, s) => a + s.bytes, 0);
  const persistent = table.persistent;
  const pick = (tag: BufferTag, expert: boolean) => persistent.filter((s) => s.tag === tag && isExpertTensor(s, config.experts) === expert);
  const peakIndex = table.phases.indexOf(f.peakPhase);
  const peakByTag: Partial<Record<BufferTag, number>> = {};
  const live = [...persistent, ...table.step.filter((s) => table.phases.indexOf(s.from) <= peakIndex && peakIndex <= table.phases.indexOf(s.to))];
  for (const s of live) peakByTag[s.tag] = (peakByTag[s.tag] ?? 0) + s.bytes;
  const weights = (expert: boolean) => pick('weights', expert);
  const gathersFromInput = !table.step.some((s) => s.tag === 'activations-saved' && s.shape.at(-1) === config.hidden && s.shape[0] !== config.tokens);
  return {
    baseline: f.baseline,
    stepPeak: f.stepPeak,
    activationPeak: f.activationPeak,
    savedForBackward: f.savedForBackward,
    transient: f.activationPeak - f.savedForBackward,
    peakPhase: f.peakPhase,
    peakByTag,
    routerWeights: sum(weights(false)),
    expertWeights: sum(weights(true)),
    routerGradients: sum(pick('gradients', false)),
    expertGradients: sum(pick('gradients', true)),
    inputs: sum(persistent.filter((s) => s.tag !== 'weights' && s.tag !== 'gradients')),
    routerWeightElements: weights(false).reduce((a, s) => a + elements(s), 0),
    expertWeightElements: weights(true).reduce((a, s) => a + elements(s), 0),
    routerHalfWeightElements: halfElements(weights(false)),
    expertHalfWeightElements: halfElements(weights(true)),
    gathersFromInput,
  };
}

/** The mean of several layers' figures (one per sampled routing); the peak phase of the first. */
export function meanLayer(layers: LayerMemory[]): LayerMemory {
  if (layers.length === 1) return layers[0];
  const avg = (get: (m: LayerMemory) => number) => Math.round(layers.reduce((a, m) => a + get(m), 0) / layers.length);
  const tags = new Set(layers.flatMap((m) => Object.keys(m.peakByTag) as BufferTag[]));
  const peakByTag: Partial<Record<BufferTag, number>> = {};
  for (const tag of tags) peakByTag[tag] = avg((m) => m.peakByTag[tag] ?? 0);
  const first = layers[0];
  return {
    ...first,
    baseline: avg((m) => m.baseline),
    stepPeak: avg((m) => m.stepPeak),
    activationPeak: avg((m) => m.activationPeak),
    savedForBackward: avg((m) => m.savedForBackward),
    transient: avg((m) => m.transient),
    peakByTag,
  };
}

/** Bytes of optimizer state per weight element, for a weight stored at `dtype`. */
export function optimizerBytesPerElement(optimizer: Optimizer, dtype: PlanDType): number {
  // 16-bit training keeps an f32 master copy of the weights for the update.
  const master = dtype === 'f32' ? 0 : 4;
  if (optimizer === 'adam') return 8 + master; // two f32 moments
  if (optimizer === 'sgd') return 4 + master; // an f32 momentum buffer
  return 0;
}

export interface ModelOptions {
  layers: number;
  dtype: PlanDType;
  optimizer: Optimizer;
  /** GPUs the experts are split over (1: no expert parallelism). */
  expertParallel: number;
}

/** Per-layer additions that expert parallelism brings (src/plan/parallel.ts). */
export interface ParallelExtra {
  savedPerLayer: number;
  transient: number;
}

/** The step of an L-layer model on one GPU (docs/design.md#memory's L-layer estimate, with weights and optimizer). */
export interface ModelEstimate {
  weights: number;
  gradients: number;
  optimizer: number;
  /** L × saved for backward (+ received token rows under expert parallelism). */
  saved: number;
  /** (L − 1) × X: every layer but the first keeps its input for its weight gradients. */
  layerInputs: number;
  /** X, dO and kernel parameters, once. */
  inputs: number;
  /** The worst layer's peak above its saved state (+ all-to-all send and receive buffers). */
  transient: number;
  total: number;
}

export function modelEstimate(m: LayerMemory, config: LayerConfig, o: ModelOptions, extra: ParallelExtra = { savedPerLayer: 0, transient: 0 }): ModelEstimate {
  const share = 1 / o.expertParallel;
  const L = o.layers;
  const weights = L * (m.routerWeights + m.expertWeights * share);
  const gradients = L * (m.routerGradients + m.expertGradients * share);
  // Weights a table keeps in f32 at 16 bits (zero-buffer's router) need no master copy.
  const half = m.routerHalfWeightElements + m.expertHalfWeightElements * share;
  const all = m.routerWeightElements + m.expertWeightElements * share;
  const optimizer = L * ((all - half) * optimizerBytesPerElement(o.optimizer, 'f32') + half * optimizerBytesPerElement(o.optimizer, o.dtype));
  const saved = L * (m.savedForBackward + extra.savedPerLayer);
  const layerInputs = (L - 1) * Math.ceil((config.tokens * config.hidden * floatBytes(o.dtype)) / 4) * 4;
  const transient = m.transient + extra.transient;
  const parts = { weights, gradients, optimizer, saved, layerInputs, inputs: m.inputs, transient };
  const total = Object.values(parts).reduce((a, b) => a + b, 0);
  return { ...parts, total };
}
