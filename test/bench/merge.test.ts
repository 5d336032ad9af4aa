import { describe, expect, it } from 'vitest';
import { mergeShards, type ShardInput } from '../../src/bench/merge.js';
import { sweepCases } from '../../src/bench/cases.js';
import { addRelativeFigures } from '../../src/bench/run.js';
import { BENCH_SCHEMA, type BenchResults } from '../../src/bench/schema.js';
import { sliceSweep } from '../../src/bench/shard.js';
import { completeSweep, saveSweep } from '../../src/bench/sweep.js';
import { validateBenchResults } from '../../src/bench/validate.js';
import { parseSkew } from '../../src/config.js';
import { compareResults } from '../../src/gate/compare.js';
import { collectProvenance } from '../../src/measure/provenance.js';
import { renderBenchMarkdown } from '../../src/render/bench-markdown.js';
import { OTHER_GPU, results, type CaseSpec } from '../fixtures/gate/synthetic.js';

/*
 * moeblaze merge on synthetic shards (no GPU): the shards of a 6-case sweep (zero-buffer, tutel
 * and megablocks at E = 4 and 8, the synthetic fixture's shape), sliced as bench --shard slices
 * them, each with the results the synthetic fixture gives its cases.
 */

const SPEC = completeSweep({ impl: ['zero-buffer', 'tutel', 'megablocks'], experts: [4, 8], tokens: [256], hidden: [32], ffn: [64], topK: [2], skew: parseSkew('zipf:3') });
const PLAN = sweepCases(SPEC);
const CASES: CaseSpec[] = PLAN.cases.map((c, i) => ({ strategy: c.impl, experts: c.layer.experts, ms: 10 + i, stepPeak: 700_000 + 1000 * i }));
const provenance = collectProvenance(['merge', 'test']);

/** The whole sweep as one bench run writes it. */
function unsharded(): BenchResults {
  const r = results({ cases: CASES });
  r.settings = { ...r.settings, sweep: saveSweep(SPEC) };
  addRelativeFigures(r.cases);
  return r;
}

/** Shard i of n: the whole run's cases of its slice, with its settings; `testbed` to move it elsewhere. */
function shard(index: number, count: number, edit: (r: BenchResults) => void = () => {}): ShardInput {
  const { shard: record } = sliceSweep(PLAN, { index, count });
  const r = unsharded();
  r.cases = r.cases.filter((c) => record.keys.includes(c.key));
  r.settings = { ...r.settings, shard: record };
  r.notes = [`shard ${index}/${count}: …`];
  edit(r);
  return { source: `shards/${index}`, schema: BENCH_SCHEMA, results: r };
}

const merge = (inputs: ShardInput[], allowPartial = false) => mergeShards(inputs, { allowPartial, provenance });
const refusal = (inputs: ShardInput[]) => {
  try {
    merge(inputs);
  } catch (error) {
    return (error as Error).message;
  }
  return 'merged';
};

