import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockFolder } from '../../src/lock.js';
import { caseKey, sweepCases } from '../../src/bench/cases.js';
import { parseSkew } from '../../src/config.js';
import { prepareBench } from '../../src/bench/prepare.js';
import type { BenchResults } from '../../src/bench/schema.js';
import { completeRunSettings, completeSweep, resumeSweep, saveSweep, sweepFromSaved } from '../../src/bench/sweep.js';
import { UsageError } from '../../src/errors.js';
import { results, SWEEP } from '../fixtures/gate/synthetic.js';

const fresh = () => mkdtempSync(join(tmpdir(), 'moeblaze-resume-'));

/** A results file of an interrupted sweep over E = 4, 8 (one case finished). */
function saved(): BenchResults {
  // The synthetic case's shape (T=256, d=32, h=64, k=2, zipf:3), at E = 4 and 8.
  const spec = completeSweep({ impl: ['zero-buffer', 'tutel'], experts: [4, 8], tokens: [256], hidden: [32], ffn: [64], topK: [2], skew: parseSkew('zipf:3') });
  const r = results({ cases: SWEEP.slice(0, 1) });
  const run = completeRunSettings({ maxTimeS: 0.5 });
  r.settings = { ...r.settings, ...run, sweep: saveSweep(spec) };
  r.complete = false;
  return r;
}

const noRun = { sampling: {} };

