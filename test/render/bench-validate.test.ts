import { describe, expect, it } from 'vitest';
import { validateBenchResults } from '../../src/bench/validate.js';
import { benchFixture } from '../helpers/bench-fixture.js';

const fixture = benchFixture;

/** A broken copy of the fixture. */
function broken(edit: (r: Record<string, any>) => void): unknown {
  const r = fixture() as unknown as Record<string, any>;
  edit(r);
  return r;
}

describe('validateBenchResults', () => {
  it('accepts the fixture, which covers ok, oom and unsupported cases', () => {
    const r = fixture();
    expect(validateBenchResults(r)).toEqual([]);
    expect(r.cases).toHaveLength(9);
    expect(new Set(r.cases.map((c) => c.status))).toEqual(new Set(['ok', 'oom', 'unsupported']));
    expect(new Set(r.cases.map((c) => c.config.experts))).toEqual(new Set([64, 256, 1024]));
    expect(new Set(r.cases.map((c) => c.config.impl))).toEqual(new Set(['zero-buffer', 'tutel', 'megablocks']));
  });

  it('keeps the fixture internally consistent (peaks, estimate, quantiles of its samples)', () => {
    for (const c of fixture().cases.filter((x) => x.status === 'ok')) {
      const m = c.memory!;
      expect(m.activationPeak).toBe(m.stepPeak - m.baseline);
      expect(m.modelEstimate).toBe(32 * m.savedForBackward! + m.backwardTransient!);
      const s = c.time!.step;
      const sorted = [...s.samples].sort((a, b) => a - b);
      expect(s.p10).toBeGreaterThanOrEqual(sorted[0]);
      expect(s.p90).toBeLessThanOrEqual(sorted[sorted.length - 1]);
    }
  });

  it('rejects what is not a results object', () => {
    expect(validateBenchResults(null)).toEqual(['results: expected an object, got null']);
    expect(validateBenchResults([])).toEqual(['results: expected an object, got an array']);
  });

  const cases: [string, (r: Record<string, any>) => void, RegExp][] = [
    ['another schema', (r) => (r.schema = 'moeblaze.bench/v3'), /^results\.schema: expected "moeblaze\.bench\/v2", got "moeblaze\.bench\/v3"$/],
    ['a skew as text (v1) in a v2 file', (r) => (r.cases[0].config.skew = 'zipf:3'), /^results\.cases\[0\]\.config\.skew: expected an object, got "zipf:3"$/],
    ['a zipf skew without its s', (r) => (r.cases[0].config.skew = { kind: 'zipf' }), /^results\.cases\[0\]\.config\.skew\.s: expected a finite number, got nothing/],
    ['a missing required field', (r) => delete r.provenance.commandLine, /^results\.provenance\.commandLine: expected a string, got nothing \(missing\)$/],
    ['a field of the wrong type', (r) => (r.cases[0].config.experts = '64'), /^results\.cases\[0\]\.config\.experts: expected a finite number/],
    ['an unknown status', (r) => (r.cases[1].status = 'slow'), /^results\.cases\[1\]\.status: expected one of ok, oom, unsupported, error, mismatch, got "slow"$/],
    ['an ok case without memory', (r) => delete r.cases[2].memory, /^results\.cases\[2\]\.memory: an ok case needs time, throughput and memory$/],
    ['p10 above the median', (r) => (r.cases[0].time.step.p10 = 99), /^results\.cases\[0\]\.time\.step: expected p10 ≤ median ≤ p90/],
    ['n not the number of samples', (r) => r.cases[3].time.forward.samples.pop(), /^results\.cases\[3\]\.time\.forward: n is \d+ but there are \d+ samples$/],
    ['a duplicate case key', (r) => (r.cases[1].key = r.cases[0].key), /^results\.cases\[1\]\.key: duplicate case key/],
    ['an oom case without a message', (r) => delete r.cases[7].message, /^results\.cases\[7\]\.message: a case with status oom needs a message$/],
    ['an unknown buffer tag', (r) => (r.cases[0].memory.peakByTag.scratch = 4), /^results\.cases\[0\]\.memory\.peakByTag\.scratch: unknown key/],
    ['activation peak above step peak', (r) => (r.cases[0].memory.activationPeak = r.cases[0].memory.stepPeak + 4), /^results\.cases\[0\]\.memory: activation peak/],
    ['a NaN sample', (r) => (r.cases[0].time.step.samples[3] = null), /^results\.cases\[0\]\.time\.step\.samples\[3\]: expected a finite number, got null$/],
  ];

  it.each(cases)('rejects %s', (_name, edit, expected) => {
    const problems = validateBenchResults(broken(edit));
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.some((p) => expected.test(p))).toBe(true);
  });

  it('lists every problem, not only the first', () => {
    const problems = validateBenchResults(
      broken((r) => {
        r.schema = 'x';
        r.complete = 'yes';
        r.cases[0].time.step.n = 1;
      }),
    );
    expect(problems).toHaveLength(3);
  });
});
