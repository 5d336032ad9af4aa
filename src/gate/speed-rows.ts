import { REFERENCE_STRATEGY } from '../registry.js';
import { caseKey, configKey } from '../bench/cases.js';
import type { BenchCase, BenchResults } from '../bench/schema.js';
import { caseCeilings, caseTestbed } from '../bench/testbeds.js';
import { describeTestbed, isPooledKey, pct, pooledKey, type Context, type GateMetric, type GateRow, type GateUnit } from './rows.js';
import { ceilingShift, judgePooled, judgeSpeed, speedSide, type PairedRuns, type SpeedSide } from './speed.js';

/** GFLOP/s below 1 TFLOP/s (software GPUs), TFLOP/s above. */
const formatRate = (tflops: number) => (tflops < 1 ? `${(tflops * 1e3).toPrecision(3)} GFLOP/s` : `${tflops.toPrecision(3)} TFLOP/s`);

/** `ungated`: why this row's verdict is shown but never fails (null: it is gated). */
function speedRow(key: string, metric: GateMetric, unit: GateUnit, shown: [number, number], base: SpeedSide, cur: SpeedSide, ctx: Context, ungated: string | null = null, how = ''): GateRow {
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
  if (how && row.note) row.note = `${how}; ${row.note}`;
  if (ungated !== null && j.verdict !== 'SAME') {
    row.note = ungated;
    row.ungated = true;
  } else if (j.verdict === 'SLOWER' && ctx.opts.advisorySpeed) row.note = `advisory; ${row.note}`;
  if (j.verdict === 'AMBG' && ungated === null) ctx.ambiguous.add(key);
  return row;
}

/**
 * Time over the reference strategy's of the same config: from the pairs timed alternately (step by
 * step, time.vsReference) when both runs have them, so load that comes and goes cancels within each
 * pair; otherwise from the two cases' medians, measured seconds apart.
 */
function referenceRatioRow(key: string, b: BenchCase, c: BenchCase, ctx: Context): GateRow | null {
  const pb = b.time?.vsReference;
  const pc = c.time?.vsReference;
  if (pb && pc && pb.impl === REFERENCE_STRATEGY && pc.impl === REFERENCE_STRATEGY) {
    const before = speedSide(pb.ratio, null);
    const after = speedSide(pc.ratio, null);
    return speedRow(key, 'time/zero-buffer', 'ratio', [before.point, after.point], before, after, ctx, null, `${pc.ratio.n} paired steps`);
  }
  // Zero-buffer's case counts only where it ran on the case's own testbed (always, outside merged files).
  const zb = (map: Map<string, BenchCase>, results: BenchResults, own: BenchCase) => {
    const z = map.get(configKey(c.config));
    return z && caseTestbed(results, z).fingerprint === caseTestbed(results, own).fingerprint ? (z.time?.step ?? null) : null;
  };
  const zbBase = zb(ctx.zeroBase, ctx.base, b);
  const zbCur = zb(ctx.zeroCur, ctx.cur, c);
  if (!zbBase || !zbCur) return null;
  const before = speedSide(b.time!.step, zbBase);
  const after = speedSide(c.time!.step, zbCur);
  const row = speedRow(key, 'time/zero-buffer', 'ratio', [before.point, after.point], before, after, ctx);
  // Unpaired, the ratio also moves with the reference's own samples: re-measure both.
  if (row.verdict === 'AMBG') ctx.ambiguous.add(caseKey(ctx.zeroCur.get(configKey(c.config))!.config));
  return row;
}

/** Whether two cases ran on one testbed (a merged file keeps each case's own: bench/testbeds.ts), and the note when not. */
export function sameTestbed(b: BenchCase, c: BenchCase, ctx: Pick<Context, 'base' | 'cur'>): { comparable: boolean; note: string } {
  const tb = caseTestbed(ctx.base, b);
  const tc = caseTestbed(ctx.cur, c);
  return { comparable: tb.fingerprint === tc.fingerprint, note: `testbed differs: ${describeTestbed(tb)} → ${describeTestbed(tc)}` };
}

