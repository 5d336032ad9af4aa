import type { GemmEngine, LayerConfig } from '../config.js';
import type { RecordedLayer } from '../layer-fields.js';
import type { Ceilings } from '../measure/ceilings.js';
import type { AllocatorMode, BufferTag } from '../gpu/allocator.js';
import type { GapCause } from '../gpu/timer.js';
import type { MemoryLimitKind } from '../errors.js';
import type { Provenance } from '../measure/provenance.js';
import type { SamplingPolicy } from '../measure/stats.js';

/**
 * The results file of `moeblaze bench` (results.json), versioned: readers (the CI gate, other
 * tools) check `schema` and reject what they do not know. Times are milliseconds, sizes bytes.
 */
export const BENCH_SCHEMA = 'moeblaze.bench/v2';

export type CaseStatus = 'ok' | 'oom' | 'unsupported' | 'error' | 'mismatch';

/** What a case times: the forward pass, or forward and backward (`--pass`). */
export type CasePass = 'forward' | 'train';

/**
 * Every field that identifies a case (`key` is built from all of them), as results.json records
 * it: the case's own, the strategy (`--impl`) and the pass, beside the layer's fields, flat (the
 * skew in its object form, the capacity factor null for dropless strategies, which ignore it).
 * In memory a case is {impl, pass, layer} (cases.ts SweepCase); the record stays flat so that
 * every file written since v1 reads as it is.
 */
export type CaseConfig = RecordedLayer & { impl: string; pass: CasePass };

export interface TimeStats {
  median: number;
  p10: number;
  p90: number;
  /** IQR / median. */
  noise: number;
  n: number;
  samples: number[];
}

export interface CaseMemory {
  /** Bytes live when the step starts (weights, gradients, X, dO, kernel params). */
  baseline: number;
  stepPeak: number;
  activationPeak: number;
  savedForBackward: number | null;
  /** activationPeak − savedForBackward: what one layer holds at its peak beyond what it saved. */
  backwardTransient: number | null;
  /** --layers × savedForBackward + backwardTransient (docs/design.md#memory). */
  modelEstimate: number | null;
  peakByTag: Partial<Record<BufferTag, number>>;
  peakByName: Record<string, number>;
  /**
   * The most bytes the allocator held during the last timed step, live or pooled for reuse
   * (torch.cuda.max_memory_reserved over a step; docs/design.md#memory). Absent in files written
   * before issue 27, whose fresh allocator reserved what was live.
   */
  reservedPeak?: number;
}

/**
 * Where a step's time went (docs/design.md#time): medians over the timed steps of the passes'
 * summed GPU time and of the idle rest, and of the idle time by what the host did in each gap.
 * Only with timestamp timing; absent in files written before issue 27.
 */
export interface StepSplit {
  busyMs: number;
  idleMs: number;
  idleByCause: Partial<Record<GapCause, number>>;
  /** Per timed step, in the order of time.step.samples. */
  busySamples: number[];
  idleSamples: number[];
}

/** How the case's buffers were allocated (absent in files written before issue 27: fresh). */
export interface CaseBuffers {
  allocator: AllocatorMode;
  /** GPU buffers created in each timed step, in the order of time.step.samples (0 in a steady caching step). */
  createdPerStep: number[];
  /** Pooled bytes the allocator destroyed to keep reserved under --memory-limit (0 without one). */
  releasedForLimit: number;
}

/** The float64 check a case passed (or failed) before it was timed. */
export interface CaseCheck {
  /**
   * 'reference' (float64) for every case since issue 18; files written before may hold 'none' or
   * the id of the strategy whose GPU output served as the anchor.
   */
  against: 'reference' | 'none' | (string & {});
  /** full: every element of every tensor; sampled: the rows and columns of reference/sampled.ts. */
  kind?: 'full' | 'sampled';
  /** Sampled tokens (rows of O, dX) and hidden units (slices of dW1, dW3, dW2); null for a full check. */
  sample?: { tokens: number; units: number } | null;
  maxRelError: number | null;
  /** The worst tensor's error over its bound (reference/compare.ts): ≤ 1 passes. */
  maxErrorRatio?: number;
  /** The check's verdict (issue 29); files written before it get `status !== 'mismatch'` from migrate.ts. */
  pass?: boolean;
  /**
   * Near-tie tokens (docs/design.md#numerics-and-the-reference) whose experts the reference took
   * from the GPU's routing, ascending; absent in files written before issue 29.
   */
  forcedTokens?: number[];
  /** Wall seconds of the check: its GPU steps, readback and float64 reference (absent before issue 29). */
  seconds?: number;
  note?: string;
}

