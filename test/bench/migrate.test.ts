import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BENCH_SCHEMA_V1, migrateBenchResults } from '../../src/bench/migrate.js';
import { caseKey, sweepCases } from '../../src/bench/cases.js';
import { prepareBench } from '../../src/bench/prepare.js';
import { addRelativeFigures } from '../../src/bench/run.js';
import { readBenchResults } from '../../src/bench/read.js';
import { BENCH_SCHEMA, type BenchResults } from '../../src/bench/schema.js';
import { completeRunSettings, completeSweep, saveSweep, sweepFromSaved } from '../../src/bench/sweep.js';
import { validateBenchResults } from '../../src/bench/validate.js';
import { formatSkew } from '../../src/config.js';
import { benchFixtureJson } from '../helpers/bench-fixture.js';
import { results, SWEEP } from '../fixtures/gate/synthetic.js';

type Json = Record<string, any>;

/** A v2 file as moeblaze 0.1 wrote it (v1): `strategy`/`strategies` for `impl`, the skew as text. */
function asV1(r: BenchResults): Json {
  const file = structuredClone(r) as Json;
  file.schema = BENCH_SCHEMA_V1;
  for (const c of file.cases) {
    const { impl, routing: _caseRouting, ...rest } = c.config;
    c.config = { strategy: impl, ...rest, skew: formatSkew(rest.skew) };
  }
  if (file.settings.sweep) {
    const { impl, routing: _sweepRouting, ...rest } = file.settings.sweep;
    file.settings.sweep = { strategies: impl, ...rest, skew: formatSkew(rest.skew) };
  }
  return file;
}

/** The relative figures' names in files written before they were named for the reference strategy. */
const OLD_RELATIVE_NAMES: Record<string, string> = {
  stepPeakVsZeroBuffer: 'stepPeakVsReference',
  activationPeakVsZeroBuffer: 'activationPeakVsReference',
  savedVsZeroBuffer: 'savedVsReference',
  zeroBufferSpeedup: 'stepTimeVsReference',
};

/** A current file as moeblaze wrote it before the relative figures were renamed. */
function withOldRelativeNames(r: BenchResults): Json {
  const file = structuredClone(r) as Json;
  const old = Object.fromEntries(Object.entries(OLD_RELATIVE_NAMES).map(([a, b]) => [b, a]));
  for (const c of file.cases) if (c.relative) c.relative = Object.fromEntries(Object.entries(c.relative).map(([key, value]) => [old[key], value]));
  return file;
}

