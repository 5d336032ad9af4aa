import { REFERENCE_STRATEGY } from '../registry.js';
import { caseKey, configKey } from '../bench/plan.js';
import type { BenchCase, BenchResults, Testbed } from '../bench/schema.js';
import { sameTestbed } from './speed-rows.js';
import { formatBytes } from '../units.js';
import type { BootstrapOptions } from './speed.js';
import { loadComparable } from '../measure/load.js';
import { referenceRows, speedRows, strategyRows } from './speed-rows.js';

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
 *   --absolute-speed or when both runs recorded a machine about as idle (measure/load.ts).
 */
export type GateMetric = 'status' | 'stepPeak' | 'activationPeak' | 'time/zero-buffer' | 'time/others' | 'gemmFraction' | 'time';
export type GateUnit = 'status' | 'bytes' | 'ratio' | 'fraction' | 'ms';

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
   * Absolute times fail the gate whatever the machine's load; by default they do only when both
   * runs recorded their load and the current machine was about as idle as the baseline's.
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

function statusRow(key: string, b: BenchCase, c: BenchCase, ctx: Context): GateRow | null {
  if (b.status === c.status) return null;
  const row = { key, metric: 'status' as const, unit: 'status' as const, baseline: b.status, current: c.status, changePct: null };
  const why = c.message ? `: ${c.message}` : '';
  if (b.status === 'ok' && c.status === 'oom') return { ...row, verdict: 'MEM+', regression: true, note: `ran before, now out of memory${why}` };
  if (b.status === 'oom' && c.status === 'ok') return { ...row, verdict: 'MEM-', regression: false, note: 'was out of memory, now fits' };
  // Wrong results are never a pass, strict or not: a case that now fails its correctness check regressed.
  if (c.status === 'mismatch') return { ...row, verdict: 'INCOMPARABLE', regression: true, note: `now fails its correctness check${why}` };
  // A case that ran before and now errors or is refused measured nothing: never a pass (issue 28).
  if (b.status === 'ok') return { ...row, verdict: 'INCOMPARABLE', regression: true, note: `ran before, now ${c.status}${why}` };
  return { ...row, verdict: 'INCOMPARABLE', regression: ctx.opts.strict, note: `status ${b.status} → ${c.status}${why}` };
}

function memoryRows(key: string, b: BenchCase, c: BenchCase, ctx: Context): GateRow[] {
  if (!b.memory || !c.memory) return [];
  return (['stepPeak', 'activationPeak'] as const).map((metric) => {
    const before = b.memory![metric];
    const after = c.memory![metric];
    const delta = after - before;
    const verdict: Verdict = delta > ctx.opts.memoryTolerance ? 'MEM+' : delta < -ctx.opts.memoryTolerance ? 'MEM-' : 'SAME';
    const row: GateRow = { key, metric, unit: 'bytes', baseline: before, current: after, changePct: pct(before, after), verdict, regression: verdict === 'MEM+' };
    if (delta !== 0) row.note = `${delta > 0 ? '+' : ''}${formatBytes(delta)}${verdict === 'SAME' ? ' (within --memory-tolerance)' : ''}`;
    return row;
  });
}

function zeroBufferCases(results: BenchResults): Map<string, BenchCase> {
  const map = new Map<string, BenchCase>();
  for (const c of results.cases) if (c.config.impl === REFERENCE_STRATEGY && c.status === 'ok' && c.time) map.set(configKey(c.config), c);
  return map;
}

