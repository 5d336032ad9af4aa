import type { Checker } from './checker.js';

/*
 * The parts of a results.json that sharding adds (docs/design.md#shards), checked like the rest
 * of the file by validate.ts: settings.shard of a `bench --shard i/n` run, and results.shards
 * with each case's shard in a file `moeblaze merge` wrote.
 */

type Obj = Record<string, unknown>;
type PartCheck = (ch: Checker, v: unknown, path: string) => void;

function stringList(ch: Checker, v: unknown, path: string): string[] | null {
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  ch.fail(path, 'expected a list of strings');
  return null;
}

/** settings.shard: the slice, and the whole sweep it came from. */
export function shardRecord(ch: Checker, v: unknown, path: string): void {
  const s = ch.object(v, path);
  if (!s) return;
  const count = ch.number(s, 'count', path, { min: 1, integer: true });
  const index = ch.number(s, 'index', path, { min: 1, integer: true });
  if (index !== null && count !== null && index > count) ch.fail(`${path}.index`, `expected ≤ count (${count}), got ${index}`);
  ch.oneOf(s, 'unit', path, ['config', 'case']);
  const keys = stringList(ch, s.keys, `${path}.keys`);
  const sweep = stringList(ch, s.sweepKeys, `${path}.sweepKeys`);
  if (keys && sweep) {
    const all = new Set(sweep);
    const stray = keys.find((k) => !all.has(k));
    if (stray !== undefined) ch.fail(`${path}.keys`, `${JSON.stringify(stray)} is not a case of the sweep (sweepKeys)`);
  }
  const cost = ch.object(s.cost, `${path}.cost`);
  if (cost) for (const key of ['slice', 'sweep']) ch.number(cost, key, `${path}.cost`, { min: 0 });
}

/** results.shards of a merged file, each shard's run checked with validate.ts's own parts; every case names a listed shard. */
export function shardRuns(ch: Checker, v: unknown, cases: unknown, parts: { provenance: PartCheck; testbed: PartCheck; ceilings: PartCheck }): void {
  const path = 'results.shards';
  if (!Array.isArray(v) || v.length === 0) {
    ch.fail(path, 'expected a non-empty list of shard runs');
    return;
  }
  const listed = new Set<unknown>();
  v.forEach((x, i) => {
    const p = `${path}[${i}]`;
    const s = ch.object(x, p);
    if (!s) return;
    listed.add(s.index);
    ch.number(s, 'index', p, { min: 1, integer: true });
    ch.number(s, 'count', p, { min: 1, integer: true });
    ch.number(s, 'cases', p, { min: 0, integer: true });
    ch.string(s, 'source', p);
    ch.boolean(s, 'complete', p);
    ch.oneOf(s, 'timing', p, ['timestamp', 'wall']);
    parts.provenance(ch, s.provenance, `${p}.provenance`);
    parts.testbed(ch, s.testbed, `${p}.testbed`);
    parts.ceilings(ch, s.ceilings, `${p}.ceilings`);
  });
  if (!Array.isArray(cases)) return;
  cases.forEach((c, i) => {
    const shard = (c as Obj | null)?.shard;
    if (!listed.has(shard)) ch.fail(`results.cases[${i}].shard`, `expected the index of one of results.shards, got ${JSON.stringify(shard) ?? 'nothing'}`);
  });
}
