import { DEFAULT_LAYER, formatSkew, type LayerConfig } from '../config.js';
import { flagOfField, LAYER_FIELDS, LAYER_FIELDS_IN_KEY_ORDER } from '../layer-fields.js';
import { UsageError } from '../errors.js';
import { DEFAULT_SAMPLING, type SamplingPolicy } from '../measure/stats.js';
import { STRATEGIES } from '../registry.js';
import { sweepCases, type SweepCases, type SweepSpec } from './cases.js';
import type { BenchResults, BenchSettings, GpuSettings, SavedSweep } from './schema.js';

export type { GpuSettings };

/*
 * What defines a sweep, from the flags or from a results.json: `bench --resume DIR` continues
 * the sweep saved in DIR, whatever the new command line's defaults are, and refuses flags that
 * would change it (a resumed file mixing two sweeps would lose cases or compare unlike runs).
 */

/** The sweep flags as given: undefined for every flag not on the command line. */
export type GivenSweep = Partial<SweepSpec>;

/** Which float64 check each case gets (`--check`). */
export type CheckMode = 'auto' | 'sampled';

export const DEFAULT_GPU_SETTINGS: GpuSettings = { gemm: 'auto', nvidiaF16: true, robustness: true };

/** Run settings that are not part of the case keys but that a resumed run must keep. */
export interface RunSettings {
  layers: number;
  memoryLimit: number | null;
  sampling: SamplingPolicy;
  check: CheckMode;
  gpu: GpuSettings;
}

export const DEFAULT_MAX_TIME_S = 5;
export const DEFAULT_LAYERS = 32;

/** The sweep's own settings beyond the layer's fields; each is set by the flag of the same name. */
const OWN_FIELDS = ['impl', 'preset', 'pass'] as const;

/** The flag that sets a sweep field, without the dashes. */
function flagOf(key: keyof SweepSpec): string {
  return (OWN_FIELDS as readonly string[]).includes(key) ? key : flagOfField(key as keyof LayerConfig);
}

/** The sweep as bench's parsed flags give it: the layer fields by the layer-field table, undefined where not given. */
export function givenSweep(flags: Record<string, unknown>): GivenSweep {
  const own = OWN_FIELDS.map((key) => [key, flags[key]]);
  return Object.fromEntries([...own, ...LAYER_FIELDS.map((e) => [e.field, flags[e.flag]])]) as GivenSweep;
}

/** The strategies in the tool's own order (zero-buffer first: large cases are checked against it). */
export function orderStrategies(ids: readonly string[] | undefined): string[] {
  return STRATEGIES.map((s) => s.id).filter((id) => (ids ?? STRATEGIES.map((x) => x.id)).includes(id));
}

/** A new sweep: the given flags over the defaults. */
export function completeSweep(given: GivenSweep): SweepSpec {
  const layer = (e: (typeof LAYER_FIELDS)[number]) => {
    // A listed size not given comes from the preset when the sweep is planned; normalizeGates is worked out from k.
    const fallback = 'list' in e ? (e.list.default === 'preset' ? undefined : [DEFAULT_LAYER[e.field]]) : 'derivedDefault' in e ? undefined : DEFAULT_LAYER[e.field];
    return [e.field, given[e.field] ?? fallback];
  };
  // Saved in this order: the listed fields, then the ones the sweep holds fixed, each in the case key's order (dtype after checkpoint, as files have always listed them).
  const listed = LAYER_FIELDS_IN_KEY_ORDER.filter((e) => 'list' in e).map(layer);
  const fixed = LAYER_FIELDS_IN_KEY_ORDER.filter((e) => !('list' in e)).map(layer);
  return { impl: orderStrategies(given.impl), preset: given.preset ?? null, ...Object.fromEntries([...listed, ...fixed]), pass: given.pass ?? 'train' } as SweepSpec;
}

/** JSON has no undefined: the default normalizeGates is saved as null. */
export function saveSweep(spec: SweepSpec): SavedSweep {
  return { ...spec, normalizeGates: spec.normalizeGates ?? null };
}

export function sweepFromSaved(saved: SavedSweep): SweepSpec {
  // A sweep saved before --routing has none: top-k.
  return { ...saved, routing: saved.routing ?? 'top-k', normalizeGates: saved.normalizeGates ?? undefined };
}

type GivenGpu = Partial<GpuSettings>;

export function completeRunSettings(
  given: Partial<Omit<RunSettings, 'gpu'>> & { gpu?: GivenGpu; maxTimeS?: number; warmup?: number; minSamples?: number; noiseTarget?: number },
): RunSettings {
  const gpu = Object.fromEntries(Object.entries(given.gpu ?? {}).filter(([, v]) => v !== undefined));
  return {
    layers: given.layers ?? DEFAULT_LAYERS,
    memoryLimit: given.memoryLimit ?? null,
    check: given.check ?? 'auto',
    gpu: { ...DEFAULT_GPU_SETTINGS, ...gpu },
    sampling: {
      warmup: given.warmup ?? DEFAULT_SAMPLING.warmup,
      minSamples: given.minSamples ?? DEFAULT_SAMPLING.minSamples,
      maxSamples: DEFAULT_SAMPLING.maxSamples,
      noiseTarget: given.noiseTarget ?? DEFAULT_SAMPLING.noiseTarget,
      maxTimeMs: (given.maxTimeS ?? DEFAULT_MAX_TIME_S) * 1000,
    },
  };
}

