import { maxOf } from './arrays.js';
import { UsageError } from './errors.js';

export type Activation = 'swiglu' | 'silu' | 'gelu';
export type Checkpoint = 'activations' | 'none' | 'full';
export type DType = 'f32' | 'f16';
export type Skew = { kind: 'uniform' } | { kind: 'zipf'; s: number };
/**
 * How routed pairs reach experts (docs/design.md#balanced-routing): 'top-k' by the router's
 * logits, or 'balanced', a fixed assignment that gives every expert T·k/E pairs (the best case).
 */
export type Routing = 'top-k' | 'balanced';

export const ACTIVATIONS: readonly Activation[] = ['swiglu', 'silu', 'gelu'];
export const CHECKPOINTS: readonly Checkpoint[] = ['activations', 'none', 'full'];
export const DTYPES: readonly DType[] = ['f32', 'f16'];
export const ROUTINGS: readonly Routing[] = ['top-k', 'balanced'];

/**
 * How the GEMM core's K loop multiplies (kernels/gemm/core.ts): 'simt' (f32 FMAs, any adapter),
 * 'subgroup-matrix' (f16 fragments on the matrix units with f32 accumulators: tensor cores on
 * NVIDIA) or 'subgroup-matrix-emulated' (the same engine with its three intrinsics done by
 * plain loops: how CI checks it on adapters without subgroup matrices).
 */
export type GemmEngine = 'simt' | 'subgroup-matrix' | 'subgroup-matrix-emulated';
export const GEMM_ENGINES: readonly GemmEngine[] = ['simt', 'subgroup-matrix', 'subgroup-matrix-emulated'];
/** What --gemm takes: an engine, or 'auto' (subgroup-matrix at f16 where the adapter has it). */
export type GemmRequest = 'auto' | GemmEngine;

/** One MoE layer and its routing policy: everything docs/design.md#the-layer needs to define the math. */
export interface LayerConfig {
  tokens: number; // T
  hidden: number; // d
  ffn: number; // h
  experts: number; // E
  topK: number; // k
  activation: Activation;
  /** 0 means "capacity = the busiest expert's load"; ignored by dropless strategies. */
  capacityFactor: number;
  /** Renormalise the k gates to sum to 1 (default: only when k > 1). */
  normalizeGates: boolean;
  checkpoint: Checkpoint;
  dtype: DType;
  skew: Skew;
  routing: Routing;
  /** Switch-style load-balancing loss coefficient α (`--aux-loss`; 0 = off). */
  auxLoss: number;
  seed: number;
}

export const DEFAULT_LAYER: LayerConfig = {
  tokens: 512,
  hidden: 64,
  ffn: 128,
  experts: 8,
  topK: 2,
  activation: 'swiglu',
  capacityFactor: 1,
  normalizeGates: true,
  checkpoint: 'activations',
  dtype: 'f32',
  skew: { kind: 'uniform' },
  routing: 'top-k',
  auxLoss: 0,
  seed: 1,
};

/**
 * The 0.1 library names, kept as deprecated aliases for one version (README, "As a library") and
 * mapped to the CLI's names by `currentNames` only: MoELayer.create, layerConfig and
 * verifyStrategies call it where options enter the library.
 */
export interface DeprecatedNames {
  /** @deprecated since 0.2: use `experts`. */
  numExperts?: number;
  /** @deprecated since 0.2: use `impl`. */
  dispatch?: string;
  /** @deprecated since 0.2: use `impl`. */
  strategies?: string[];
  /** @deprecated since 0.2: use `auxLoss`. */
  auxLossCoef?: number;
}

const CURRENT_NAME = { numExperts: 'experts', dispatch: 'impl', strategies: 'impl', auxLossCoef: 'auxLoss' } as const;

/** `options` with every deprecated name replaced by its current one (the current one wins when both are given). */
export function currentNames<T extends object>(options: T & DeprecatedNames): Omit<T, keyof DeprecatedNames> {
  const renamed: Record<string, unknown> = { ...(options as object) };
  for (const [old, name] of Object.entries(CURRENT_NAME)) {
    if (!(old in renamed)) continue;
    renamed[name] ??= renamed[old];
    delete renamed[old];
  }
  return renamed as Omit<T, keyof DeprecatedNames>;
}

/**
 * A validated config from any subset of its fields (undefined ones take the default, other keys
 * are not copied); normalizeGates defaults to k > 1 (Tutel's rule).
 */
