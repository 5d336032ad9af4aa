import { mkdtemp, readFile, readlink, rm, symlink, writeFile, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BenchResults } from '../../src/bench/schema.js';
import { validateBenchResults } from '../../src/bench/validate.js';
import { UsageError } from '../../src/errors.js';
import { compareResults, type GateReport } from '../../src/gate/compare.js';
import { gateAgainstBaseline, requireSomethingCompared } from '../../src/gate/run.js';
import { loadBetween, loadComparable, parseProcStat, type MachineLoad } from '../../src/measure/load.js';
import { noisySamples, results, SWEEP, timeStats } from '../fixtures/gate/synthetic.js';

/** Issue 25 §2 and issue 28 items 1-3, 5: a gate that a busy machine cannot fool, and no false PASS. */

const rowsOf = (report: GateReport, metric: string) => report.rows.filter((r) => r.metric === metric);

/** Every non-reference case gets paired ratios around `ratio(impl)` (tight: pairs cancel load). */
function withPairs(r: BenchResults, ratio: (impl: string) => number, seed: number, spread = 0.03): BenchResults {
  const copy = structuredClone(r);
  copy.cases.forEach((c, i) => {
    if (c.config.impl !== 'zero-buffer' && c.time) c.time.vsReference = { impl: 'zero-buffer', ratio: timeStats(noisySamples(ratio(c.config.impl), spread, 12, seed * 31 + i)) };
  });
  return copy;
}

/**
 * A busy machine: every case slower by its own factor (load came and went between cases, and hit
 * dispatch-heavy strategies harder), the GEMM ceiling too; the paired ratios do not move.
 */
function busy(r: BenchResults, factors: Record<string, number>): BenchResults {
  const copy = structuredClone(r);
  for (const c of copy.cases) {
    const f = factors[c.config.impl] ?? 1.5;
    c.time!.step = timeStats(c.time!.step.samples.map((s) => s * f * (1 + 0.3 * Math.sin(s))));
    c.throughput!.usefulTflops /= f;
  }
  copy.ceilings!.gemm.samples = copy.ceilings!.gemm.samples.map((s) => s * 1.5);
  copy.ceilings!.gemm.medianMs *= 1.5;
  copy.ceilings!.gemm.tflops /= 1.5;
  return copy;
}

const idle: MachineLoad = { cpus: 2, loadAverage: [0.1, 0.1, 0.1], seconds: 100, otherBusy: 0.02, steal: 0 };
const loaded: MachineLoad = { cpus: 2, loadAverage: [3, 3, 3], seconds: 100, otherBusy: 0.55, steal: 0.05 };