describe('bench --resume continues the saved sweep', () => {
  it('alone, it plans exactly the saved sweep, whatever the new defaults', () => {
    const r = saved();
    const { spec, run } = resumeSweep(r, 'r.json', {}, noRun);
    expect(sweepCases(spec).cases.map((c) => c.key)).toEqual(sweepCases(sweepFromSaved(r.settings.sweep!)).cases.map((c) => c.key));
    expect(sweepCases(spec).cases).toHaveLength(4);
    expect(run.sampling.maxTimeMs).toBe(500);
  });

  it('flags that repeat the saved sweep are fine; flags that change it exit 2 naming each difference', () => {
    const r = saved();
    expect(() => resumeSweep(r, 'r.json', { experts: [4, 8], impl: ['tutel', 'zero-buffer'] }, noRun)).not.toThrow();
    const error = (() => {
      try {
        resumeSweep(r, 'r.json', { experts: [4, 16], seed: 7, impl: ['gshard'] }, { layers: 4, sampling: { maxTimeMs: 2000 } });
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(UsageError);
    expect(error!.message).toMatch(/--impl gshard \(the saved sweep has zero-buffer,tutel\)/);
    expect(error!.message).toMatch(/--experts 4,16 \(the saved sweep has 4,8\)/);
    expect(error!.message).toMatch(/--seed 7 \(the saved sweep has 1\)/);
    expect(error!.message).toMatch(/--layers 4 \(the saved sweep has 32\)/);
    expect(error!.message).toMatch(/--max-time 2 \(the saved sweep has 0.5\)/);
  });

  it('carries --routing: a balanced sweep resumes balanced and refuses --routing top-k; a sweep saved before --routing resumes as top-k with its keys', () => {
    const spec = completeSweep({ impl: ['zero-buffer'], experts: [4], tokens: [256], hidden: [32], ffn: [64], topK: [2], routing: 'balanced' });
    const r = results({ cases: [] });
    r.settings = { ...r.settings, sweep: saveSweep(spec) };
    const resumed = resumeSweep(r, 'r.json', {}, noRun).spec;
    expect(resumed.routing).toBe('balanced');
    const [balancedCase] = sweepCases(resumed).cases;
    expect(balancedCase.layer.routing).toBe('balanced');
    expect(balancedCase.key).toBe('zero-buffer|T256|d32|h64|E4|k2|swiglu|cf-|activations|f32|uniform|balanced|norm1|aux0|seed1|train');
    expect(() => resumeSweep(r, 'r.json', { routing: 'top-k' }, noRun)).toThrow(/--routing top-k \(the saved sweep has balanced\)/);
    delete (r.settings.sweep as { routing?: string }).routing;
    const old = resumeSweep(r, 'r.json', { routing: 'top-k' }, noRun).spec;
    expect(old.routing).toBe('top-k');
    // Top-k keys are those of files written before --routing, so their baselines still match.
    expect(sweepCases(old).cases[0].key).toBe('zero-buffer|T256|d32|h64|E4|k2|swiglu|cf-|activations|f32|uniform|norm1|aux0|seed1|train');
  });

  it('a file without a saved sweep cannot be resumed (exit 2), and is not replaced by the default sweep', () => {
    const r = saved();
    delete r.settings.sweep;
    expect(() => resumeSweep(r, 'r.json', {}, noRun)).toThrow(/does not record its sweep/);
  });

  it('a corrupt results.json is refused before any work, naming the problem', async () => {
    const dir = fresh();
    writeFileSync(join(dir, 'results.json'), JSON.stringify({ ...saved(), cases: 'x' }));
    await expect(prepareBench({ given: {}, sampling: {}, resume: dir })).rejects.toThrow(/^--resume: ".*results\.json" is not a valid moeblaze\.bench\/v2 results file: results\.cases: expected an array, got "x"/);
    writeFileSync(join(dir, 'results.json'), JSON.stringify({ ...saved(), cases: [{ ...saved().cases[0], status: 42 }] }));
    await expect(prepareBench({ given: {}, sampling: {}, resume: dir })).rejects.toThrow(/status: expected one of/);
    expect(readdirSync(dir)).toEqual(['results.json']);
  });

  it('a finished case the saved sweep does not plan is never dropped: exit 2', async () => {
    const dir = fresh();
    const r = saved();
    const config = { ...r.cases[0].config, tokens: 999 };
    r.cases.push({ ...r.cases[0], config, key: caseKey(config) });
    writeFileSync(join(dir, 'results.json'), JSON.stringify(r));
    await expect(prepareBench({ given: {}, sampling: {}, resume: dir })).rejects.toThrow(/^--resume: ".*" holds 1 case\(s\) its saved sweep does not plan \(e\.g\. zero-buffer\|T999/);
  });

  it('--resume D --out E reads D and locks E', async () => {
    const dir = fresh();
    writeFileSync(join(dir, 'results.json'), JSON.stringify(saved()));
    const out = join(fresh(), 'elsewhere');
    const prepared = await prepareBench({ given: {}, sampling: {}, resume: dir, out });
    try {
      expect(prepared.outDir).toBe(out);
      expect(prepared.resume?.cases).toHaveLength(1);
      expect(readdirSync(out)).toEqual(['.moeblaze.lock']);
      expect(readdirSync(dir)).toEqual(['results.json']);
    } finally {
      prepared.lock.release();
    }
  });

  it('a new sweep into a folder with another sweep\'s results is refused: they would be lost', async () => {
    const dir = fresh();
    writeFileSync(join(dir, 'results.json'), JSON.stringify(saved()));
    await expect(prepareBench({ given: {}, sampling: {}, out: dir })).rejects.toThrow(/^--out: ".*" already holds the results of another sweep \(1 case\(s\), unfinished, from 2026-01-01.*\); continue that sweep with --resume/);
    const same = await prepareBench({ given: {}, sampling: {}, out: dir, resume: dir });
    same.lock.release();
  });
});

describe('the output folder lock', () => {
  it('refuses a folder a live process holds, takes over one whose process is gone', () => {
    const dir = fresh();
    // Process 1 (init) is always alive.
    writeFileSync(join(dir, '.moeblaze.lock'), '1\n');
    expect(() => lockFolder(dir)).toThrow(/^--out: another moeblaze bench \(process 1\) is writing to/);
    writeFileSync(join(dir, '.moeblaze.lock'), '999999\n');
    const lock = lockFolder(dir);
    expect(readdirSync(dir)).toEqual(['.moeblaze.lock']);
    lock.release();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('removes the folder it created when nothing was written into it', () => {
    const dir = join(fresh(), 'new');
    lockFolder(join(dir, 'deeper')).release();
    expect(readdirSync(join(dir, '..'))).toEqual([]);
    mkdirSync(dir);
    lockFolder(dir).release();
    expect(readdirSync(join(dir, '..'))).toEqual(['new']);
  });
});
