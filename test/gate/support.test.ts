import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode, UsageError } from '../../src/errors.js';
import { loadBaseline, loadResultsFile, updateBaseline } from '../../src/gate/baseline.js';
import { compareResults, type GateReport } from '../../src/gate/compare.js';
import { parseThreshold, parseTolerance } from '../../src/cli/gate-flags.js';
import { gateWithRetries } from '../../src/gate/remeasure.js';
import { gateAgainstBaseline, loadBaselineForRun, replaceCases } from '../../src/gate/run.js';
import { compactLabels, renderGate } from '../../src/render/gate.js';
import { results, scaled, SWEEP, timeStats } from '../fixtures/gate/synthetic.js';

describe('baseline files', () => {
  it('updateBaseline writes atomically (no temporary file left) and says what it wrote', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gate-baseline-'));
    const path = join(dir, 'base.json');
    const first = await updateBaseline(path, results({ cases: SWEEP }));
    expect(first).toMatch(/^wrote a new baseline .*base\.json: 3 case\(s\) \(3 ok\) measured 2026-01-01T00:00:00\.000Z on llvmpipe/);
    const second = await updateBaseline(path, results({ cases: SWEEP.slice(0, 2) }));
    expect(second).toMatch(/^updated the baseline .*: 2 case\(s\) .* replacing 3 case\(s\) from 2026-01-01/);
    expect(await readdir(dir)).toEqual(['base.json']);
    expect((await loadBaseline(path)).cases).toHaveLength(2);
    expect(await readFile(path, 'utf8')).toMatch(/\n$/);
  });

  it('a missing, malformed or foreign file is a usage error (exit 2) naming the flag', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gate-bad-'));
    const cases: [string, string | null, RegExp][] = [
      ['missing.json', null, /^--baseline: cannot read ".*missing\.json" \(ENOENT\); create one with/],
      ['broken.json', '{"schema": ', /^--baseline: ".*" is not valid JSON/],
      ['other.json', '{"schema": "other/v9"}', /is not a moeblaze\.bench\/v2 \(or moeblaze\.bench\/v1\) results file \(schema: other\/v9\)/],
      ['nocases.json', '{"schema": "moeblaze.bench/v1", "testbed": {"fingerprint": "x"}}', /results\.provenance: expected an object, got nothing \(missing\).*\(and \d+ more\)/],
      // Hand-edited files are validated on read (issue 16): a status the tool never writes, cases that are not a list.
      ['status42.json', JSON.stringify({ ...results({ cases: SWEEP }), cases: [{ ...results({ cases: SWEEP }).cases[0], status: 42 }] }), /results\.cases\[0\]\.status: expected one of ok, oom/],
      ['unfinished.json', JSON.stringify({ ...results({ cases: SWEEP }), complete: false }), /is an unfinished sweep \(3 case\(s\) so far\); finish it with `moeblaze bench --resume/],
      ['casesx.json', JSON.stringify({ ...results({ cases: SWEEP }), cases: 'x' }), /results\.cases: expected an array, got "x"/],
    ];
    for (const [name, text, message] of cases) {
      if (text !== null) await writeFile(join(dir, name), text);
      const error = await loadBaseline(join(dir, name)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UsageError);
      expect((error as UsageError).exitCode).toBe(ExitCode.usage);
      expect((error as Error).message).toMatch(message);
    }
    await expect(loadResultsFile(join(dir, 'missing.json'), 'current')).rejects.toThrow(/^--current: cannot read/);
  });
});

describe('gateWithRetries', () => {
  const ambiguous = (keys: string[]): GateReport => ({ ...compareResults(results({ cases: SWEEP }), results({ cases: SWEEP })), ambiguous: keys });

  it('re-measures ambiguous cases until none is left', async () => {
    const calls: string[][] = [];
    const reports = [ambiguous(['a', 'b']), ambiguous(['b']), ambiguous([])];
    const report = await gateWithRetries(() => reports.shift()!, async (keys) => void calls.push(keys), 5);
    expect(calls).toEqual([['a', 'b'], ['b']]);
    expect(report.remeasured).toEqual([['a', 'b'], ['b']]);
    expect(report.summary).toMatch(/re-measured 2 case\(s\) in 2 round\(s\)$/);
  });

  it('stops after `retries` rounds; what stays ambiguous is reported, not failed', async () => {
    let rounds = 0;
    const report = await gateWithRetries(() => ambiguous(['a']), async () => void rounds++, 2);
    expect(rounds).toBe(2);
    expect(report.ambiguous).toEqual(['a']);
    expect(report.exitCode).toBe(0);
    const none = await gateWithRetries(() => ambiguous(['a']), async () => void rounds++, 0);
    expect(none.remeasured).toBeUndefined();
  });

  it('a real re-measurement that settles an AMBG case', async () => {
    const baseline = results({ cases: [{ strategy: 'zero-buffer', samples: [6, 8, 9, 10, 11, 12, 14] }] });
    let current = results({ cases: [{ strategy: 'zero-buffer', samples: [6, 8, 10, 11.5, 12, 13, 14] }] });
    const report = await gateWithRetries(
      () => compareResults(baseline, current),
      async () => {
        current = results({ cases: [{ strategy: 'zero-buffer', samples: [8.5, 9, 9.5, 10, 10.5, 11, 11.5] }] });
      },
      2,
    );
    expect(report.remeasured).toHaveLength(1);
    expect(report.rows.find((r) => r.metric === 'time')?.verdict).toBe('SAME');
  });
});

describe('gateAgainstBaseline (the entry point of bench --baseline)', () => {
  it('re-measures through replaceCases, then updates the baseline when asked', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gate-run-'));
    const path = join(dir, 'base.json');
    expect(await loadBaselineForRun(path, true)).toBeNull();
    await expect(loadBaselineForRun(path, false)).rejects.toThrow(UsageError);
    const first = await gateAgainstBaseline(null, results({ cases: SWEEP }), { baselinePath: path, options: {}, retries: 2, update: true });
    expect(first).toMatchObject({ report: null, baselineMessage: expect.stringMatching(/^wrote a new baseline/) });
    const baseline = (await loadBaselineForRun(path, true))!;
    // The current run's zero-buffer case came out noisy; its re-measurement is clean again.
    const current = structuredClone(baseline);
    current.cases[0].time!.step = timeStats([5, 10, 15, 10, 10, 20, 4]);
    const rounds: string[][] = [];
    const { report, baselineMessage } = await gateAgainstBaseline(baseline, current, {
      baselinePath: path,
      options: { noiseTarget: 0.05 },
      retries: 2,
      update: true,
      remeasure: async (keys) => replaceCases(current, baseline.cases.filter((c) => keys.includes(c.key))),
      onRound: (_round, keys) => void rounds.push(keys),
    });
    expect(rounds).toEqual([[baseline.cases[0].key]]);
    expect(report).toMatchObject({ exitCode: 0, noisy: [], remeasured: [[baseline.cases[0].key]] });
    expect(current.cases[0].time!.step).toEqual(baseline.cases[0].time!.step);
    // Figures relative to zero-buffer follow its re-measurement.
    expect(current.cases[1].relative?.stepTimeVsReference).toBeCloseTo(baseline.cases[1].time!.step.median / baseline.cases[0].time!.step.median);
    expect(baselineMessage).toMatch(/^updated the baseline .*replacing 3 case\(s\)/);
  });
});

describe('flags', () => {
  it('--threshold takes a percentage or a fraction; --memory-tolerance a size or 0', () => {
    expect(parseThreshold('10%')).toBeCloseTo(0.1);
    expect(parseThreshold('0.25')).toBe(0.25);
    expect(() => parseThreshold('0')).toThrow(UsageError);
    expect(() => parseThreshold('ten')).toThrow(/--threshold: "ten"/);
    expect(parseTolerance('0')).toBe(0);
    expect(parseTolerance('0B')).toBe(0);
    expect(parseTolerance('4KiB')).toBe(4096);
    expect(() => parseTolerance('-1')).toThrow(/--memory-tolerance/);
  });
});

describe('renderGate', () => {
  it('prints the verdict table and the summary, without colour when asked', () => {
    const baseline = results({ cases: SWEEP });
    const doctored = structuredClone(baseline);
    doctored.cases[0].memory!.stepPeak -= 1024;
    const text = renderGate(compareResults(doctored, scaled(baseline, 1.3), { absoluteSpeed: true }), { color: false, width: 160 });
    expect(text).not.toMatch(/\u001b\[/);
    expect(text).toMatch(/case\s+│ metric\s+│ baseline\s+│ current\s+│ change\s+│ verdict/);
    expect(text).toMatch(/zero-buffer cf-\s+│ stepPeak\s+│ 683 KiB\s+│ 684 KiB\s+│ \+0\.1%\s+│ MEM\+ ✗\s+│ \+1\.00 KiB/);
    expect(text).toMatch(/│ time\s+│ 10\.\d\d ms\s+│ 13\.\d\d ms\s+│ \+30\.\d%\s+│ SLOWER ✗/);
    expect(text).toMatch(/every case: T256 d32 h64 E4 k2 swiglu activations f32 zipf:3 norm1 aux0 seed1 train/);
    expect(text.split('\n').at(-1)).toMatch(/^FAIL: \d+ regression\(s\) \(1 MEM\+, \d+ SLOWER\)/);
  });

  it('labels cases by strategy and the fields that vary', () => {
    const { labels, common } = compactLabels(['zb|T1|E4|x', 'tutel|T1|E8|x']);
    expect([...labels.values()]).toEqual(['zb E4', 'tutel E8']);
    expect(common).toBe('T1 x');
  });
});