export function speedRows(key: string, b: BenchCase, c: BenchCase, ctx: Context): GateRow[] {
  if (!b.time || !c.time) return [];
  const rows: GateRow[] = [];
  if (c.config.impl !== REFERENCE_STRATEGY) {
    const row = referenceRatioRow(key, b, c, ctx);
    if (row) rows.push(row);
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
    rows.push(speedRow(key, 'time', 'ms', [b.time.step.median, c.time.step.median], speedSide(b.time.step, null), speedSide(c.time.step, null), ctx, ctx.absoluteUngated));
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

const geomean = (xs: readonly number[]) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);

/**
 * The reference strategy has no same-run reference of its own. When it slows down, every other
 * strategy of its config gets faster relative to it, in the same run: that consensus (at least two
 * others, every one FASTER, each separated on its own) is the reference's SLOWER, and the mirror
 * image its FASTER. Shown: the reference's time over the geometric mean of the others'.
 */
export function referenceRows(rows: readonly GateRow[], cases: ReadonlyMap<string, BenchCase>, ctx: Context): GateRow[] {
  const byConfig = new Map<string, GateRow[]>();
  for (const r of rows) {
    if (r.metric !== 'time/zero-buffer') continue;
    const k = configKey(cases.get(r.key)!.config);
    byConfig.set(k, [...(byConfig.get(k) ?? []), r]);
  }
  const out: GateRow[] = [];
  for (const [key, c] of cases) {
    if (c.config.impl !== REFERENCE_STRATEGY || c.status !== 'ok') continue;
    const others = byConfig.get(configKey(c.config)) ?? [];
    if (others.length < 2) continue;
    const before = 1 / geomean(others.map((r) => r.baseline as number));
    const after = 1 / geomean(others.map((r) => r.current as number));
    const change = after / before - 1;
    const all = (v: string) => others.every((r) => r.verdict === v);
    const verdict = all('FASTER') ? 'SLOWER' : all('SLOWER') ? 'FASTER' : Math.abs(change) > ctx.opts.threshold ? 'AMBG' : 'SAME';
    const row: GateRow = {
      key,
      metric: 'time/others',
      unit: 'ratio',
      baseline: before,
      current: after,
      changePct: change * 100,
      verdict,
      regression: verdict === 'SLOWER' && !ctx.opts.advisorySpeed,
    };
    if (verdict === 'SLOWER' || verdict === 'FASTER') row.note = `all ${others.length} other strategies ${verdict === 'SLOWER' ? 'FASTER' : 'SLOWER'} against it in the same run`;
    else if (verdict === 'AMBG') row.note = `beyond ±${(ctx.opts.threshold * 100).toFixed(0)}%, but not every other strategy moved`;
    if (verdict === 'SLOWER' && ctx.opts.advisorySpeed) row.note = `advisory; ${row.note}`;
    out.push(row);
  }
  return out;
}

/**
 * One config's paired row fails only with its strategy. Where the strategy has a pooled row (two
 * configs or more) that did not move beyond the threshold the same way, a config `SLOWER` on its
 * own is shown but not gated: over ten runs of the gate's sweep on an unchanged build on lavapipe,
 * one config's paired ratio moved +23–26%, separated, in two (tutel E4 k1, 2026-12-08) while
 * the strategy's other configs held, which no statistic over one run's pairs can tell from a
 * regression; a change to a strategy's kernels or dispatch moves all its configs, and the pooled
 * row catches that (docs/design.md#gate-verdicts).
 */
export function gateLoneConfigs(rows: GateRow[]): void {
  const pooled = new Map(rows.filter((r) => isPooledKey(r.key)).map((r) => [r.key.split('|')[0], r]));
  for (const row of rows) {
    if (row.metric !== 'time/zero-buffer' || !row.regression || isPooledKey(row.key)) continue;
    const strategy = pooled.get(row.key.split('|')[0]);
    if (!strategy || strategy.verdict === 'SLOWER' || (strategy.verdict === 'AMBG' && (strategy.current as number) > 1)) continue;
    row.regression = false;
    row.ungated = true;
    row.note = `not gated: this config alone (its strategy's configs pooled: ×${(strategy.current as number).toFixed(3)}, ${strategy.verdict}); ${row.note ?? ''}`.replace(/; $/, '');
  }
}

/**
 * One row per strategy over all its configs with paired ratios on both sides (at least two):
 * time/zero-buffer pooled (speed.ts judgePooled). Keyed `<strategy>|all configs`.
 */
export function strategyRows(base: ReadonlyMap<string, BenchCase>, cur: ReadonlyMap<string, BenchCase>, ctx: Context): GateRow[] {
  const byStrategy = new Map<string, PairedRuns[]>();
  for (const [key, c] of cur) {
    const b = base.get(key);
    const pc = c.time?.vsReference;
    const pb = b?.time?.vsReference;
    if (!pb || !pc || c.status !== 'ok' || b!.status !== 'ok') continue;
    byStrategy.set(c.config.impl, [...(byStrategy.get(c.config.impl) ?? []), { base: pb.ratio.samples, cur: pc.ratio.samples }]);
  }
  const rows: GateRow[] = [];
  for (const [impl, runs] of byStrategy) {
    if (runs.length < 2) continue;
    const key = pooledKey(impl);
    const j = judgePooled(runs, ctx.opts.threshold, ctx.opts.bootstrap, key);
    const row: GateRow = {
      key,
      metric: 'time/zero-buffer',
      unit: 'ratio',
      baseline: 1,
      current: j.ratio,
      changePct: (j.ratio - 1) * 100,
      verdict: j.verdict,
      regression: j.verdict === 'SLOWER' && !ctx.opts.advisorySpeed,
    };
    const ci = j.ci ? `bootstrap 95% CI ×${j.ci[0].toFixed(3)}–${j.ci[1].toFixed(3)}` : '';
    if (j.verdict !== 'SAME') row.note = `${runs.length} configs pooled; ${j.verdict === 'AMBG' ? `beyond ±${(ctx.opts.threshold * 100).toFixed(0)}% but ${ci} overlaps` : ci}`;
    if (j.verdict === 'SLOWER' && ctx.opts.advisorySpeed) row.note = `advisory; ${row.note}`;
    rows.push(row);
  }
  return rows;
}
