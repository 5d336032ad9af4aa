import { REFERENCE_STRATEGY } from '../registry.js';
import { caseKey, configKey } from '../bench/plan.js';
import type { BenchCase, BenchResults, Testbed } from '../bench/schema.js';
import { caseCeilings, caseTestbed } from '../bench/testbeds.js';
import { formatBytes } from '../units.js';
import { ceilingShift, judgeSpeed, speedSide, type BootstrapOptions, type SpeedSide } from './speed.js';

export type Verdict = 'SAME' | 'FASTER' | 'SLOWER' | 'MEM+' | 'MEM-' | 'AMBG' | 'INCOMPARABLE';

/**
 * - status: the case's status changed (ok → oom is MEM+);
 * - stepPeak, activationPeak: bytes, deterministic, compared exactly (up to --memory-tolerance);
 * - time/zero-buffer: the case's median step time over zero-buffer's of the same config in the
 *   same run (machine drift cancels); larger = this case slowed down relative to zero-buffer;
 * - gemmFraction: useful TFLOP/s over the same run's GEMM ceiling; smaller = slower;
 * - time: the absolute median step time, only between identical testbeds.
 */
export type GateMetric = 'status' | 'stepPeak' | 'activationPeak' | 'time/zero-buffer' | 'gemmFraction' | 'time';
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
  note?: string;
}

export interface GateOptions {
  /** Relative change of a median that matters (0.10 = 10%). */
  threshold: number;
  /** Bytes a peak may grow before it is MEM+. */
  memoryTolerance: number;
  /** INCOMPARABLE fails (exit 3) instead of warning. */
  strict: boolean;
  /** Speed verdicts are printed but never fail (shared CI machines). */
  advisorySpeed: boolean;
  bootstrap: BootstrapOptions;
  /** Current cases noisier than this (IQR/median) are listed in `noisy` for re-measurement. */
  noiseTarget?: number | null;
}

export const DEFAULT_GATE_OPTIONS: GateOptions = {
  threshold: 0.1,
  memoryTolerance: 0,
  strict: false,
  advisorySpeed: false,
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
  testbed: { baseline: string; current: string; comparable: boolean };
  regressions: number;
  summary: string;
  exitCode: 0 | 3;
  /** Set by gateWithRetries: the keys re-measured in each round. */
  remeasured?: string[][];
}

export function describeTestbed(t: Testbed): string {
  return `${t.description || t.device || t.vendor} (${t.backend}, Dawn ${t.dawnVersion})`;
}

interface Context {
  opts: GateOptions;
  zeroBase: Map<string, BenchCase>;
  zeroCur: Map<string, BenchCase>;
  base: BenchResults;
  cur: BenchResults;
  ambiguous: Set<string>;
}

/** GFLOP/s below 1 TFLOP/s (software GPUs), TFLOP/s above. */
const formatRate = (tflops: number) => (tflops < 1 ? `${(tflops * 1e3).toPrecision(3)} GFLOP/s` : `${tflops.toPrecision(3)} TFLOP/s`);

const pct = (b: number, c: number) => (b !== 0 ? ((c - b) / b) * 100 : c === 0 ? 0 : null);

