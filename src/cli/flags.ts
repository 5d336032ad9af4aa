import { Flags, type Interfaces } from '@oclif/core';
import { GEMM_ENGINES, layerConfig, type LayerConfig } from '../config.js';
import { parseList } from '../flag-parsers.js';
import { LAYER_FIELDS, type LayerField } from '../layer-fields.js';
import { UsageError } from '../errors.js';
import { BACKENDS, type AdapterSelection } from '../gpu/runtime.js';
import { ALLOCATOR_MODES } from '../gpu/allocator.js';
import type { TuningTable } from '../gpu/tuning.js';
import { parseBytes } from '../units.js';

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
  allocator: Flags.option({
    options: ALLOCATOR_MODES,
    description:
      'how GPU buffers are allocated: caching keeps freed buffers, keyed by exact size and usage, for reuse (as PyTorch\'s caching allocator does), so a steady-state step creates none; fresh creates and destroys every buffer (the behaviour before caching, for comparison). Live bytes and peaks are the same either way; caching also reports reserved bytes [default: caching]',
    helpGroup: 'GPU',
  })(),
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
export function gpuSelection(flags: GpuFlagValues & { dtype?: string; tuning?: { table: TuningTable } }): AdapterSelection {
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
    allocator: flags.allocator ?? 'caching',
    ...(flags.tuning && { tuning: flags.tuning.table }),
  };
}

/** The oclif flag of one entry of the layer-field table, in the LAYER help group. */
function layerFlag(entry: LayerField): unknown {
  const help = { description: entry.help, helpGroup: 'LAYER', ...(entry.helpValue === undefined ? {} : { helpValue: entry.helpValue }) };
  if ('negatable' in entry) return Flags.boolean({ allowNo: true, ...help });
  if ('options' in entry) return Flags.option({ options: entry.options as readonly string[], ...help })();
  const parse = entry.parse as (text: string, flag: string) => unknown;
  return Flags.custom<unknown>({ parse: async (input, _ctx, opts) => parse(input, opts.name), ...help })();
}

/** The comma-list flag bench sweeps an entry with, in the SWEEP help group. */
function listFlag(entry: LayerField & { list: object; parse: unknown }): unknown {
  const parse = entry.parse as (text: string, flag: string) => unknown;
  return Flags.custom<unknown[]>({
    parse: async (input, _ctx, opts) => parseList(input, opts.name, parse),
    description: entry.list.help,
    helpGroup: 'SWEEP',
    helpValue: entry.list.helpValue,
  })();
}

type Entry = (typeof LAYER_FIELDS)[number];
type ListEntry = Extract<Entry, { list: object }>;
type LayerFlags = { [E in Entry as E['flag']]: E extends { negatable: true } ? Interfaces.BooleanFlag<boolean> : Interfaces.OptionFlag<LayerConfig[E['field']] | undefined> };
type ListFlags = { [E in ListEntry as E['flag']]: Interfaces.OptionFlag<LayerConfig[E['field']][] | undefined> };

/**
 * The layer of docs/design.md#the-layer, one flag per entry of the layer-field table
 * (src/layer-fields.ts). No flag has a default here, so that a preset or the command can supply one.
 */
export const layerFlags = Object.fromEntries(LAYER_FIELDS.map((e) => [e.flag, layerFlag(e)])) as LayerFlags;

/** bench's flags for the fields it sweeps, as comma lists (they replace the single-value layer flags). */
export const sweepListFlags = Object.fromEntries(LAYER_FIELDS.flatMap((e) => ('list' in e ? [[e.flag, listFlag(e)]] : []))) as ListFlags;

/** Some of the layer flags, by name (a command that models only part of the layer). */
export function pickLayerFlags<N extends keyof LayerFlags>(names: readonly N[]): Pick<LayerFlags, N> {
  return Object.fromEntries(names.map((n) => [n, layerFlags[n]])) as Pick<LayerFlags, N>;
}

export type LayerFlagValues = Partial<Interfaces.InferredFlags<LayerFlags>>;

/**
 * The layer the flags describe, over `base` (a preset's shape, say); validated, so an
 * inconsistent combination (k > E) is a UsageError (exit 2) before any GPU work.
 */
export function layerConfigFromFlags(flags: LayerFlagValues, base: Partial<LayerConfig> = {}): LayerConfig {
  // A flag not given leaves the base's value (a preset's size), not the default.
  const given = LAYER_FIELDS.flatMap((e) => (flags[e.flag] === undefined ? [] : [[e.field, flags[e.flag]]]));
  return layerConfig({ ...base, ...Object.fromEntries(given) });
}