export function layerConfig(partial: Partial<LayerConfig> & Pick<DeprecatedNames, 'numExperts' | 'auxLossCoef'>): LayerConfig {
  const named: Record<string, unknown> = currentNames(partial);
  const fields: Partial<LayerConfig> = Object.fromEntries(Object.keys(DEFAULT_LAYER).filter((key) => named[key] !== undefined).map((key) => [key, named[key]]));
  const config: LayerConfig = { ...DEFAULT_LAYER, normalizeGates: (fields.topK ?? DEFAULT_LAYER.topK) > 1, ...fields };
  validateLayerConfig(config);
  return config;
}

function positiveInteger(value: number, flag: string): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new UsageError(`--${flag}: ${value} is not allowed; use a positive integer`);
  }
}

export function validateLayerConfig(c: LayerConfig): void {
  positiveInteger(c.tokens, 'tokens');
  positiveInteger(c.hidden, 'hidden');
  positiveInteger(c.ffn, 'ffn');
  positiveInteger(c.experts, 'experts');
  positiveInteger(c.topK, 'top-k');
  if (c.topK > c.experts) throw new UsageError(`--top-k: ${c.topK} is larger than --experts ${c.experts}; use 1..${c.experts}`);
  if (!ACTIVATIONS.includes(c.activation)) throw new UsageError(`--activation: "${c.activation}" is unknown; use one of ${ACTIVATIONS.join(', ')}`);
  if (!CHECKPOINTS.includes(c.checkpoint)) throw new UsageError(`--checkpoint: "${c.checkpoint}" is unknown; use one of ${CHECKPOINTS.join(', ')}`);
  if (!DTYPES.includes(c.dtype)) throw new UsageError(`--dtype: "${c.dtype}" is unknown; use one of ${DTYPES.join(', ')}`);
  if (!(Number.isFinite(c.capacityFactor) && c.capacityFactor >= 0)) {
    throw new UsageError(`--capacity-factor: ${c.capacityFactor} is not allowed; use a number ≥ 0 (0 = the busiest expert's load)`);
  }
  // C = k·⌊cf·⌈T/E⌉⌋ (capacityOf): at cf = E every expert has a slot for each of the T tokens it can
  // receive; a larger factor only adds empty slots, and 2^31 of them took minutes of buffer chunks.
  if (c.capacityFactor > c.experts) {
    throw new UsageError(`--capacity-factor: ${c.capacityFactor} is more than --experts ${c.experts}: at cf = E every expert already has a slot for every token (C = k·E·⌈T/E⌉ ≥ k·T), and a larger factor only adds empty slots; use 0..${c.experts}`);
  }
  if (!(Number.isFinite(c.auxLoss) && c.auxLoss >= 0)) throw new UsageError(`--aux-loss: ${c.auxLoss} is not allowed; use a number ≥ 0`);
  if (c.skew.kind === 'zipf' && !(Number.isFinite(c.skew.s) && c.skew.s >= 0)) {
    throw new UsageError(`--skew: zipf:${c.skew.s} is not allowed; use zipf:<s> with s ≥ 0`);
  }
  if (!ROUTINGS.includes(c.routing)) throw new UsageError(`--routing: "${c.routing}" is unknown; use one of ${ROUTINGS.join(', ')}`);
  if (c.routing === 'balanced' && c.skew.kind === 'zipf' && c.skew.s > 0) {
    throw new UsageError(`--routing balanced fixes every expert's load, which --skew ${formatSkew(c.skew)} is meant to unbalance; use one of them (--skew uniform or --routing top-k)`);
  }
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff) throw new UsageError(`--seed: ${c.seed} is not allowed; use an integer 0..4294967295`);
}

export function parseSkew(text: string): Skew {
  if (text === 'uniform') return { kind: 'uniform' };
  const match = /^zipf:(\d+(?:\.\d+)?)$/.exec(text);
  if (!match) throw new UsageError(`--skew: "${text}" is unknown; use uniform or zipf:<s> (e.g. zipf:1.2)`);
  return { kind: 'zipf', s: Number(match[1]) };
}

export function formatSkew(skew: Skew): string {
  return skew.kind === 'uniform' ? 'uniform' : `zipf:${skew.s}`;
}

/** β_e = −s·ln(e+1) under zipf:s: a fixed router bias, part of the layer (docs/design.md#the-layer). */
export function skewBias(skew: Skew, experts: number): Float64Array {
  const bias = new Float64Array(experts);
  if (skew.kind === 'zipf') for (let e = 0; e < experts; e++) bias[e] = -skew.s * Math.log(e + 1);
  return bias;
}

