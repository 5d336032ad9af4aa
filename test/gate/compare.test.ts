import { describe, expect, it } from 'vitest';
import { compareResults, type GateReport } from '../../src/gate/compare.js';
import { bootstrapRatioCI, judgeSpeed, speedSide } from '../../src/gate/speed.js';
import { LAVAPIPE, OTHER_GPU, results, scaled, SWEEP, timeStats } from '../fixtures/gate/synthetic.js';

const rowsOf = (report: GateReport, metric: string) => report.rows.filter((r) => r.metric === metric);

describe('compareResults: memory', () => {
  it('the same run compared with itself passes: every row SAME, exit 0', () => {
    const run = results({ cases: SWEEP });
    const report = compareResults(run, run);
    expect(report.exitCode).toBe(0);
    expect(report.regressions).toBe(0);
    expect(report.matched).toBe(3);
    expect(new Set(report.rows.map((r) => r.verdict))).toEqual(new Set(['SAME']));
    // Memory and both same-run ratios for the baselines, absolute times for all (same testbed).
    expect(rowsOf(report, 'stepPeak')).toHaveLength(3);
    expect(rowsOf(report, 'activationPeak')).toHaveLength(3);
    expect(rowsOf(report, 'time/zero-buffer')).toHaveLength(2);
    expect(rowsOf(report, 'gemmFraction')).toHaveLength(3);
    expect(rowsOf(report, 'time')).toHaveLength(3);
    expect(report.summary).toMatch(/^PASS: no regression; 3 case\(s\) compared$/);
  });

  it('a doctored baseline with a smaller peak: MEM+, a regression, exit 3', () => {
    const current = results({ cases: SWEEP });
    const baseline = structuredClone(current);
    baseline.cases[1].memory!.stepPeak -= 256;
    const report = compareResults(baseline, current);
    expect(report.exitCode).toBe(3);
    expect(report.regressions).toBe(1);
    const row = report.rows.find((r) => r.verdict === 'MEM+')!;
    expect(row).toMatchObject({ key: current.cases[1].key, metric: 'stepPeak', baseline: 1_099_744, current: 1_100_000, regression: true, note: '+256 B' });
    expect(report.summary).toMatch(/^FAIL: 1 regression\(s\) \(1 MEM\+\)/);
  });

  it('--memory-tolerance absorbs small growth; a smaller peak is MEM-, informative only', () => {
    const current = results({ cases: SWEEP });
    const baseline = structuredClone(current);
    baseline.cases[0].memory!.activationPeak -= 100;
    baseline.cases[2].memory!.stepPeak += 4096;
    expect(compareResults(baseline, current, { memoryTolerance: 128 }).exitCode).toBe(0);
    const report = compareResults(baseline, current, { memoryTolerance: 128 });
    expect(report.rows.find((r) => r.key === current.cases[0].key && r.metric === 'activationPeak')).toMatchObject({ verdict: 'SAME', note: '+100 B (within --memory-tolerance)' });
    expect(report.rows.find((r) => r.key === current.cases[2].key && r.metric === 'stepPeak')).toMatchObject({ verdict: 'MEM-', regression: false });
    expect(compareResults(baseline, current, { memoryTolerance: 0 }).exitCode).toBe(3);
  });

  it('ok → oom is MEM+ with a note; oom → ok is MEM-', () => {
    const baseline = results({ cases: SWEEP });
    const current = results({ cases: [SWEEP[0], { ...SWEEP[1], status: 'oom' }, SWEEP[2]] });
    const report = compareResults(baseline, current);
    expect(report.exitCode).toBe(3);
    expect(report.rows.find((r) => r.metric === 'status')).toMatchObject({ baseline: 'ok', current: 'oom', verdict: 'MEM+', regression: true, note: expect.stringMatching(/now out of memory/) });
    const back = compareResults(current, baseline);
    expect(back.exitCode).toBe(0);
    expect(back.rows.find((r) => r.metric === 'status')).toMatchObject({ verdict: 'MEM-', regression: false });
  });

  it('cases on one side only are listed, not failed', () => {
    const baseline = results({ cases: [...SWEEP, { strategy: 'gshard', ms: 20 }] });
    const current = results({ cases: [...SWEEP, { strategy: 'zero-buffer', experts: 8, ms: 11 }] });
    const report = compareResults(baseline, current);
    expect(report.exitCode).toBe(0);
    expect(report.onlyInBaseline).toEqual([baseline.cases[3].key]);
    expect(report.onlyInCurrent).toEqual([current.cases[3].key]);
    expect(report.summary).toMatch(/1 only in baseline; 1 only in current/);
  });
});

