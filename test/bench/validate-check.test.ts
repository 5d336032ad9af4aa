import { caseKey } from '../../src/bench/cases.js';
import { describe, expect, it } from 'vitest';
import { validateBenchResults } from '../../src/bench/validate.js';
import { benchFixture } from '../helpers/bench-fixture.js';

/** The fixture with the first case's check replaced. */
function withCheck(check: unknown): unknown {
  const r = benchFixture();
  (r.cases[0] as { check?: unknown }).check = check;
  return r;
}

describe('results.json: the check record of issue 18', () => {
  it('accepts a full and a sampled float64 check with its size', () => {
    expect(validateBenchResults(withCheck({ against: 'reference', kind: 'full', sample: null, maxRelError: 1e-7, maxErrorRatio: 0.01 }))).toEqual([]);
    expect(validateBenchResults(withCheck({ against: 'reference', kind: 'sampled', sample: { tokens: 64, units: 32 }, maxRelError: 1e-7, maxErrorRatio: 0.2 }))).toEqual([]);
  });

  it('rejects an unknown kind, a sampled check without its size, and a bad size', () => {
    expect(validateBenchResults(withCheck({ against: 'reference', kind: 'partial', maxRelError: 0 }))).toEqual([expect.stringMatching(/check\.kind: expected one of full, sampled/)]);
    expect(validateBenchResults(withCheck({ against: 'reference', kind: 'sampled', maxRelError: 0 }))).toEqual([expect.stringMatching(/check\.sample: a sampled check needs its sample size/)]);
    expect(validateBenchResults(withCheck({ against: 'reference', kind: 'sampled', sample: { tokens: 0, units: 1.5 }, maxRelError: 0 }))).toHaveLength(2);
    expect(validateBenchResults(withCheck({ against: 'reference', kind: 'full', maxRelError: 0, maxErrorRatio: -1 }))).toHaveLength(1);
  });
});

describe('results.json: the check record of issue 29', () => {
  it('accepts its verdict, the forced near-tie tokens and its time; rejects them malformed', () => {
    const full = { against: 'reference', kind: 'full', sample: null, maxRelError: 1e-7, maxErrorRatio: 0.01 };
    expect(validateBenchResults(withCheck({ ...full, pass: true, forcedTokens: [3, 17], seconds: 0.4 }))).toEqual([]);
    expect(validateBenchResults(withCheck({ ...full, pass: 'yes' }))).toEqual([expect.stringMatching(/check\.pass/)]);
    expect(validateBenchResults(withCheck({ ...full, forcedTokens: [1.5] }))).toEqual([expect.stringMatching(/check\.forcedTokens: expected a list of token indices/)]);
    expect(validateBenchResults(withCheck({ ...full, seconds: -1 }))).toEqual([expect.stringMatching(/check\.seconds/)]);
  });
});

describe('results.json: the routing of a case', () => {
  it('is optional (files written before --routing are top-k) and, when present, top-k or balanced', () => {
    const r = benchFixture();
    delete (r.cases[0].config as { routing?: string }).routing;
    expect(validateBenchResults(r)).toEqual([]);
    r.cases[0].config.routing = 'balanced';
    // The key names the routing: a case's key must say what its config says (issue 28).
    expect(validateBenchResults(r)).toEqual([expect.stringMatching(/cases\[0\]\.key: .* does not match its config/)]);
    r.cases[0].key = caseKey(r.cases[0].config);
    expect(validateBenchResults(r)).toEqual([]);
    (r.cases[0].config as { routing: string }).routing = 'sideways';
    expect(validateBenchResults(r)).toEqual([expect.stringMatching(/config\.routing: expected one of top-k, balanced, got "sideways"/)]);
  });
});