const caseKeysOf = (sweep: SweepCases) => sweep.cases.map((c) => c.key).join('\n');
const show = (v: unknown) => (Array.isArray(v) ? v.join(',') : v === undefined || v === null ? 'its default' : typeof v === 'object' ? formatSkew(v as never) : String(v));

/**
 * The saved sweep of a results file, with every given flag checked against it: a flag that
 * changes the planned cases, or a run setting that differs, is a UsageError naming both values.
 */
/** The flag that sets a GPU setting to `value`, as a user types it. */
function gpuFlag(key: keyof GpuSettings, value: GpuSettings[keyof GpuSettings]): string {
  if (key === 'gemm') return `--gemm ${String(value)}`;
  if (key === 'nvidiaF16') return value ? '--nvidia-f16' : '--no-nvidia-f16';
  return value ? 'robustness on (no --unsafe-disable-robustness)' : '--unsafe-disable-robustness';
}

/**
 * The saved sweep's plan. Its values were validated as JSON, not as a sweep: one that cannot be
 * planned (tokens 0, say) is the file's fault, and said so, not reported as a flag nobody gave.
 */
function savedSweepCases(spec: SweepSpec, path: string): SweepCases {
  try {
    return sweepCases(spec);
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`--resume: the sweep saved in "${path}" is not valid (${error.message}); it was edited or written by another version: start the sweep again`);
    throw error;
  }
}

export function resumeSweep(
  saved: BenchResults,
  path: string,
  given: GivenSweep,
  givenRun: { layers?: number; memoryLimit?: number; sampling: Partial<SamplingPolicy>; check?: CheckMode; gpu?: GivenGpu },
): { spec: SweepSpec; run: RunSettings } {
  const settings: BenchSettings = saved.settings;
  if (!settings.sweep) throw new UsageError(`--resume: "${path}" does not record its sweep (written by an older moeblaze); rerun the sweep instead`);
  const spec = sweepFromSaved(settings.sweep);
  const base = caseKeysOf(savedSweepCases(spec, path));
  const conflicts: string[] = [];
  for (const [key, value] of Object.entries(given) as [keyof SweepSpec, unknown][]) {
    if (value === undefined) continue;
    const changed = key === 'impl' ? orderStrategies(value as string[]) : value;
    if (caseKeysOf(sweepCases({ ...spec, [key]: changed })) !== base) conflicts.push(`--${flagOf(key)} ${show(value)} (the saved sweep has ${show(spec[key])})`);
  }
  const differs = (flag: string, now: number | undefined, before: number | null) => {
    if (now !== undefined && now !== before) conflicts.push(`--${flag} ${now} (the saved sweep has ${before ?? 'none'})`);
  };
  differs('layers', givenRun.layers, settings.layers);
  differs('memory-limit', givenRun.memoryLimit, settings.memoryLimit);
  differs('warmup', givenRun.sampling.warmup, settings.sampling.warmup);
  differs('min-samples', givenRun.sampling.minSamples, settings.sampling.minSamples);
  differs('noise-target', givenRun.sampling.noiseTarget, settings.sampling.noiseTarget);
  differs('max-time', givenRun.sampling.maxTimeMs === undefined ? undefined : givenRun.sampling.maxTimeMs / 1000, settings.sampling.maxTimeMs / 1000);
  // How the cases ran: a file from before these were saved ran with the defaults, as far as it can tell, so a flag that sets one is refused.
  const recorded = (what: string) => (settings.check === undefined && settings.gpu === undefined ? `this file does not record ${what}` : `the saved sweep has ${what}`);
  const check = settings.check ?? 'auto';
  if (givenRun.check !== undefined && (givenRun.check !== check || settings.check === undefined)) conflicts.push(`--check ${givenRun.check} (${recorded(`--check ${check}`)})`);
  const gpu = { ...DEFAULT_GPU_SETTINGS, ...settings.gpu };
  for (const key of Object.keys(DEFAULT_GPU_SETTINGS) as (keyof GpuSettings)[]) {
    const value = givenRun.gpu?.[key];
    if (value !== undefined && (value !== gpu[key] || settings.gpu === undefined)) conflicts.push(`${gpuFlag(key, value)} (${recorded(gpuFlag(key, gpu[key]))})`);
  }
  if (conflicts.length) throw new UsageError(`--resume: these flags contradict the sweep saved in "${path}": ${conflicts.join('; ')}; resume with --resume alone`);
  return { spec, run: { layers: settings.layers, memoryLimit: settings.memoryLimit, sampling: settings.sampling, check, gpu } };
}