function statusRow(key: string, b: BenchCase, c: BenchCase, ctx: Context): GateRow | null {
  if (b.status === c.status) return null;
  const row = { key, metric: 'status' as const, unit: 'status' as const, baseline: b.status, current: c.status, changePct: null };
  const why = c.message ? `: ${c.message}` : '';
  if (b.status === 'ok' && c.status === 'oom') return { ...row, verdict: 'MEM+', regression: true, note: `ran before, now out of memory${why}` };
  if (b.status === 'oom' && c.status === 'ok') return { ...row, verdict: 'MEM-', regression: false, note: 'was out of memory, now fits' };
  // Wrong results are never a pass, strict or not: a case that now fails its correctness check regressed.
  if (c.status === 'mismatch') return { ...row, verdict: 'INCOMPARABLE', regression: true, note: `now fails its correctness check${why}` };
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

/** `ungated`: why this row's verdict is shown but never fails (null: it is gated). */
function speedRow(key: string, metric: GateMetric, unit: GateUnit, shown: [number, number], base: SpeedSide, cur: SpeedSide, ctx: Context, ungated: string | null = null): GateRow {
  // The ceiling is one measurement of the run: its fraction separates by raw intervals only.
  const j = judgeSpeed(base, cur, ctx.opts.threshold, metric === 'gemmFraction' ? null : ctx.opts.bootstrap, `${key}#${metric}`);
  const row: GateRow = {
    key,
    metric,
    unit,
    baseline: shown[0],
    current: shown[1],
    changePct: pct(shown[0], shown[1]),
    verdict: j.verdict,
    regression: j.verdict === 'SLOWER' && !ctx.opts.advisorySpeed && ungated === null,
  };
  const ci = j.ci ? `bootstrap 95% CI ×${j.ci[0].toFixed(3)}–${j.ci[1].toFixed(3)}` : '';
  const intervals = metric === 'gemmFraction' ? ' (ceiling spread included)' : '';
  if (j.separatedBy === 'intervals') row.note = (j.verdict === 'SLOWER' ? 'current p10 above baseline p90' : 'current p90 below baseline p10') + intervals;
  else if (j.separatedBy === 'bootstrap') row.note = ci;
  else if (j.verdict === 'AMBG') row.note = `beyond ±${(ctx.opts.threshold * 100).toFixed(0)}% but the runs overlap${ci ? ` (${ci})` : intervals}`;
  if (ungated !== null && j.verdict !== 'SAME') row.note = ungated;
  else if (j.verdict === 'SLOWER' && ctx.opts.advisorySpeed) row.note = `advisory; ${row.note}`;
  if (j.verdict === 'AMBG' && ungated === null) ctx.ambiguous.add(key);
  return row;
}

/** Whether two cases ran on one testbed (a merged file keeps each case's own: bench/testbeds.ts), and the note when not. */
function sameTestbed(b: BenchCase, c: BenchCase, ctx: Pick<Context, 'base' | 'cur'>): { comparable: boolean; note: string } {
  const tb = caseTestbed(ctx.base, b);
  const tc = caseTestbed(ctx.cur, c);
  return { comparable: tb.fingerprint === tc.fingerprint, note: `testbed differs: ${describeTestbed(tb)} → ${describeTestbed(tc)}` };
}

function speedRows(key: string, b: BenchCase, c: BenchCase, ctx: Context): GateRow[] {
  if (!b.time || !c.time) return [];
  const rows: GateRow[] = [];
  // Zero-buffer's case counts only where it ran on the case's own testbed (always, outside merged files).
  const zb = (map: Map<string, BenchCase>, results: BenchResults, own: BenchCase) => {
    const z = map.get(configKey(c.config));
    return z && caseTestbed(results, z).fingerprint === caseTestbed(results, own).fingerprint ? (z.time?.step ?? null) : null;
  };
  const zbBase = zb(ctx.zeroBase, ctx.base, b);
  const zbCur = zb(ctx.zeroCur, ctx.cur, c);
  if (c.config.impl !== REFERENCE_STRATEGY && zbBase && zbCur) {
    const before = speedSide(b.time.step, zbBase);
    const after = speedSide(c.time.step, zbCur);
    const row = speedRow(key, 'time/zero-buffer', 'ratio', [before.point, after.point], before, after, ctx);
    if (row.verdict === 'AMBG') ctx.ambiguous.add(caseKey(ctx.zeroCur.get(configKey(c.config))!.config));
    rows.push(row);
  }
  const gb = caseCeilings(ctx.base, b)?.gemm;
  const gc = caseCeilings(ctx.cur, c)?.gemm;
  const fb = b.throughput?.gemmFraction;
  const fc = c.throughput?.gemmFraction;
  if (gb && gc && fb != null && fc != null) {
    // Time over the GEMM's time is the fraction's reciprocal up to the (fixed) useful FLOPs.
    const before = speedSide(b.time.step, { median: gb.medianMs, samples: gb.samples });
    const after = speedSide(c.time.step, { median: gc.medianMs, samples: gc.samples });
    const shift = ceilingShift(gb, gc, ctx.opts.threshold);
    const ungated = shift.stable ? null : `not gated: GEMM ceiling ${formatRate(gb.tflops)} → ${formatRate(gc.tflops)} (${shift.change > 0 ? '+' : ''}${(shift.change * 100).toFixed(1)}%)`;
    rows.push(speedRow(key, 'gemmFraction', 'fraction', [fb, fc], before, after, ctx, ungated));
  }
  const sameSource = b.time.source === c.time.source;
  const testbed = sameTestbed(b, c, ctx);
  if (testbed.comparable && sameSource) {
    rows.push(speedRow(key, 'time', 'ms', [b.time.step.median, c.time.step.median], speedSide(b.time.step, null), speedSide(c.time.step, null), ctx));
  } else {
    const note = sameSource ? testbed.note : `timing source differs: ${b.time.source} → ${c.time.source}`;
    rows.push({
      key,
      metric: 'time',
      unit: 'ms',
      baseline: b.time.step.median,
      current: c.time.step.median,
      changePct: pct(b.time.step.median, c.time.step.median),
      verdict: 'INCOMPARABLE',
      regression: ctx.opts.strict && !ctx.opts.advisorySpeed,
      note,
    });
  }
  return rows;
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
    `${report.matched} case(s) compared`,
  ];
  const advisory = count((r) => r.verdict === 'SLOWER' && !r.regression);
  if (advisory) parts.push(`${advisory} SLOWER (advisory)`);
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
  const ctx: Context = {
    opts,
    zeroBase: zeroBufferCases(baseline),
    zeroCur: zeroBufferCases(current),
    base: baseline,
    cur: current,
    ambiguous: new Set(),
  };
  const rows: GateRow[] = [];
  const noisy: string[] = [];
  let matched = 0;
  // Absolute times compare where every matched case ran on the same testbed as its baseline (one each, outside merged files).
  let comparable = baseline.testbed.fingerprint === current.testbed.fingerprint;
  for (const [key, now] of c) {
    const before = b.get(key);
    if (!before) continue;
    if (matched++ === 0) comparable = true;
    comparable &&= sameTestbed(before, now, ctx).comparable;
    const status = statusRow(key, before, now, ctx);
    if (status) rows.push(status);
    rows.push(...memoryRows(key, before, now, ctx), ...speedRows(key, before, now, ctx));
    if (opts.noiseTarget != null && now.time && now.time.step.noise > opts.noiseTarget) noisy.push(key);
  }
  const testbed = { baseline: describeTestbed(baseline.testbed), current: describeTestbed(current.testbed), comparable };
  const partial = {
    rows,
    onlyInBaseline: [...b.keys()].filter((k) => !c.has(k)),
    onlyInCurrent: [...c.keys()].filter((k) => !b.has(k)),
    ambiguous: [...ctx.ambiguous],
    noisy,
    matched,
    testbed,
    regressions: rows.filter((r) => r.regression).length,
  };
  return { ...partial, summary: summarize(partial, opts), exitCode: partial.regressions > 0 ? 3 : 0 };
}