/**
 * Balanced routing's expert loads (docs/design.md#balanced-routing): pair p = t·k + j goes to
 * expert p mod E, so each expert gets ⌊T·k/E⌋ pairs and the experts below T·k mod E one more.
 */
export function balancedLoads(c: Pick<LayerConfig, 'tokens' | 'experts' | 'topK'>): number[] {
  const R = c.tokens * c.topK;
  const base = Math.floor(R / c.experts);
  return Array.from({ length: c.experts }, (_, e) => base + (e < R % c.experts ? 1 : 0));
}

/**
 * The capacity rule of docs/design.md#capacity-and-drops, the one place it is written: with
 * cf > 0, C = k·⌊cf·⌈T/E⌉⌋; with cf = 0, the busiest expert's load, or without routing (a plan
 * before any run, or before the loads are read back) the uniform share ⌈T·k/E⌉.
 */
export function capacityOf(c: Pick<LayerConfig, 'tokens' | 'experts' | 'topK' | 'capacityFactor'>, loads?: ArrayLike<number> | null): number {
  if (c.capacityFactor > 0) return c.topK * Math.floor(c.capacityFactor * Math.ceil(c.tokens / c.experts));
  if (loads && loads.length > 0) return maxOf(loads);
  return Math.ceil((c.tokens * c.topK) / c.experts);
}

/** Expert matrices per expert: 3 for SwiGLU (W1, W3, W2), 2 for the plain MLP. */
export function expertMatrices(activation: Activation): number {
  return activation === 'swiglu' ? 3 : 2;
}

/** Useful FLOPs of docs/design.md#useful-flops for `keptPairs` routed rows; train = 3× forward. */
export function usefulFlops(c: LayerConfig, keptPairs: number, pass: 'forward' | 'train'): number {
  const forward = 2 * keptPairs * c.hidden * c.ffn * expertMatrices(c.activation) + 2 * c.tokens * c.hidden * c.experts;
  return pass === 'train' ? 3 * forward : forward;
}

export interface Preset {
  name: string;
  description: string;
  hidden: number[];
  ffn: number[] | 'x4';
  experts: number[];
  topK: number[];
  tokens: number;
}

export const PRESETS: readonly Preset[] = [
  { name: 'moeblaze-conf4', description: "MoEBlaze paper's largest setting", hidden: [2048], ffn: [8192], experts: [16], topK: [2], tokens: 32768 },
  { name: 'moeblaze-paper', description: "MoEBlaze paper's sweep", hidden: [512, 1024, 2048], ffn: 'x4', experts: [4, 8, 16], topK: [1, 2, 4], tokens: 32768 },
  { name: 'mixtral-8x7b-layer', description: 'one Mixtral 8x7B MoE layer', hidden: [4096], ffn: [14336], experts: [8], topK: [2], tokens: 8192 },
  { name: 'deepseek-v3-like-layer', description: 'DeepSeek-V3-like routed experts (no shared expert, softmax router)', hidden: [7168], ffn: [2048], experts: [256], topK: [8], tokens: 4096 },
  { name: 'qwen3-30b-a3b-like-layer', description: 'Qwen3-30B-A3B-like MoE layer', hidden: [2048], ffn: [768], experts: [128], topK: [8], tokens: 8192 },
  { name: 'megablocks-xs', description: 'MegaBlocks paper XS', hidden: [512], ffn: 'x4', experts: [64], topK: [1], tokens: 65536 },
  { name: 'megablocks-s', description: 'MegaBlocks paper S', hidden: [768], ffn: 'x4', experts: [64], topK: [1], tokens: 32768 },
  { name: 'megablocks-m', description: 'MegaBlocks paper M', hidden: [1024], ffn: 'x4', experts: [64], topK: [1], tokens: 8192 },
  { name: 'fine-64', description: 'fine-grained 64 experts', hidden: [2048], ffn: [1024], experts: [64], topK: [8], tokens: 16384 },
  { name: 'quick', description: 'default sweep, small enough for a software GPU', hidden: [64], ffn: [128], experts: [4, 8, 16], topK: [2], tokens: 512 },
];

export function findPreset(name: string): Preset {
  const preset = PRESETS.find((p) => p.name === name);
  if (!preset) throw new UsageError(`--preset: "${name}" is unknown; use one of ${PRESETS.map((p) => p.name).join(', ')}`);
  return preset;
}