describe('compareResults: speed', () => {
  it('a run made 30% slower: SLOWER, exit 3 (advisory: printed, exit 0)', () => {
    const baseline = results({ cases: SWEEP });
    const current = scaled(results({ cases: SWEEP, seed: 2 }), 1.3);
    const report = compareResults(baseline, current);
    expect(report.exitCode).toBe(3);
    // Absolute times: SLOWER, but not gated without a load record saying both machines were idle.
    for (const row of rowsOf(report, 'time')) expect(row).toMatchObject({ verdict: 'SLOWER', regression: false, ungated: true, note: expect.stringMatching(/not gated: the baseline has no load record/) });
    for (const row of rowsOf(compareResults(baseline, current, { absoluteSpeed: true }), 'time')) expect(row).toMatchObject({ verdict: 'SLOWER', regression: true });
    expect(rowsOf(report, 'time')[0].changePct).toBeCloseTo(30, -1);
    // The GEMM ceiling did not slow down, so the fraction of it fell.
    for (const row of rowsOf(report, 'gemmFraction')) expect(row.verdict).toBe('SLOWER');
    // Every strategy slowed alike: the ratios to zero-buffer did not move.
    for (const row of rowsOf(report, 'time/zero-buffer')) expect(row.verdict).toBe('SAME');
    const advisory = compareResults(baseline, current, { advisorySpeed: true });
    expect(advisory.exitCode).toBe(0);
    expect(advisory.rows.filter((r) => r.verdict === 'SLOWER').length).toBeGreaterThan(0);
    expect(advisory.summary).toMatch(/SLOWER \(advisory\)/);
  });

  it('the mirror image is FASTER, never a failure', () => {
    const baseline = results({ cases: SWEEP });
    const current = scaled(results({ cases: SWEEP, seed: 3 }), 0.7);
    const report = compareResults(baseline, current);
    expect(report.exitCode).toBe(0);
    expect(rowsOf(report, 'time').every((r) => r.verdict === 'FASTER')).toBe(true);
  });

  it('a noisy-but-equal run is not a failure: overlapping samples are AMBG (to re-measure) or SAME', () => {
    const base = [6, 8, 9, 10, 11, 12, 14];
    const noisy = [6, 8, 10, 11.5, 12, 13, 14]; // median +15%, same spread
    const baseline = results({ cases: [{ strategy: 'zero-buffer', samples: base }] });
    const current = results({ cases: [{ strategy: 'zero-buffer', samples: noisy }] });
    const report = compareResults(baseline, current);
    expect(report.exitCode).toBe(0);
    expect(rowsOf(report, 'time')[0]).toMatchObject({ verdict: 'AMBG', regression: false });
    expect(report.ambiguous).toEqual([current.cases[0].key]);
    for (let seed = 10; seed < 20; seed++) {
      const a = results({ cases: SWEEP.map((c) => ({ ...c, samples: undefined })), seed });
      const b = results({ cases: SWEEP, seed: seed + 100 });
      const widen = (r: typeof a) => {
        for (const c of r.cases) c.time!.step = timeStats(c.time!.step.samples.map((s, i) => s * (i % 2 ? 0.7 : 1.3)));
        return r;
      };
      const verdicts = compareResults(widen(a), widen(b)).rows.map((r) => r.verdict);
      expect(verdicts.every((v) => v === 'SAME' || v === 'AMBG'), verdicts.join(',')).toBe(true);
    }
  });

  it('a baseline from another adapter: absolute times INCOMPARABLE (exit 0; exit 3 with strict); memory and ratios still compared', () => {
    const baseline = results({ cases: SWEEP, testbed: OTHER_GPU });
    // Another machine: everything 5× slower, the GEMM ceiling too.
    const current = scaled(results({ cases: SWEEP, testbed: LAVAPIPE, gemmMs: 100, seed: 4 }), 5);
    const report = compareResults(baseline, current);
    expect(report.exitCode).toBe(0);
    expect(report.testbed.comparable).toBe(false);
    expect(rowsOf(report, 'time').every((r) => r.verdict === 'INCOMPARABLE' && !r.regression)).toBe(true);
    expect(rowsOf(report, 'stepPeak').every((r) => r.verdict === 'SAME')).toBe(true);
    expect(rowsOf(report, 'time/zero-buffer').every((r) => r.verdict === 'SAME')).toBe(true);
    expect(rowsOf(report, 'gemmFraction').every((r) => r.verdict === 'SAME')).toBe(true);
    expect(report.summary).toMatch(/absolute times INCOMPARABLE: testbed differs \(baseline NVIDIA H200 \(driver 570\.1\) \(vulkan, Dawn 0\.6\.2\), current llvmpipe/);
    const strict = compareResults(baseline, current, { strict: true });
    expect(strict.exitCode).toBe(3);
    expect(strict.regressions).toBe(3);
  });

  it('same-run ratios catch one strategy slowing down on any testbed', () => {
    const baseline = results({ cases: SWEEP, testbed: OTHER_GPU });
    const current = scaled(results({ cases: SWEEP, seed: 5 }), 1.4, (c) => c.config.impl === 'tutel');
    const report = compareResults(baseline, current);
    expect(report.exitCode).toBe(3);
    const tutel = report.rows.filter((r) => r.key === current.cases[1].key && r.regression);
    expect(tutel.map((r) => r.metric).sort()).toEqual(['gemmFraction', 'time/zero-buffer']);
    expect(tutel[0].changePct).toBeGreaterThan(30);
  });

  it('a GEMM ceiling that moved between runs: its fraction is reported, not gated (lavapipe)', () => {
    // The case times are the same; only the one ceiling measurement came out 30% faster.
    const baseline = results({ cases: SWEEP, gemmMs: 20 });
    const current = results({ cases: SWEEP, gemmMs: 15.4, seed: 1 });
    const report = compareResults(baseline, current);
    expect(report.exitCode).toBe(0);
    const fractions = rowsOf(report, 'gemmFraction');
    expect(fractions.every((r) => r.verdict === 'SLOWER' && !r.regression)).toBe(true);
    expect(fractions[0].note).toMatch(/^not gated: GEMM ceiling .* GFLOP\/s → .* GFLOP\/s \(\+\d+\.\d%\)$/);
    expect(rowsOf(report, 'time').every((r) => r.verdict === 'SAME')).toBe(true);
  });

  it("the ceiling's own spread widens the fraction's interval: no separation, no failure", () => {
    const spread = [14, 16, 18, 20, 22, 24, 26];
    const baseline = results({ cases: [SWEEP[0]], gemmSamples: spread });
    const current = scaled(results({ cases: [SWEEP[0]], gemmSamples: spread, seed: 2 }), 1.15);
    const row = rowsOf(compareResults(baseline, current), 'gemmFraction')[0];
    expect(row).toMatchObject({ verdict: 'AMBG', regression: false });
    expect(row.note).toMatch(/overlap \(ceiling spread included\)/);
  });

  it('without ceilings or zero-buffer, only what exists is compared', () => {
    const run = results({ cases: [SWEEP[1]], gemmMs: null });
    const report = compareResults(run, run);
    expect(report.rows.map((r) => r.metric)).toEqual(['stepPeak', 'activationPeak', 'time']);
  });

  it('lists noisy current cases for re-measurement when a noise target is given', () => {
    const baseline = results({ cases: SWEEP });
    const current = results({ cases: [{ ...SWEEP[0], samples: [5, 10, 15, 10, 10, 20, 4] }, SWEEP[1], SWEEP[2]] });
    expect(compareResults(baseline, current).noisy).toEqual([]);
    expect(compareResults(baseline, current, { noiseTarget: 0.05 }).noisy).toEqual([current.cases[0].key]);
  });
});

describe('speed statistics', () => {
  it('the bootstrap is seeded: the same inputs give the same interval', () => {
    const a = speedSide(timeStats([9, 10, 11, 10, 12, 9.5]), null);
    const b = speedSide(timeStats([12, 13, 14, 13, 12.5, 15]), null);
    const options = { resamples: 500, seed: 7 };
    expect(bootstrapRatioCI(a, b, options, 'x')).toEqual(bootstrapRatioCI(a, b, options, 'x'));
    const [lo, hi] = bootstrapRatioCI(a, b, options, 'x');
    expect(lo).toBeLessThan(1.3);
    expect(hi).toBeGreaterThan(1.25);
  });

  it('separation by the bootstrap when the raw intervals overlap', () => {
    // One slow outlier in each run widens p90 but barely moves the median.
    const base = timeStats([10, 10.1, 9.9, 10, 10.2, 9.8, 10, 10.1, 9.9, 30]);
    const cur = timeStats([12, 12.1, 11.9, 12, 12.2, 11.8, 12, 12.1, 11.9, 40]);
    const j = judgeSpeed(speedSide(base, null), speedSide(cur, null), 0.1, { resamples: 2000, seed: 1 }, 'k');
    expect(j).toMatchObject({ verdict: 'SLOWER', separatedBy: 'bootstrap' });
    expect(j.ci![0]).toBeGreaterThan(1.1);
  });
});
