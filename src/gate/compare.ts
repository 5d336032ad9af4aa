import { REFERENCE_STRATEGY } from '../registry.js';
import { caseKey, configKey } from '../bench/cases.js';
import type { BenchCase, BenchResults } from '../bench/schema.js';
import { sameTestbed } from './speed-rows.js';
import { formatBytes } from '../units.js';
import { loadComparable } from '../measure/load.js';

/** Why absolute times stay ungated on an idle machine too (measured: docs/design.md#gate-verdicts). */
export const RUN_TO_RUN_DRIFT = 'absolute times drift between runs beyond one run\'s spread (--absolute-speed gates them)';
import { gateLoneConfigs, referenceRows, speedRows, strategyRows } from './speed-rows.js';

export * from './rows.js';
import { describeTestbed, pct, type Context, type GateOptions, type GateReport, type GateRow, type Verdict, DEFAULT_GATE_OPTIONS } from './rows.js';

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
  if (ungated) parts.push(`${ungated} SLOWER not gated (absolute times, which --absolute-speed gates, a moved GEMM ceiling, or one config without its strategy)`);
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
    // Absolute times are never gated by default: between two runs on an idle machine they drift
    // more than either run's samples show (docs/design.md#gate-verdicts); the load is still named.
    absoluteUngated: opts.absoluteSpeed ? null : `not gated: ${load.comparable ? `${RUN_TO_RUN_DRIFT}; ${load.why}` : load.why}`,
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
  gateLoneConfigs(rows);
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