describe('gate on a busy machine', () => {
  const ratios = (impl: string) => ({ tutel: 1.4, megablocks: 1.2 })[impl] ?? 1;
  const baseline = withPairs(results({ cases: SWEEP }), ratios, 1);

  it('uneven machine-wide slowdown (+50% to +110%) with the paired ratios unchanged: PASS, absolute times shown but not gated', () => {
    const current = withPairs(busy(results({ cases: SWEEP, seed: 2 }), { 'zero-buffer': 1.5, tutel: 2.1, megablocks: 1.6 }), ratios, 2);
    current.provenance.load = loaded;
    baseline.provenance.load = idle;
    const report = compareResults(baseline, current);
    expect(report.exitCode, report.summary).toBe(0);
    for (const row of rowsOf(report, 'time/zero-buffer')) {
      expect(row.verdict).toBe('SAME');
      expect(row.note ?? '').not.toMatch(/paired/); // SAME rows carry no statistics note
    }
    const absolute = rowsOf(report, 'time');
    expect(absolute.filter((r) => r.verdict === 'SLOWER').length).toBe(3);
    for (const row of absolute) expect(row).toMatchObject({ regression: false, ungated: true, note: expect.stringMatching(/not gated: machine not idle \(CPU: 55% other, 5% steal now, 2% other in the baseline/) });
    // The ceiling slowed by 1.5× too: the fractions are shown, not gated (a moved ceiling).
    for (const row of rowsOf(report, 'gemmFraction')) expect(row.regression).toBe(false);
    expect(report.summary).toMatch(/\d SLOWER not gated/);
    // --absolute-speed gates them anyway.
    expect(compareResults(baseline, current, { absoluteSpeed: true }).exitCode).toBe(3);
  });

  it('a planted 30% slowdown of one strategy fails through its paired ratio, busy machine or not', () => {
    const current = withPairs(busy(results({ cases: SWEEP, seed: 3 }), {}), (impl) => ratios(impl) * (impl === 'tutel' ? 1.3 : 1), 3);
    const report = compareResults(baseline, current);
    expect(report.exitCode).toBe(3);
    const failing = report.rows.filter((r) => r.regression);
    expect(failing.map((r) => [r.key.split('|')[0], r.metric])).toEqual([['tutel', 'time/zero-buffer']]);
    expect(failing[0].note).toMatch(/^12 paired steps; /);
    expect(failing[0].changePct).toBeCloseTo(30, -1);
  });

  it("pooled over a strategy's configs, a 30% plant separates where each config's noisy pairs alone do not", () => {
    const sweep = [4, 8, 16, 32].flatMap((experts) => SWEEP.map((c) => ({ ...c, experts })));
    const b = withPairs(results({ cases: sweep }), ratios, 7, 0.45);
    const planted = withPairs(results({ cases: sweep, seed: 8 }), (impl) => ratios(impl) * (impl === 'tutel' ? 1.3 : 1), 8, 0.45);
    const report = compareResults(b, planted);
    const pooled = report.rows.find((r) => r.key === 'tutel|all configs')!;
    expect(pooled, pooled.note).toMatchObject({ metric: 'time/zero-buffer', verdict: 'SLOWER', regression: true, note: expect.stringMatching(/^4 configs pooled; bootstrap 95% CI/) });
    expect(pooled.changePct).toBeGreaterThan(20);
    expect(report.rows.find((r) => r.key === 'megablocks|all configs')!.regression).toBe(false);
    // The same noise without the plant: nothing fails.
    expect(compareResults(b, withPairs(results({ cases: sweep, seed: 9 }), ratios, 9, 0.45)).exitCode).toBe(0);
  });

  it("one config's paired ratio moving alone (run-to-run drift) is shown, not gated; the same move in every config fails", () => {
    const sweep = [4, 8, 16, 32].flatMap((experts) => SWEEP.map((c) => ({ ...c, experts })));
    const b = withPairs(results({ cases: sweep }), ratios, 11);
    const scaleCase = (r: BenchResults, pick: (c: BenchResults['cases'][number]) => boolean, f: number) => {
      for (const c of r.cases) if (pick(c) && c.time?.vsReference) c.time.vsReference.ratio = timeStats(c.time.vsReference.ratio.samples.map((x) => x * f));
      return r;
    };
    const tutelE4 = (c: BenchResults['cases'][number]) => c.config.impl === 'tutel' && c.config.experts === 4;
    const lone = compareResults(b, scaleCase(withPairs(results({ cases: sweep, seed: 12 }), ratios, 12), tutelE4, 1.25));
    const row = lone.rows.find((r) => r.metric === 'time/zero-buffer' && r.key.startsWith('tutel|') && r.key.includes('|E4|'))!;
    expect(row).toMatchObject({ verdict: 'SLOWER', regression: false, ungated: true, note: expect.stringMatching(/^not gated: this config alone \(its strategy's configs pooled: ×1\.0\d\d, SAME\); 12 paired steps; /) });
    expect(lone.exitCode).toBe(0);
    expect(lone.summary).toMatch(/1 SLOWER not gated \(.*one config without its strategy\)/);
    // Every tutel config 25% slower: the pooled row and each config's row fail.
    const all = compareResults(b, scaleCase(withPairs(results({ cases: sweep, seed: 13 }), ratios, 13), (c) => c.config.impl === 'tutel', 1.25));
    expect(all.rows.find((r) => r.key === 'tutel|all configs')).toMatchObject({ verdict: 'SLOWER', regression: true });
    expect(all.rows.filter((r) => r.regression && r.key.startsWith('tutel|') && !r.key.endsWith('|all configs'))).toHaveLength(4);
    expect(all.exitCode).toBe(3);
  });

  it('zero-buffer slowing down: every other strategy FASTER against it, so its own time/others row is SLOWER', () => {
    const slowZb = (impl: string) => ratios(impl) / 1.3;
    const current = withPairs(results({ cases: SWEEP, seed: 4 }), slowZb, 4);
    const report = compareResults(baseline, current);
    for (const row of rowsOf(report, 'time/zero-buffer')) expect(row.verdict).toBe('FASTER');
    const [own] = rowsOf(report, 'time/others');
    expect(own).toMatchObject({ verdict: 'SLOWER', regression: true, note: 'all 2 other strategies FASTER against it in the same run' });
    expect(own.key.startsWith('zero-buffer|')).toBe(true);
    expect(own.changePct).toBeCloseTo(30, -1);
    expect(report.exitCode).toBe(3);
    // One strategy moving alone is that strategy's change, not zero-buffer's.
    const one = compareResults(baseline, withPairs(results({ cases: SWEEP, seed: 5 }), (i) => ratios(i) * (i === 'tutel' ? 0.7 : 1), 5));
    expect(rowsOf(one, 'time/others')[0].verdict).not.toBe('SLOWER');
  });

  it('absolute times are not gated on an idle machine either (they drift between runs); --absolute-speed gates them', () => {
    const current = withPairs(busy(results({ cases: SWEEP, seed: 6 }), {}), ratios, 6);
    const b = structuredClone(baseline);
    b.provenance.load = idle;
    current.provenance.load = { ...idle, otherBusy: 0.05 };
    const report = compareResults(b, current);
    const absolute = rowsOf(report, 'time');
    expect(absolute.length).toBeGreaterThan(0);
    for (const row of absolute) expect(row).toMatchObject({ verdict: 'SLOWER', regression: false, ungated: true, note: expect.stringMatching(/not gated: absolute times drift between runs .*; machine idle in both runs \(CPU: 5% other now, 2% other in the baseline/) });
    expect(report.exitCode).toBe(0);
    expect(rowsOf(compareResults(b, current, { absoluteSpeed: true }), 'time').every((r) => r.verdict === 'SLOWER' && r.regression)).toBe(true);
  });
});

describe('machine load (src/measure/load.ts)', () => {
  it('reads /proc/stat and subtracts this process own CPU time', () => {
    const before = parseProcStat('cpu  100 0 50 1000 10 0 0 5 0 0\ncpu0 1 2 3 4\n')!;
    expect(before).toEqual({ total: 1165, idle: 1010, steal: 5 });
    // 2 CPUs, 10 s: 2000 ticks; 1200 busy (non-idle, non-steal), 600 of them ours, 100 stolen.
    const after = { total: before.total + 2000, idle: before.idle + 700, steal: before.steal + 100 };
    const load = loadBetween(before, after, 6, 2, [1, 1, 1]);
    expect(load.seconds).toBeCloseTo(10);
    expect(load.otherBusy).toBeCloseTo(600 / 2000);
    expect(load.steal).toBeCloseTo(100 / 2000);
    expect(parseProcStat('nothing here')).toBeNull();
  });

  it('idle means other processes and steal under 15% of the CPUs, in both runs', () => {
    expect(loadComparable(idle, idle).comparable).toBe(true);
    expect(loadComparable(idle, loaded)).toMatchObject({ comparable: false, why: expect.stringMatching(/machine not idle/) });
    expect(loadComparable(loaded, loaded).comparable).toBe(false);
    expect(loadComparable(undefined, idle)).toMatchObject({ comparable: false, why: 'the baseline has no load record' });
  });
});

describe('no false PASS (issue 28)', () => {
  it('a case that ran before and now errors or is refused fails; nothing comparable is exit 2', () => {
    const base = results({ cases: SWEEP });
    const current = results({ cases: SWEEP.map((c) => ({ ...c, status: c.strategy === 'tutel' ? ('error' as const) : ('unsupported' as const) })) });
    const report = compareResults(base, current);
    expect(report.exitCode).toBe(3);
    expect(report.compared).toBe(0);
    expect(report.rows.filter((r) => r.metric === 'status').every((r) => r.regression)).toBe(true);
    // Both sides failed to run: nothing compared, no regression either.
    const both = compareResults(current, current);
    expect(both.exitCode).toBe(0);
    expect(() => requireSomethingCompared(both, current)).toThrow(UsageError);
    expect(() => requireSomethingCompared(both, current)).toThrow(/none of the 3 matched case\(s\) ran ok in both files \(current: 1 unsupported, 1 error, 1 unsupported|none of the 3 matched case\(s\) ran ok in both files/);
  });

  it('validation refuses a key that does not match its config, and a config given twice', () => {
    const r = results({ cases: SWEEP });
    const mismatch = structuredClone(r);
    mismatch.cases[1].key = mismatch.cases[1].key.replace('|E4|', '|E8|');
    expect(validateBenchResults(mismatch).join('\n')).toMatch(/cases\[1\]\.key: .* does not match its config/);
    const duplicate = structuredClone(r);
    const copy = structuredClone(duplicate.cases[1]);
    copy.key = `${copy.key} `; // a different key, the same config
    duplicate.cases.push(copy);
    expect(validateBenchResults(duplicate).join('\n')).toMatch(/cases\[3\]\.config: the same config as results\.cases\[1\]/);
  });
});

describe('--update-baseline (issue 28)', () => {
  const dirs: string[] = [];
  afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
  const folder = async () => {
    const d = await mkdtemp(join(tmpdir(), 'moeblaze-update-'));
    dirs.push(d);
    return d;
  };

  it('refuses a failing run (exit 3, baseline untouched) unless --force, which says what it accepted', async () => {
    const dir = await folder();
    const path = join(dir, 'base.json');
    const base = results({ cases: SWEEP });
    const text = `${JSON.stringify(base, null, 2)}\n`;
    await writeFile(path, text);
    const failing = structuredClone(base);
    failing.cases[1].memory!.stepPeak += 4096;
    const refused = await gateAgainstBaseline(base, failing, { baselinePath: path, options: {}, retries: 0, update: true });
    expect(refused.refused).toBe(true);
    expect(refused.report!.exitCode).toBe(3);
    expect(refused.baselineMessage).toMatch(/left unchanged: the current run fails the gate \(1 regression\(s\)\); --force writes it anyway/);
    expect(await readFile(path, 'utf8')).toBe(text);
    const forced = await gateAgainstBaseline(base, failing, { baselinePath: path, options: {}, retries: 0, update: true, force: true });
    expect(forced.refused).toBeFalsy();
    expect(forced.baselineMessage).toMatch(/^--force: updated the baseline .*, although the current run fails the gate/);
    expect(JSON.parse(await readFile(path, 'utf8')).cases[1].memory.stepPeak).toBe(failing.cases[1].memory!.stepPeak);
  });

  it('writes through a symlinked baseline: the target changes, the link stays a link', async () => {
    const dir = await folder();
    const target = join(dir, 'real.json');
    const link = join(dir, 'link.json');
    const base = results({ cases: SWEEP });
    await writeFile(target, JSON.stringify(base));
    await symlink('real.json', link);
    const next = structuredClone(base);
    next.provenance.time = '2026-02-02T00:00:00.000Z';
    const { baselineMessage } = await gateAgainstBaseline(base, next, { baselinePath: link, options: {}, retries: 0, update: true });
    expect(baselineMessage).toMatch(/updated the baseline .*link\.json \(→ .*real\.json\)/);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe('real.json');
    expect(JSON.parse(await readFile(target, 'utf8')).provenance.time).toBe('2026-02-02T00:00:00.000Z');
  });
});