export interface BenchCase {
  key: string;
  config: CaseConfig;
  status: CaseStatus;
  message?: string;
  check?: CaseCheck;
  time?: {
    source: 'timestamp' | 'wall';
    step: TimeStats;
    forward: TimeStats | null;
    backward: TimeStats | null;
    split?: StepSplit;
    /**
     * This case's step time over the reference strategy's (`impl`), the two timed alternately step
     * by step in the same job: one ratio per pair (docs/design.md#gate-verdicts). Absent for the
     * reference itself, for cases too large to hold both layers, and in older files.
     */
    vsReference?: { impl: string; ratio: TimeStats };
  };
  throughput?: {
    tokensPerS: number;
    usefulTflops: number;
    /** usefulTflops / the run's GEMM ceiling. */
    gemmFraction: number | null;
  };
  memory?: CaseMemory;
  buffers?: CaseBuffers;
  /** For an oom case: which limit refused it (errors.ts MemoryLimitKind); absent in older files. */
  oomLimit?: MemoryLimitKind;
  /** A case refused before it ran (oom above --memory-limit): its buffer table's figures under expected routing. */
  planned?: { stepPeak: number; activationPeak: number };
  routing?: { keptPairs: number; droppedPairs: number; droppedPercent: number; capacity: number | null; expertLoads: number[] };
  /**
   * The GEMM engine the case's f16 GEMMs ran on, the kernels that fell back to simt
   * (kernels/gemm/core.ts), and on a matrix engine its fragment, m×n×k/subgroup size
   * (kernels/gemm/engines/fragment.ts; absent before 2026-12-08, when it was always 16×16×16/32).
   */
  gemm?: { engine: GemmEngine; fallbacks: string[]; fragment?: string };
  /**
   * Against the reference strategy's case with the same config (registry.ts REFERENCE_STRATEGY;
   * null when there is none or it did not run). Files written before these names had
   * `*VsZeroBuffer` and `zeroBufferSpeedup`: migrate.ts renames them on reading.
   */
  relative?: {
    stepPeakVsReference: number | null;
    activationPeakVsReference: number | null;
    savedVsReference: number | null;
    /** this case's median step time / the reference's: >1 means the reference is faster. */
    stepTimeVsReference: number | null;
  };
  /**
   * In a merged file (`moeblaze merge`): the shard the case ran in (ShardRun.index) and that
   * run's testbed, so that absolute times are only ever compared on the same one.
   */
  shard?: number;
  testbed?: Testbed;
}

export interface Testbed {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  dawnVersion: string;
  /** adapter|backend|driver(description)|Dawn version: absolute times compare only when equal. */
  fingerprint: string;
}

/**
 * The sweep as `bench` planned it (the flags over the defaults), so that --resume continues
 * exactly it: the SweepSpec in JSON form, normalizeGates null for the default (only when k > 1).
 */
export type SavedSweep = Omit<SweepSpec, 'normalizeGates'> & { normalizeGates: boolean | null };

export interface BenchSettings {
  preset: string | null;
  pass: CasePass;
  layers: number;
  sampling: SamplingPolicy;
  memoryLimit: number | null;
  /** --allocator; files written before issue 27 ran with fresh buffers and read as 'fresh' (migrate.ts). */
  allocator?: AllocatorMode;
  timing: 'timestamp' | 'wall';
  /** The swept values, for charts: each key maps to the list given (or the preset's). */
  axes: Record<string, (number | string)[]>;
  /** Absent in files written before --resume continued the saved sweep. */
  sweep?: SavedSweep;
  /** `bench --shard i/n`: which slice of the sweep this run holds (absent: the whole sweep). */
  shard?: ShardRecord;
  /** `--check` of the run (absent before issue 28: those runs used auto). */
  check?: 'auto' | 'sampled';
  /** The GPU flags that change how cases run, held to on --resume (absent before issue 28: the defaults). */
  gpu?: GpuSettings;
}

/** The GPU flags that change how a case runs (the engine, Dawn's toggles): saved, and held to on --resume. */
export interface GpuSettings {
  gemm: 'auto' | GemmEngine;
  nvidiaF16: boolean;
  robustness: boolean;
}

/** A slice of a sweep (src/bench/shard.ts, docs/design.md#shards). */
export interface ShardRecord {
  /** Shard `index` of `count`, 1-based. */
  index: number;
  count: number;
  /** What was kept together: every strategy of a config, or (fewer configs than shards) single cases. */
  unit: 'config' | 'case';
  /** The slice's case keys, in the order they run. */
  keys: string[];
  /** Every case key of the whole sweep, in the sweep's order: what the merged shards must cover. */
  sweepKeys: string[];
  /** Predicted cost (byte-equivalents of the work model) of the slice and of the whole sweep. */
  cost: { slice: number; sweep: number };
}

/** One shard of a merged file, as its own results.json had it. */
export interface ShardRun {
  index: number;
  count: number;
  /** The folder it was read from, as given to `moeblaze merge`. */
  source: string;
  provenance: Provenance;
  testbed: Testbed;
  ceilings: Ceilings | null;
  timing: 'timestamp' | 'wall';
  complete: boolean;
  /** Its cases in the merged file. */
  cases: number;
}

export interface BenchResults {
  schema: typeof BENCH_SCHEMA;
  provenance: Provenance;
  testbed: Testbed;
  settings: BenchSettings;
  ceilings: Ceilings | null;
  cases: BenchCase[];
  /** true once every planned case has a result (an interrupted sweep can be resumed). */
  complete: boolean;
  notes: string[];
  /** A merged file (`moeblaze merge`): the shards it was made of, each case pointing at its own. */
  shards?: ShardRun[];
}

/** The layer's sizes a sweep lists (comma lists); undefined: the preset's. */
type SweptSizes = { [K in 'tokens' | 'hidden' | 'ffn' | 'experts' | 'topK']?: number[] };

/**
 * What a sweep varies and what it holds fixed, named as the flags are: the strategies (`--impl`),
 * the sizes and capacity factors it lists, and the layer's other fields (LayerConfig's own);
 * normalizeGates undefined is the default (only when k > 1).
 */
export type SweepSpec = SweptSizes &
  Pick<LayerConfig, 'activation' | 'checkpoint' | 'dtype' | 'skew' | 'routing' | 'auxLoss' | 'seed'> &
  Partial<Pick<LayerConfig, 'normalizeGates'>> & {
    impl: string[];
    preset: string | null;
    capacityFactor: number[];
    pass: CasePass;
  };
