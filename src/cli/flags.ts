import { Flags, type Interfaces } from '@oclif/core';
import { ACTIVATIONS, CHECKPOINTS, DTYPES, GEMM_ENGINES, layerConfig, parseSkew, ROUTINGS, type LayerConfig, type Skew } from '../config.js';
import { UsageError } from '../errors.js';
import { BACKENDS, type AdapterSelection } from '../gpu/runtime.js';
import { parseBytes } from '../units.js';

/*
 * Flag parsers throw UsageError with a one-line message that names the flag: oclif would
 * otherwise print a generic multi-line message, and exit 1 for a plain Error (docs/design.md#exit-codes
 * wants 2 for every bad value).
 */

export function parseIntegerFlag(text: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = /^\s*[+-]?\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  // Digits beyond the safe range are still "an integer": say what the limit is, not what an integer is.
  if (!Number.isNaN(value) && value > max) throw new UsageError(`--${flag}: "${text.trim()}" is too large; at most ${max}`);
  if (!Number.isSafeInteger(value) || value < min) {
    const atMost = max === Number.MAX_SAFE_INTEGER ? '' : ` (at most ${max})`;
    const range = min === 1 ? `a positive integer${atMost}` : max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer ${min}..${max}`;
    throw new UsageError(`--${flag}: "${text}" is not allowed; use ${range}`);
  }
  return value;
}

/**
 * The largest tokens, hidden, ffn, experts and top-k the tool takes: the kernels index elements
 * and rows with 32-bit integers, and an array of one row per token or expert must fit in memory.
 */
export const LAYER_DIMENSION_MAX = 2 ** 31 - 1;

/** Floats ≥ 0 (oclif has no float flag); exponents are accepted, NaN and Infinity are not. */
export function parseNonNegativeFloat(text: string, flag: string): number {
  const value = /^\s*\+?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$/.test(text) ? Number(text) : Number.NaN;
  // "1e400" overflows to Infinity: too large, and said so rather than "not a number".
  if (value === Infinity) throw new UsageError(`--${flag}: "${text.trim()}" is too large; use a finite number ≥ 0`);
  if (!Number.isFinite(value) || value < 0) throw new UsageError(`--${flag}: "${text}" is not allowed; use a number ≥ 0`);
  return value;
}

const positiveInteger = Flags.custom<number>({
  parse: async (input, _ctx, opts) => parseIntegerFlag(input, opts.name, 1, LAYER_DIMENSION_MAX),
});

const nonNegativeFloat = Flags.custom<number>({
  parse: async (input, _ctx, opts) => parseNonNegativeFloat(input, opts.name),
});

/** A byte-size flag (--memory-limit, --chunk-bytes …): B, KiB, MiB, GiB suffixes; a bare number is GiB. */
export const sizeFlag = Flags.custom<number>({
  parse: async (input, _ctx, opts) => parseBytes(input, opts.name),
  helpValue: '<size>',
});

/** Flags every GPU command takes to pick its adapter; high-performance is the default preference. */
export const gpuFlags = {
  adapter: Flags.string({
    description: 'use the adapter whose name, description, vendor or architecture contains this text (case-insensitive), or adapter number N (0, 1, …) as `moeblaze devices` numbers them: one process per GPU',
    helpGroup: 'GPU',
    helpValue: '<substring|N>',
  }),
  backend: Flags.option({
    options: BACKENDS,
    description: "Dawn backend to use (default: Dawn's choice for the platform)",
    helpGroup: 'GPU',
  })(),
  gemm: Flags.option({
    options: ['auto', ...GEMM_ENGINES] as const,
    description:
      'GEMM engine: subgroup-matrix runs f16 operands on the matrix units (tensor cores) with f32 accumulation; simt runs f32 FMAs; auto takes subgroup-matrix at --dtype f16 where the adapter offers it, simt otherwise; subgroup-matrix-emulated is the same engine without the intrinsics (a check, slow) [default: auto]',
    helpGroup: 'GPU',
  })(),
  'nvidia-f16': Flags.boolean({
    allowNo: true,
    description:
      "Dawn's vulkan_enable_f16_on_nvidia toggle, which gives NVIDIA adapters shader-f16 and f16 subgroup matrices. Dawn keeps it off by default because of conformance failures in some f16 cases (crbug 42251215); --no-nvidia-f16 turns it off [default: on]",
    helpGroup: 'GPU',
  }),
  'unsafe-disable-robustness': Flags.boolean({
    description:
      "Dawn's disable_robustness toggle: storage accesses are no longer bounds-clamped, so an out-of-bounds access can read or corrupt other memory, fault or lose the device. Faster GEMMs; recorded in provenance. Off unless given",
    helpGroup: 'GPU',
  }),
};

export type GpuFlagValues = Partial<Interfaces.InferredFlags<typeof gpuFlags>>;

/**
 * The adapter, toggles and GEMM engine the flags ask for. A forced subgroup-matrix engine needs
 * f16 operands: with --dtype f32 (the default) that is a usage error here, before any GPU work.
 */
export function gpuSelection(flags: GpuFlagValues & { dtype?: string }): AdapterSelection {
  if (flags.gemm && flags.gemm !== 'auto' && flags.gemm !== 'simt' && (flags.dtype ?? 'f32') !== 'f16') {
    throw new UsageError(`--gemm ${flags.gemm} multiplies f16 operands; add --dtype f16 (f32 layers run on simt; --gemm auto picks per dtype)`);
  }
  return {
    adapter: flags.adapter,
    backend: flags.backend,
    powerPreference: 'high-performance',
    gemm: flags.gemm ?? 'auto',
    nvidiaF16: flags['nvidia-f16'] !== false,
    robustness: !flags['unsafe-disable-robustness'],
  };
}

/** The layer of docs/design.md#the-layer. No flag has a default here, so that a preset or the command can supply one. */
export const layerFlags = {
  tokens: positiveInteger({ description: 'T, tokens in the batch [default: 512]', helpGroup: 'LAYER' }),
  hidden: positiveInteger({ description: 'd, hidden size [default: 64]', helpGroup: 'LAYER' }),
  ffn: positiveInteger({ description: 'h, expert FFN size [default: 128]', helpGroup: 'LAYER' }),
  experts: positiveInteger({ description: 'E, number of experts [default: 8]', helpGroup: 'LAYER' }),
  'top-k': positiveInteger({ description: 'k, experts per token [default: 2]', helpGroup: 'LAYER' }),
  activation: Flags.option({ options: ACTIVATIONS, description: 'expert MLP: SwiGLU (3 matrices) or a 2-matrix MLP [default: swiglu]', helpGroup: 'LAYER' })(),
  'capacity-factor': nonNegativeFloat({
    description: 'capacity strategies: C = k·⌊cf·⌈T/E⌉⌋; 0 = the busiest expert\'s load [default: 1]',
    helpGroup: 'LAYER',
    helpValue: '<cf>',
  }),
  checkpoint: Flags.option({
    options: CHECKPOINTS,
    description: 'what the forward keeps for backward: a and b (activations), also u (none), nothing [R,h] (full) [default: activations]',
    helpGroup: 'LAYER',
  })(),
  skew: Flags.custom<Skew>({
    parse: async (input) => parseSkew(input),
    description: 'router bias: uniform, or zipf:<s> (β_e = −s·ln(e+1), hot low-numbered experts) [default: uniform]',
    helpGroup: 'LAYER',
    helpValue: 'uniform|zipf:<s>',
  })(),
  routing: Flags.option({
    options: ROUTINGS,
    description: 'top-k: each token\'s k largest logits; balanced: pair t·k+j goes to expert (t·k+j) mod E, so every expert gets T·k/E pairs (the best case; gates stay the softmax probabilities; not with --skew zipf) [default: top-k]',
    helpGroup: 'LAYER',
  })(),
  'normalize-gates': Flags.boolean({
    allowNo: true,
    description: 'renormalise the k gates to sum to 1 [default: only when k > 1]',
    helpGroup: 'LAYER',
  }),
  dtype: Flags.option({ options: DTYPES, description: 'storage type; f16 needs the adapter\'s shader-f16 [default: f32]', helpGroup: 'LAYER' })(),
  'aux-loss': nonNegativeFloat({ description: 'load-balancing loss coefficient α; 0 = off [default: 0]', helpGroup: 'LAYER', helpValue: '<alpha>' }),
  seed: Flags.custom<number>({
    parse: async (input, _ctx, opts) => parseIntegerFlag(input, opts.name, 0, 0xffffffff),
    description: 'seed of the input generator [default: 1]',
    helpGroup: 'LAYER',
  })(),
};

export type LayerFlagValues = Partial<Interfaces.InferredFlags<typeof layerFlags>>;

/**
 * The layer the flags describe, over `base` (a preset's shape, say); validated, so an
 * inconsistent combination (k > E) is a UsageError (exit 2) before any GPU work.
 */
export function layerConfigFromFlags(flags: LayerFlagValues, base: Partial<LayerConfig> = {}): LayerConfig {
  const fromFlags: Partial<LayerConfig> = {
    tokens: flags.tokens,
    hidden: flags.hidden,
    ffn: flags.ffn,
    experts: flags.experts,
    topK: flags['top-k'],
    activation: flags.activation,
    capacityFactor: flags['capacity-factor'],
    checkpoint: flags.checkpoint,
    skew: flags.skew,
    routing: flags.routing,
    normalizeGates: flags['normalize-gates'],
    dtype: flags.dtype,
    auxLoss: flags['aux-loss'],
    seed: flags.seed,
  };
  // A flag not given leaves the base's value (a preset's size), not the default.
  const given = Object.entries(fromFlags).filter(([, value]) => value !== undefined);
  return layerConfig({ ...base, ...Object.fromEntries(given) });
}

/** Comma-separated lists for sweeps: --experts 4,8,16. Each item is parsed and checked like the single flag. */
export function parseList<T>(text: string, flag: string, item: (text: string, flag: string) => T): T[] {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.some((p) => p === '')) throw new UsageError(`--${flag}: "${text}" has an empty item; use a comma-separated list, e.g. 4,8,16`);
  return parts.map((p) => item(p, flag));
}

export const integerList = Flags.custom<number[]>({
  parse: async (input, _ctx, opts) => parseList(input, opts.name, (t, f) => parseIntegerFlag(t, f, 1, LAYER_DIMENSION_MAX)),
  helpValue: '<n,n,…>',
});

export const floatList = Flags.custom<number[]>({
  parse: async (input, _ctx, opts) => parseList(input, opts.name, parseNonNegativeFloat),
  helpValue: '<x,x,…>',
});
