import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { caseConfig, configKey, sweepCases, type SweepCases } from '../../src/bench/cases.js';
import { prepareBench } from '../../src/bench/prepare.js';
import { caseCost, CONFIG_IMBALANCE, parseShardSpec, partitionSweep, sliceSweep } from '../../src/bench/shard.js';
import { completeSweep, saveSweep } from '../../src/bench/sweep.js';
import { parseSkew } from '../../src/config.js';
import { UsageError } from '../../src/errors.js';
import { results } from '../fixtures/gate/synthetic.js';

const sweep = (given: Parameters<typeof completeSweep>[0]) => sweepCases(completeSweep(given));
const keysOf = (p: SweepCases) => p.cases.map((c) => c.key);
const costOf = (p: SweepCases, keys: string[]) => keys.reduce((a, k) => a + caseCost(p.cases.find((c) => c.key === k)!), 0);

describe('--shard i/n', () => {
  it('takes i/n with 1 ≤ i ≤ n, and refuses anything else with one line naming what is allowed', () => {
    expect(parseShardSpec('1/1')).toEqual({ index: 1, count: 1 });
    expect(parseShardSpec(' 3/4 ')).toEqual({ index: 3, count: 4 });
    for (const bad of ['0/3', '4/3', '1/0', 'a/b', '', '3', '1/', '/3', '-1/3', '1.5/3', '1/3/4', '1/2.0', '99999999999/1', '1/10001', '½/2', '1 of 3']) {
      expect(() => parseShardSpec(bad), bad).toThrow(UsageError);
      expect(() => parseShardSpec(bad), bad).toThrow(/^--shard: ".*" is not allowed; use i\/n with 1 ≤ i ≤ n/);
    }
  });

  it('the slices of a sweep are stable, disjoint, cover it, and keep the sweep\'s order within a slice', () => {
    const p = sweep({});
    const first = partitionSweep(p, 3);
    expect(partitionSweep(sweep({}), 3)).toEqual(first);
    const all = first.slices.flatMap((s) => s.keys);
    expect(new Set(all).size).toBe(all.length);
    expect([...all].sort()).toEqual([...keysOf(p)].sort());
    for (const s of first.slices) {
      expect(s.keys.length).toBeGreaterThan(0);
      expect(s.keys).toEqual(keysOf(p).filter((k) => s.keys.includes(k)));
      expect(s.cost).toBe(costOf(p, s.keys));
    }
  });

  it('balances predicted cost, not count: moeblaze-paper in 4 and 8 shards', () => {
    const p = sweep({ preset: 'moeblaze-paper' });
    const costs = new Map(p.cases.map((c) => [c.key, caseCost(c)]));
    const sum = (keys: string[]) => keys.reduce((a, k) => a + costs.get(k)!, 0);
    const total = sum(keysOf(p));
    const units: string[] = [];
    for (const n of [4, 8]) {
      const { unit, slices } = partitionSweep(p, n);
      units.push(unit);
      const largest = Math.max(...slices.map((s) => s.cost));
      expect(largest / (total / n), `${n} shards`).toBeLessThanOrEqual(1 + CONFIG_IMBALANCE);
      // An even split by count (the case list cut in n runs) leaves one shard far heavier.
      const size = Math.ceil(p.cases.length / n);
      const byCount = Array.from({ length: n }, (_, i) => sum(keysOf(p).slice(i * size, (i + 1) * size)));
      expect(largest, `${n} shards`).toBeLessThan(0.8 * Math.max(...byCount));
      if (unit !== 'config') continue;
      const shardOfConfig = new Map<string, number>();
      slices.forEach((s, i) => s.keys.forEach((k) => {
        const config = configKey(caseConfig(p.cases.find((c) => c.key === k)!));
        expect(shardOfConfig.get(config) ?? i, k).toBe(i);
        shardOfConfig.set(config, i);
      }));
    }
    // 27 configs, the largest 14% of the sweep: 4 shards keep configs together, 8 cannot within 10%.
    expect(units).toEqual(['config', 'case']);
  });

  it('a case costs its work model: more for a bigger layer, a padded or dense strategy and a train step than a forward pass', () => {
    const cost = (given: Parameters<typeof completeSweep>[0]) => caseCost(sweep(given).cases[0]);
    const base = { experts: [8], tokens: [512], hidden: [64], ffn: [128], topK: [2] };
    const zero = cost({ ...base, impl: ['zero-buffer'] });
    expect(zero).toBeGreaterThan(0);
    expect(Number.isInteger(zero)).toBe(true);
    expect(cost({ ...base, impl: ['zero-buffer'], tokens: [4096] })).toBeGreaterThan(4 * zero);
    expect(cost({ ...base, impl: ['gshard'] })).toBeGreaterThan(zero);
    expect(cost({ ...base, impl: ['zero-buffer'], pass: 'forward' })).toBeLessThan(zero / 2);
    expect(cost({ ...base, impl: ['zero-buffer'], skew: parseSkew('zipf:2') })).toBe(cost({ ...base, impl: ['zero-buffer'], skew: parseSkew('zipf:2') }));
  });

  it('more shards than cases is refused; fewer configs than shards slices case by case', () => {
    const one = sweep({ impl: ['zero-buffer', 'tutel'], experts: [4], tokens: [64], hidden: [16], ffn: [32] });
    expect(() => partitionSweep(one, 3)).toThrow(/^--shard: the sweep has 2 case\(s\), fewer than the 3 shards asked for; use at most 2$/);
    const split = partitionSweep(one, 2);
    expect(split.unit).toBe('case');
    expect(split.slices.map((s) => s.keys.length)).toEqual([1, 1]);
  });

  it('records the whole sweep, the slice and i/n; prepareBench runs the slice and --resume continues exactly it', async () => {
    const given = { impl: ['zero-buffer', 'tutel'], experts: [4, 8], tokens: [256], hidden: [32], ffn: [64], topK: [2], skew: parseSkew('zipf:3') };
    const whole = sweep(given);
    const { sweep: slice, shard } = sliceSweep(whole, { index: 2, count: 2 });
    expect(shard.sweepKeys).toEqual(keysOf(whole));
    expect(keysOf(slice)).toEqual(shard.keys);
    expect(slice.notes.at(-1)).toMatch(/^shard 2\/2: \d of the sweep's 4 case\(s\)/);

    const dir = join(mkdtempSync(join(tmpdir(), 'moeblaze-shard-')), 'out');
    const prepared = await prepareBench({ given, sampling: {}, out: dir, shard: { index: 2, count: 2 } });
    prepared.lock.release();
    expect(keysOf(prepared.sweep)).toEqual(shard.keys);
    expect(prepared.shard).toEqual(shard);

    // The folder of an interrupted shard: its settings, no case finished yet.
    mkdirSync(dir, { recursive: true });
    const saved = results({ cases: [] });
    saved.settings = { ...saved.settings, sweep: saveSweep(completeSweep(given)), shard };
    saved.complete = false;
    writeFileSync(join(dir, 'results.json'), JSON.stringify(saved));
    const resumed = await prepareBench({ given: {}, sampling: {}, resume: dir });
    resumed.lock.release();
    expect(keysOf(resumed.sweep)).toEqual(shard.keys);
    expect(resumed.shard).toEqual(shard);
    const again = await prepareBench({ given: {}, sampling: {}, resume: dir, shard: { index: 2, count: 2 } });
    again.lock.release();
    await expect(prepareBench({ given: {}, sampling: {}, resume: dir, shard: { index: 1, count: 2 } })).rejects.toThrow(/^--resume: --shard 1\/2 contradicts ".*", which holds shard 2\/2; resume with --resume alone$/);
    // A whole sweep's folder is not a shard.
    saved.settings = { ...saved.settings, shard: undefined };
    writeFileSync(join(dir, 'results.json'), JSON.stringify(saved));
    await expect(prepareBench({ given: {}, sampling: {}, resume: dir, shard: { index: 1, count: 2 } })).rejects.toThrow(/which holds a whole sweep/);
    // A merged sweep is resumed through its shards.
    writeFileSync(join(dir, 'results.json'), JSON.stringify({ ...saved, shards: [{ index: 1, count: 1, source: 's', provenance: saved.provenance, testbed: saved.testbed, ceilings: null, timing: 'timestamp', complete: false, cases: 0 }] }));
    await expect(prepareBench({ given: {}, sampling: {}, resume: dir })).rejects.toThrow(/^--resume: ".*" holds a sweep merged from 1 shard\(s\) by `moeblaze merge`; resume the unfinished shard's own folder/);
  });
});