describe('results.json written as moeblaze.bench/v1', () => {
  it('the committed fixture migrates to a valid v2 file: each case the same case, under the flag\'s names', () => {
    const v1 = benchFixtureJson() as Json;
    expect(v1.schema).toBe(BENCH_SCHEMA_V1);
    const v2 = migrateBenchResults(v1) as BenchResults;
    expect(v2.schema).toBe(BENCH_SCHEMA);
    expect(validateBenchResults(v2)).toEqual([]);
    expect(v2.cases).toHaveLength(v1.cases.length);
    v2.cases.forEach((c, i) => {
      const old = v1.cases[i];
      const { strategy, skew, ...same } = old.config;
      // v1 predates --routing: its cases were top-k.
      expect(c.config).toEqual({ impl: strategy, ...same, skew: { kind: 'uniform' }, routing: 'top-k' });
      expect(skew).toBe('uniform');
      // The key, built from every field, is unchanged: the gate and --resume match on it.
      expect(caseKey(c.config)).toBe(old.key);
      // Its check predates `pass`: a case that is not a mismatch passed it; its relative figures were named for zero-buffer.
      const relative = old.relative && Object.fromEntries(Object.entries(old.relative).map(([key, value]) => [OLD_RELATIVE_NAMES[key], value]));
      expect({ ...c, config: null }).toEqual({ ...old, config: null, ...(old.check && { check: { ...old.check, pass: old.status !== 'mismatch' } }), ...(relative && { relative }) });
    });
    expect({ ...v2, cases: null, schema: null }).toEqual({ ...v1, cases: null, schema: null });
    // The input is left as it was.
    expect(v1.cases[0].config.strategy).toBe('zero-buffer');
  });

  it('a v1 saved sweep resumes as the same sweep: zipf skew and strategies read back', () => {
    const spec = completeSweep({ impl: ['zero-buffer', 'tutel'], experts: [4, 8], tokens: [256], hidden: [32], ffn: [64], topK: [2], skew: { kind: 'zipf', s: 3 } });
    const current = results({ cases: SWEEP.slice(0, 1) });
    current.settings = { ...current.settings, ...completeRunSettings({}), sweep: saveSweep(spec) };
    const v1 = asV1(current);
    expect(v1.settings.sweep).toMatchObject({ strategies: ['zero-buffer', 'tutel'], skew: 'zipf:3' });
    expect(v1.cases[0].config).toMatchObject({ strategy: 'zero-buffer', skew: 'zipf:3' });
    const migrated = migrateBenchResults(v1) as BenchResults;
    expect(migrated).toEqual(current);
    expect(sweepCases(sweepFromSaved(migrated.settings.sweep!)).cases.map((c) => c.key)).toContain(migrated.cases[0].key);
  });

  it('bench\'s reader takes a v1 file (the gate\'s baselines, --resume), and refuses an unknown schema', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moeblaze-migrate-'));
    const path = join(dir, 'results.json');
    writeFileSync(path, JSON.stringify(benchFixtureJson()));
    const read = await readBenchResults(path, 'baseline');
    expect(read.schema).toBe(BENCH_SCHEMA);
    expect(read.cases[0].config.impl).toBe('zero-buffer');
    writeFileSync(path, JSON.stringify({ ...benchFixtureJson(), schema: 'moeblaze.bench/v0' }));
    await expect(readBenchResults(path, 'baseline')).rejects.toThrow(/^--baseline: ".*" is not a moeblaze\.bench\/v2 \(or moeblaze\.bench\/v1\) results file \(schema: moeblaze\.bench\/v0\)$/);
  });

  it('--resume continues an interrupted sweep saved as v1', async () => {
    const spec = completeSweep({ impl: ['zero-buffer', 'tutel'], experts: [4, 8], tokens: [256], hidden: [32], ffn: [64], topK: [2], skew: { kind: 'zipf', s: 3 } });
    const r = results({ cases: SWEEP.slice(0, 1) });
    r.settings = { ...r.settings, ...completeRunSettings({ maxTimeS: 0.5 }), sweep: saveSweep(spec) };
    r.complete = false;
    const dir = mkdtempSync(join(tmpdir(), 'moeblaze-migrate-'));
    writeFileSync(join(dir, 'results.json'), JSON.stringify(asV1(r)));
    const prepared = await prepareBench({ given: {}, sampling: {}, resume: dir });
    try {
      expect(prepared.resume).toEqual(r);
      expect(prepared.sweep.cases.map((c) => c.key)).toEqual(sweepCases(spec).cases.map((c) => c.key));
    } finally {
      prepared.lock.release();
    }
  });

  it('a v1 value it cannot read is left for the validator to name', () => {
    const v1 = benchFixtureJson() as Json;
    v1.cases[0].config.skew = 'zipf:lots';
    const problems = validateBenchResults(migrateBenchResults(v1));
    expect(problems).toEqual([expect.stringMatching(/^results\.cases\[0\]\.config\.skew: expected an object, got "zipf:lots"$/)]);
  });

  it('a v2 file is returned as it is', () => {
    const current = results({ cases: SWEEP });
    expect(migrateBenchResults(current)).toBe(current);
  });

  it('a v2 check without `pass` (before issue 29) gets the verdict its status implies; never checked is not passed', () => {
    const current = structuredClone(results({ cases: SWEEP.slice(0, 3) })) as Json;
    current.cases[0].check = { against: 'reference', maxRelError: 1e-6 };
    current.cases[1] = { ...current.cases[1], status: 'mismatch', message: 'O off', check: { against: 'reference', maxRelError: 0.5 } };
    current.cases[2].check = { against: 'none', maxRelError: null };
    const migrated = migrateBenchResults(current) as BenchResults;
    expect(migrated.cases.map((c) => c.check?.pass)).toEqual([true, false, false]);
    expect(current.cases[0].check.pass).toBeUndefined();
    // A verdict that contradicts the status is refused.
    const contradiction = structuredClone(migrated);
    contradiction.cases[0].check!.pass = false;
    expect(validateBenchResults(contradiction)).toContainEqual(expect.stringMatching(/cases\[0\]\.check\.pass.*false contradicts status ok against reference/));
  });

  it('a v2 file with the relative figures named for zero-buffer reads, and resumes, under the reference names', async () => {
    const spec = completeSweep({ impl: ['zero-buffer', 'tutel'], experts: [4, 8], tokens: [256], hidden: [32], ffn: [64], topK: [2], skew: { kind: 'zipf', s: 3 } });
    const r = results({ cases: SWEEP.slice(0, 2) });
    addRelativeFigures(r.cases);
    expect(r.cases[1].relative?.stepTimeVsReference).toBeGreaterThan(0);
    r.settings = { ...r.settings, ...completeRunSettings({ maxTimeS: 0.5 }), sweep: saveSweep(spec) };
    r.complete = false;
    const file = withOldRelativeNames(r);
    expect(Object.keys(file.cases[1].relative)).toEqual(['stepPeakVsZeroBuffer', 'activationPeakVsZeroBuffer', 'savedVsZeroBuffer', 'zeroBufferSpeedup']);
    // Unmigrated, the old names are not the schema's: the reader is what makes the old file good.
    expect(validateBenchResults(file).length).toBeGreaterThan(0);
    expect(migrateBenchResults(file)).toEqual(r);
    const dir = mkdtempSync(join(tmpdir(), 'moeblaze-migrate-'));
    writeFileSync(join(dir, 'results.json'), JSON.stringify(file));
    expect(await readBenchResults(join(dir, 'results.json'), 'baseline')).toEqual(r);
    const prepared = await prepareBench({ given: {}, sampling: {}, resume: dir });
    try {
      expect(prepared.resume).toEqual(r);
    } finally {
      prepared.lock.release();
    }
  });
});
