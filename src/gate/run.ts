import { stat } from 'node:fs/promises';
import { caseKey } from '../bench/cases.js';
import { UsageError } from '../errors.js';
import { addRelativeFigures } from '../bench/run.js';
import type { BenchCase, BenchResults } from '../bench/schema.js';
import { loadBaseline, updateBaseline } from './baseline.js';
import { compareResults, type GateOptions, type GateReport } from './compare.js';
import { gateWithRetries, type RetryOptions } from './remeasure.js';

/**
 * Puts re-measured cases in place of the old ones (same key) and recomputes the figures relative
 * to zero-buffer, which a re-measured zero-buffer case changes for its whole config.
 */
export function replaceCases(results: BenchResults, fresh: readonly BenchCase[]): void {
  const byKey = new Map(fresh.map((c) => [c.key, c]));
  results.cases = results.cases.map((c) => byKey.get(c.key) ?? c);
  for (const c of results.cases) delete c.relative;
  addRelativeFigures(results.cases);
}

export interface GateRunOptions extends RetryOptions {
  baselinePath: string;
  options: Partial<GateOptions>;
  /** Re-measurement rounds for ambiguous or noisy cases (0 when the results come from a file). */
  retries: number;
  /** Re-runs these cases and replaces them in `current` (see replaceCases). */
  remeasure?: (keys: string[]) => Promise<void>;
  /** Replace the baseline with `current` after the verdict. */
  update: boolean;
  /** Update even from a run that fails the gate or has mismatching cases (--force). */
  force?: boolean;
}

export interface GateRunResult {
  /** null when there was no baseline yet and `update` created it. */
  report: GateReport | null;
  /** What --update-baseline wrote (or why it did not), to print on stderr; null when not asked. */
  baselineMessage: string | null;
  /** --update-baseline was refused (updateRefusal): the command exits 3, the baseline untouched. */
  refused?: boolean;
}

/**
 * Loads the baseline before any GPU work, so that a bad --baseline exits 2 at once; null when
 * there is none yet and --update-baseline will create it.
 */
export async function loadBaselineForRun(path: string, update: boolean): Promise<BenchResults | null> {
  const exists = await stat(path).then((s) => s.isFile(), () => false);
  return !exists && update ? null : loadBaseline(path);
}

/**
 * A gate that compared nothing would pass anything: when the current run (or the cases a bench
 * is about to run) shares no case with the baseline, that is a usage error (exit 2), found before
 * any GPU work where the keys are known in advance.
 */
export function requireSharedCases(baseline: BenchResults, currentKeys: readonly string[], baselinePath: string): void {
  const keys = new Set(baseline.cases.map((c) => caseKey(c.config)));
  if (currentKeys.some((k) => keys.has(k))) return;
  throw new UsageError(
    `--baseline: "${baselinePath}" shares no case with the current run (${baseline.cases.length} baseline case(s), ${currentKeys.length} current), so there is nothing to compare; run the baseline's sweep, or start a new baseline with --update-baseline after removing the old file`,
  );
}

/**
 * The gate as `bench --baseline` runs it, after the sweep: compare, re-measure ambiguous or noisy
 * cases, compare again, then update the baseline if asked. The caller renders the report and
 * sets process.exitCode from report.exitCode.
 */
export async function gateAgainstBaseline(baseline: BenchResults | null, current: BenchResults, run: GateRunOptions): Promise<GateRunResult> {
  if (baseline === null) {
    const refusal = updateRefusal(null, current);
    if (refusal && !run.force) return { report: null, baselineMessage: `no baseline written to ${run.baselinePath}: ${refusal}; --force writes it anyway`, refused: true };
    return { report: null, baselineMessage: await updateBaseline(run.baselinePath, current) };
  }
  requireSharedCases(baseline, current.cases.map((c) => caseKey(c.config)), run.baselinePath);
  const compare = () => compareResults(baseline, current, run.options);
  const report = run.remeasure ? await gateWithRetries(compare, run.remeasure, run.retries, run) : compare();
  requireSomethingCompared(report, current);
  if (!run.update) return { report, baselineMessage: null };
  const refusal = updateRefusal(report, current);
  if (refusal && !run.force) {
    return { report, baselineMessage: `baseline ${run.baselinePath} left unchanged: ${refusal}; --force writes it anyway`, refused: true };
  }
  const written = await updateBaseline(run.baselinePath, current);
  return { report, baselineMessage: refusal ? `--force: ${written}, although ${refusal}` : written };
}

/**
 * Matched cases that all failed to run on one side or the other compare nothing: unless a case
 * regressed (ok before, an error now: exit 3), that is exit 2, not a pass (issue 28).
 */
export function requireSomethingCompared(report: GateReport, current: BenchResults): void {
  if (report.compared > 0 || report.regressions > 0) return;
  const statuses = new Map<string, number>();
  for (const c of current.cases) statuses.set(c.status, (statuses.get(c.status) ?? 0) + 1);
  const list = [...statuses].map(([s, n]) => `${n} ${s}`).join(', ');
  throw new UsageError(`--current: none of the ${report.matched} matched case(s) ran ok in both files (current: ${list}), so nothing was compared`);
}

/** Why the current run must not become the baseline, or null: it failed the gate, or some case gave wrong results. */
export function updateRefusal(report: GateReport | null, current: BenchResults): string | null {
  const mismatches = current.cases.filter((c) => c.status === 'mismatch').length;
  const reasons = [
    report && report.exitCode !== 0 && `the current run fails the gate (${report.regressions} regression(s))`,
    mismatches > 0 && `${mismatches} current case(s) fail their correctness check`,
  ].filter(Boolean);
  return reasons.length ? reasons.join(' and ') : null;
}