function summarize(report: Omit<GateReport, 'summary' | 'exitCode'>, opts: GateOptions): string {
  const count = (pred: (r: GateRow) => boolean) => report.rows.filter(pred).length;
  const failing = new Map<string, number>();
  for (const r of report.rows) if (r.regression) failing.set(r.verdict, (failing.get(r.verdict) ?? 0) + 1);
  const kinds = [...failing].map(([v, n]) => `${n} ${v}`).join(', ');
  const parts = [
    report.regressions ? `FAIL: ${report.regressions} regression(s) (${kinds})` : 'PASS: no regression',
    report.compared === report.matched ? `${report.matched} case(s) compared` : `${report.compared} of ${report.matched} matched case(s) compared (ok on both sides)`,
  ];
  const advisory = count((r) => r.verdict === 'SLOWER' && !r.regression && !r.ungated);
  if (advisory) parts.push(`${advisory} SLOWER (advisory)`);
  const ungated = count((r) => r.verdict === 'SLOWER' && !!r.ungated);
  if (ungated) parts.push(`${ungated} SLOWER not gated (absolute times without an idle machine in both runs, which --absolute-speed gates, or a moved GEMM ceiling)`);
  for (const v of ['AMBG', 'FASTER', 'MEM-'] as const) {
    const n = count((r) => r.verdict === v);
    if (n) parts.push(`${n} ${v}`);
  }
  const incomparable = count((r) => r.verdict === 'INCOMPARABLE');
  if (!report.testbed.comparable) parts.push(`absolute times INCOMPARABLE: testbed differs (baseline ${report.testbed.baseline}, current ${report.testbed.current})${opts.strict ? '' : '; warning only'}`);
  else if (incomparable) parts.push(`${incomparable} INCOMPARABLE`);
  if (report.onlyInBaseline.length) parts.push(`${report.onlyInBaseline.length} only in baseline`);
  if (report.onlyInCurrent.length) parts.push(`${report.onlyInCurrent.length} only in current`);
  return parts.join('; ');
}

/**
 * Compares a run with a baseline (both moeblaze.bench/v2, older files migrated on reading). Pure: the same files and options give
 * the same report, bootstrap included (seeded). Cases match on caseKey(config), which is made of
 * the strategy and every config field; a case on one side only is listed, never failed.
 */
export function compareResults(baseline: BenchResults, current: BenchResults, options: Partial<GateOptions> = {}): GateReport {
  const opts: GateOptions = { ...DEFAULT_GATE_OPTIONS, ...options, bootstrap: { ...DEFAULT_GATE_OPTIONS.bootstrap, ...options.bootstrap } };
  const index = (r: BenchResults) => new Map(r.cases.map((c) => [caseKey(c.config), c]));
  const b = index(baseline);
  const c = index(current);
  const load = loadComparable(baseline.provenance.load, current.provenance.load);
  const ctx: Context = {
    opts,
    absoluteUngated: opts.absoluteSpeed || load.comparable ? null : `not gated: ${load.why}`,
    zeroBase: zeroBufferCases(baseline),
    zeroCur: zeroBufferCases(current),
    base: baseline,
    cur: current,
    ambiguous: new Set(),
  };
  const rows: GateRow[] = [];
  const noisy: string[] = [];
  let matched = 0;
  let compared = 0;
  // Absolute times compare where every matched case ran on the same testbed as its baseline (one each, outside merged files).
  let comparable = baseline.testbed.fingerprint === current.testbed.fingerprint;
  for (const [key, now] of c) {
    const before = b.get(key);
    if (!before) continue;
    if (matched++ === 0) comparable = true;
    comparable &&= sameTestbed(before, now, ctx).comparable;
    if (before.status === 'ok' && now.status === 'ok') compared++;
    const status = statusRow(key, before, now, ctx);
    if (status) rows.push(status);
    rows.push(...memoryRows(key, before, now, ctx), ...speedRows(key, before, now, ctx));
    if (opts.noiseTarget != null && now.time && now.time.step.noise > opts.noiseTarget) noisy.push(key);
  }
  rows.push(...referenceRows(rows, new Map([...c].filter(([k]) => b.has(k))), ctx));
  rows.push(...strategyRows(b, c, ctx));
  const testbed = { baseline: describeTestbed(baseline.testbed), current: describeTestbed(current.testbed), comparable };
  const partial = {
    rows,
    onlyInBaseline: [...b.keys()].filter((k) => !c.has(k)),
    onlyInCurrent: [...c.keys()].filter((k) => !b.has(k)),
    ambiguous: [...ctx.ambiguous],
    noisy,
    matched,
    compared,
    testbed,
    regressions: rows.filter((r) => r.regression).length,
  };
  return { ...partial, summary: summarize(partial, opts), exitCode: partial.regressions > 0 ? 3 : 0 };
}
