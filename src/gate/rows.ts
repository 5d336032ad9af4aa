import type { BenchCase, BenchResults, Testbed } from '../bench/schema.js';
import type { BootstrapOptions } from './speed.js';

/*
 * The gate's vocabulary: verdicts, rows, options and the report, shared by compare.ts and the
 * speed rows (speed-rows.ts), so that neither imports the other.
 */

export type Verdict = 'SAME' | 'FASTER' | 'SLOWER' | 'MEM+' | 'MEM-' | 'AMBG' | 'INCOMPARABLE';

/**
 * - status: the case's status changed (ok → oom is MEM+);
 * - stepPeak, activationPeak: bytes, deterministic, compared exactly (up to --memory-tolerance);
 * - time/zero-buffer: the case's step time over zero-buffer's of the same config in the same run,
 *   from pairs of steps timed alternately where both files have them (time.vsReference), so that
 *   load which comes and goes cancels; larger = this case slowed down relative to zero-buffer;
 *   a row keyed `<strategy>|all configs` pools a strategy's configs (speed-rows.ts strategyRows);
 * - time/others: zero-buffer's own verdict, from the others' (speed-rows.ts referenceRows);
 * - gemmFraction: useful TFLOP/s over the same run's GEMM ceiling; smaller = slower;
 * - time: the absolute median step time, only between identical testbeds; gated only with
 *   --absolute-speed (two runs on one idle machine drift apart beyond either run's spread).
 */
export type GateMetric = 'status' | 'stepPeak' | 'activationPeak' | 'time/zero-buffer' | 'time/others' | 'gemmFraction' | 'time';
export type GateUnit = 'status' | 'bytes' | 'ratio' | 'fraction' | 'ms';

/** The key of a strategy's pooled row (speed-rows.ts strategyRows), which the gate's renderer shows as is. */
export const pooledKey = (impl: string) => `${impl}|all configs`;
export const isPooledKey = (key: string) => key.endsWith('|all configs');

export interface GateRow {
  key: string;
  metric: GateMetric;
  unit: GateUnit;
  baseline: number | string | null;
  current: number | string | null;
  /** (current − baseline) / baseline × 100 of the values shown; null when not a number. */
  changePct: number | null;
  verdict: Verdict;
  /** Counts towards the exit code. */
  regression: boolean;
  /** A speed verdict shown but not gated (the note says why: another ceiling, a busier machine). */
  ungated?: boolean;
  note?: string;
}

export interface GateOptions {
  /** Relative change of a median that matters (0.10 = 10%). */
  threshold: number;
  /** Bytes a peak may grow before it is MEM+. */
  memoryTolerance: number;
  /** INCOMPARABLE fails (exit 3) instead of warning. */
  strict: boolean;
  /** Speed verdicts are printed but never fail. */
  advisorySpeed: boolean;
  /**
   * Absolute times fail the gate whatever the machine's load; by default they are shown, with
   * each run's load, but never fail (docs/design.md#gate-verdicts).
   */
  absoluteSpeed: boolean;
  bootstrap: BootstrapOptions;
  /** Current cases noisier than this (IQR/median) are listed in `noisy` for re-measurement. */
  noiseTarget?: number | null;
}

export const DEFAULT_GATE_OPTIONS: GateOptions = {
  threshold: 0.1,
  memoryTolerance: 0,
  strict: false,
  advisorySpeed: false,
  absoluteSpeed: false,
  bootstrap: { resamples: 2000, seed: 1 },
  noiseTarget: null,
};

export interface GateReport {
  rows: GateRow[];
  onlyInBaseline: string[];
  onlyInCurrent: string[];
  /** Keys whose speed verdict is AMBG (with the zero-buffer case their ratio depends on). */
  ambiguous: string[];
  /** Keys of current cases noisier than the noise target. */
  noisy: string[];
  matched: number;
  /** Matched cases that ran ok on both sides: the ones whose figures were compared. */
  compared: number;
  testbed: { baseline: string; current: string; comparable: boolean };
  regressions: number;
  summary: string;
  exitCode: 0 | 3;
  /** Set by gateWithRetries: the keys re-measured in each round. */
  remeasured?: string[][];
}

export function describeTestbed(t: Testbed): string {
  // A software adapter's thread count is part of the fingerprint (bench/run.ts softwareThreads).
  const threads = /\|(LP_NUM_THREADS=[^|]*)$/.exec(t.fingerprint)?.[1];
  return `${t.description || t.device || t.vendor} (${t.backend}, Dawn ${t.dawnVersion}${threads ? `, ${threads}` : ''})`;
}

/** What every row of one comparison shares (src/gate/speed-rows.ts reads it too). */
export interface Context {
  opts: GateOptions;
  /** null: absolute times are gated; otherwise why they are shown without failing (a busier machine). */
  absoluteUngated: string | null;
  zeroBase: Map<string, BenchCase>;
  zeroCur: Map<string, BenchCase>;
  base: BenchResults;
  cur: BenchResults;
  ambiguous: Set<string>;
}

export const pct = (b: number, c: number) => (b !== 0 ? ((c - b) / b) * 100 : c === 0 ? 0 : null);