describe('moeblaze merge', () => {
  it('joins every shard into the unsharded file: same cases in sweep order, same figures, each with its shard and testbed', () => {
    const whole = unsharded();
    for (const count of [1, 2, 3]) {
      const inputs = Array.from({ length: count }, (_, i) => shard(count - i, count)); // in any order
      const { results: merged, missing } = merge(inputs);
      expect(missing).toEqual([]);
      expect(validateBenchResults(merged)).toEqual([]);
      expect(merged.complete).toBe(true);
      expect(merged.cases.map((c) => c.key)).toEqual(whole.cases.map((c) => c.key));
      for (const [i, c] of merged.cases.entries()) {
        const { shard: index, testbed, ...rest } = c;
        expect(rest, c.key).toEqual(whole.cases[i]);
        expect(inputs.find((s) => s.results.settings.shard!.index === index)!.results.cases.some((x) => x.key === c.key)).toBe(true);
        expect(testbed).toEqual(whole.testbed);
      }
      expect(merged.testbed).toEqual(whole.testbed);
      expect(merged.settings.shard).toBeUndefined();
      expect(merged.settings.sweep).toEqual(whole.settings.sweep);
      expect(merged.shards!.map((s) => `${s.index}/${s.count} ${s.source}`)).toEqual(Array.from({ length: count }, (_, i) => `${i + 1}/${count} shards/${i + 1}`));
      expect(merged.notes.some((n) => n.startsWith('shard 1/'))).toBe(true);
      // A gate of the merged file against the unsharded one: every case compared, nothing fails.
      const report = compareResults(whole, merged);
      expect(report.matched).toBe(CASES.length);
      expect(report.testbed.comparable).toBe(true);
      expect(report.rows.filter((r) => r.metric === 'stepPeak').every((r) => r.verdict === 'SAME')).toBe(true);
    }
  });

  it('refuses overlapping shards, naming both', () => {
    expect(refusal([shard(1, 2), shard(1, 2), shard(2, 2)])).toMatch(/^merge: "shards\/1" and "shards\/1" are both shard 1\/2; give each shard once$/);
    const stolen = shard(2, 2, (r) => r.cases.push(structuredClone(unsharded().cases.find((c) => !r.settings.shard!.keys.includes(c.key))!)));
    expect(refusal([shard(1, 2), stolen])).toMatch(/^merge: "shards\/2" holds a case outside its slice 2\/2/);
  });

  it('refuses missing cases unless --allow-partial, which lists them', () => {
    expect(refusal([shard(1, 3), shard(3, 3)])).toMatch(/^merge: \d of the sweep's 6 case\(s\) are missing \(shard\(s\) 2\/3 not given\), e\.g\. .*; give every shard, or pass --allow-partial/);
    const unfinished = shard(2, 3, (r) => {
      r.cases.pop();
      r.complete = false;
    });
    expect(refusal([shard(1, 3), unfinished, shard(3, 3)])).toMatch(/^merge: 1 of the sweep's 6 case\(s\) are missing \("shards\/2" \(shard 2\/3\) unfinished with 1 case\(s\) left: continue it with bench --resume\)/);
    const { results: partial, missing } = merge([shard(1, 3), unfinished, shard(3, 3)], true);
    expect(missing).toHaveLength(1);
    expect(partial.complete).toBe(false);
    expect(partial.cases).toHaveLength(5);
    expect(partial.notes.at(-1)).toBe(`partial: 1 case(s) of the sweep are missing: ${missing[0]}`);
    expect(validateBenchResults(partial)).toEqual([]);
  });

  it('refuses shards of different sweeps, run settings, versions or schemas, and whole sweeps', () => {
    const other = (edit: (r: BenchResults) => void) => refusal([shard(1, 2), shard(2, 2, edit)]);
    expect(other((r) => (r.settings.sweep = { ...r.settings.sweep!, seed: 2 }))).toMatch(/^merge: "shards\/2" and "shards\/1" are shards of different sweeps \(their sweep differ\)/);
    expect(other((r) => (r.settings.sampling = { ...r.settings.sampling, maxTimeMs: 9000 }))).toMatch(/their run settings \(--layers, --memory-limit, sampling\) differ/);
    expect(other((r) => (r.provenance = { ...r.provenance, gitCommit: 'abc' }))).toMatch(/their git commit differ/);
    expect(refusal([shard(1, 2), shard(2, 3)])).toMatch(/their shard count differ/);
    expect(refusal([shard(1, 2), { ...shard(2, 2), schema: 'moeblaze.bench/v1' }])).toMatch(/^merge: "shards\/2" was written as moeblaze\.bench\/v1 and "shards\/1" as moeblaze\.bench\/v2/);
    expect(refusal([shard(1, 2, (r) => delete r.settings.shard)])).toMatch(/^merge: "shards\/1" holds a whole sweep \(bench ran without --shard\)/);
    expect(refusal([])).toMatch(/^merge: no shard folder given/);
  });

  it('keeps each case\'s testbed: a sweep over two adapters says so per row, and the gate compares absolute times per testbed', () => {
    const whole = unsharded();
    const moved = shard(2, 2, (r) => (r.testbed = OTHER_GPU));
    const { results: merged } = merge([shard(1, 2), moved]);
    expect(validateBenchResults(merged)).toEqual([]);
    expect(merged.testbed.fingerprint).toMatch(/^mixed\(/);
    const elsewhere = new Set(moved.results.cases.map((c) => c.key));
    for (const c of merged.cases) expect(c.testbed!.fingerprint, c.key).toBe(elsewhere.has(c.key) ? OTHER_GPU.fingerprint : whole.testbed.fingerprint);
    // Zero-buffer's speed ratio only on its own testbed; memory ratios everywhere.
    for (const c of merged.cases.filter((x) => x.config.impl !== 'zero-buffer')) {
      const zero = merged.cases.find((z) => z.config.impl === 'zero-buffer' && z.config.experts === c.config.experts)!;
      expect(c.relative!.stepPeakVsReference).toBe(c.memory!.stepPeak / zero.memory!.stepPeak);
      expect(c.relative!.stepTimeVsReference === null, c.key).toBe(zero.testbed!.fingerprint !== c.testbed!.fingerprint);
    }
    const report = compareResults(whole, merged);
    expect(report.testbed.comparable).toBe(false);
    for (const row of report.rows.filter((r) => r.metric === 'time')) expect(row.verdict === 'INCOMPARABLE', row.key).toBe(elsewhere.has(row.key));
    const md = renderBenchMarkdown(merged);
    // Numbered in the order the cases first show them.
    const first = merged.cases[0].testbed!.fingerprint === OTHER_GPU.fingerprint ? 'NVIDIA H200' : 'llvmpipe';
    expect(md).toMatch(new RegExp(`\\| adapter \\| testbed 1: ${first}.*; testbed 2: `));
    expect(md).toMatch(/`zero-buffer \[testbed 1\]`[\s\S]*`zero-buffer \[testbed 2\]`/);
  });
});
