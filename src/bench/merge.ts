import { REFERENCE_STRATEGY } from '../registry.js';
import { UsageError } from '../errors.js';
import type { Provenance } from '../measure/provenance.js';
import { configKey } from './cases.js';
import { addRelativeFigures } from './run.js';
import type { BenchCase, BenchResults, ShardRecord, ShardRun, Testbed } from './schema.js';
import { formatShard } from './shard.js';

/*
 * `moeblaze merge` (docs/design.md#shards): the results of the shards of one sweep, each run
 * with `bench --shard i/n` wherever it ran, as the one results file the whole sweep would have
 * written. Pure: the inputs are read and the output written by merge-folders.ts. Whatever does
 * not fit together (another sweep, another schema, two shards holding one case, missing cases)
 * is a UsageError with one line, before anything is written.
 */

export interface ShardInput {
  /** The folder as the user named it. */
  source: string;
  /** The schema the file was written with, before readers migrated it. */
  schema: string;
  results: BenchResults;
}

export interface MergeOptions {
  /** Merge what there is when cases are missing, and list them (otherwise: refused). */
  allowPartial: boolean;
  /** The merge command's own provenance (each shard keeps its bench run's in `shards`). */
  provenance: Provenance;
}

export interface MergeOutcome {
  results: BenchResults;
  /** Keys of the sweep's cases that no shard holds, in the sweep's order. */
  missing: string[];
}

const show = (keys: string[], n = 3) => `${keys.slice(0, n).join('; ')}${keys.length > n ? ` (and ${keys.length - n} more)` : ''}`;

function shardOf(input: ShardInput): ShardRecord {
  const shard = input.results.settings.shard;
  if (!shard) throw new UsageError(`merge: "${input.source}" holds a whole sweep (bench ran without --shard); merge joins the folders of \`bench --shard i/n\` runs`);
  return shard;
}

/** What must be equal for two shards to be parts of one sweep, each part named for the message. */
function sweepIdentity(input: ShardInput): [string, string][] {
  const { settings, provenance } = input.results;
  const shard = shardOf(input);
  const { sweep, layers, memoryLimit, sampling, pass, preset } = settings;
  return [
    ['sweep', JSON.stringify(sweep ?? null)],
    ['shard count', String(shard.count)],
    ['case list', JSON.stringify(shard.sweepKeys)],
    ['run settings (--layers, --memory-limit, sampling)', JSON.stringify({ layers, memoryLimit, sampling, pass, preset })],
    // Files without it created and destroyed every buffer (issue 27): caching and fresh shards differ in time.
    ['allocator (--allocator)', settings.allocator ?? 'fresh'],
    ['moeblaze version', provenance.tool.version],
    ['git commit', provenance.gitCommit ?? 'unknown'],
  ];
}

/** Refuses inputs that are not shards of one sweep, written by one version of the schema. */
function checkSameSweep(inputs: ShardInput[]): void {
  const [first, ...rest] = inputs;
  for (const other of rest) {
    if (other.schema !== first.schema) throw new UsageError(`merge: "${other.source}" was written as ${other.schema} and "${first.source}" as ${first.schema}; merge shards written by one moeblaze version (rerun the older shards)`);
  }
  shardOf(first);
  const reference = sweepIdentity(first);
  for (const other of rest) {
    const identity = sweepIdentity(other);
    const differs = reference.filter(([, value], i) => identity[i][1] !== value).map(([what]) => what);
    if (differs.length) throw new UsageError(`merge: "${other.source}" and "${first.source}" are shards of different sweeps (their ${differs.join(', ')} differ); merge the shards of one \`bench --shard i/n\` sweep`);
  }
}

/** Refuses two inputs that are the same shard or that hold the same case, and cases outside their slice. */
function checkNoOverlap(inputs: ShardInput[]): void {
  const byIndex = new Map<number, ShardInput>();
  const owner = new Map<string, ShardInput>();
  for (const input of inputs) {
    const shard = shardOf(input);
    const twin = byIndex.get(shard.index);
    if (twin) throw new UsageError(`merge: "${twin.source}" and "${input.source}" are both shard ${formatShard(shard)}; give each shard once`);
    byIndex.set(shard.index, input);
    const slice = new Set(shard.keys);
    for (const c of input.results.cases) {
      if (!slice.has(c.key)) throw new UsageError(`merge: "${input.source}" holds a case outside its slice ${formatShard(shard)} (${c.key}); it was edited or is not a bench --shard folder`);
      const other = owner.get(c.key);
      if (other) throw new UsageError(`merge: "${other.source}" and "${input.source}" both hold ${c.key}; the shards overlap`);
      owner.set(c.key, input);
    }
  }
}

/** Why cases are missing, for the message: shards not given, shards not finished. */
function gapReasons(inputs: ShardInput[], count: number): string[] {
  const given = new Set(inputs.map((i) => shardOf(i).index));
  const absent = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !given.has(i));
  const reasons = absent.length ? [`shard(s) ${absent.map((i) => `${i}/${count}`).join(', ')} not given`] : [];
  for (const input of inputs) {
    const left = shardOf(input).keys.length - input.results.cases.length;
    if (left > 0) reasons.push(`"${input.source}" (shard ${formatShard(shardOf(input))}) unfinished with ${left} case(s) left: continue it with bench --resume`);
  }
  return reasons;
}

/** One testbed for the whole file: the shards' own when they share it, else one that names them all and matches none. */
function mergedTestbed(testbeds: Testbed[]): Testbed {
  const distinct = [...new Map(testbeds.map((t) => [t.fingerprint, t])).values()];
  if (distinct.length === 1) return distinct[0];
  const join = (field: keyof Testbed) => [...new Set(distinct.map((t) => t[field]))].join(' + ');
  return {
    vendor: join('vendor'),
    architecture: join('architecture'),
    device: join('device'),
    description: `${distinct.length} testbeds: ${distinct.map((t) => t.description || t.device).join('; ')}`,
    backend: join('backend'),
    dawnVersion: join('dawnVersion'),
    fingerprint: `mixed(${distinct.map((t) => t.fingerprint).join(' ; ')})`,
  };
}

/**
 * Figures against zero-buffer across the merged sweep, as one run gives them: memory ratios
 * always (bytes do not depend on the device), the speed ratio only where zero-buffer's case ran
 * on the same testbed. Where a config's strategies shared a shard this recomputes what the shard
 * wrote, to the bit.
 */
function relativeFigures(cases: BenchCase[]): void {
  for (const c of cases) delete c.relative;
  addRelativeFigures(cases);
  const zero = new Map(cases.filter((c) => c.config.impl === REFERENCE_STRATEGY && c.status === 'ok').map((c) => [configKey(c.config), c]));
  for (const c of cases) {
    const z = zero.get(configKey(c.config));
    if (c.relative && z && z.testbed?.fingerprint !== c.testbed?.fingerprint) c.relative.stepTimeVsReference = null;
  }
}

function ceilingsNote(run: ShardRun): string {
  const c = run.ceilings;
  const where = `${run.testbed.description || run.testbed.device} (${run.testbed.backend})`;
  if (!c) return `shard ${run.index}/${run.count} ran on ${where}; no ceilings measured`;
  return `shard ${run.index}/${run.count} ran on ${where}; its ceilings: GEMM ${c.gemm.tflops.toPrecision(3)} TFLOP/s, bandwidth ${c.bandwidth.gbPerS.toPrecision(3)} GB/s (each case's GEMM fraction is against its own shard's)`;
}

/**
 * The shards as one results file: the sweep's cases in its order, each as its shard wrote it
 * plus its shard and testbed, the figures against zero-buffer recomputed across shards, and
 * every shard's run (provenance, testbed, ceilings) in `shards`.
 */
export function mergeShards(inputs: ShardInput[], options: MergeOptions): MergeOutcome {
  if (inputs.length === 0) throw new UsageError('merge: no shard folder given; name the folders of every `bench --shard i/n` run');
  checkSameSweep(inputs);
  checkNoOverlap(inputs);
  const first = shardOf(inputs[0]);
  const held = new Map<string, BenchCase>();
  const runs: ShardRun[] = [];
  for (const input of [...inputs].sort((a, b) => shardOf(a).index - shardOf(b).index)) {
    const r = input.results;
    const shard = shardOf(input);
    runs.push({ index: shard.index, count: shard.count, source: input.source, provenance: r.provenance, testbed: r.testbed, ceilings: r.ceilings, timing: r.settings.timing, complete: r.complete, cases: r.cases.length });
    for (const c of r.cases) held.set(c.key, { ...structuredClone(c), shard: shard.index, testbed: r.testbed });
  }
  const missing = first.sweepKeys.filter((k) => !held.has(k));
  if (missing.length && !options.allowPartial) {
    throw new UsageError(`merge: ${missing.length} of the sweep's ${first.sweepKeys.length} case(s) are missing (${gapReasons(inputs, first.count).join('; ')}), e.g. ${show(missing, 2)}; give every shard, or pass --allow-partial to merge what there is`);
  }
  const cases = first.sweepKeys.flatMap((k) => held.get(k) ?? []);
  relativeFigures(cases);
  const { shard: _shard, ...settings } = inputs[0].results.settings;
  const notes = [...new Set(inputs.flatMap((i) => i.results.notes).filter((n) => !/^shard \d+\/\d+: /.test(n)))];
  notes.push(`merged from ${runs.length} of ${first.count} shard(s): ${runs.map((r) => `${r.index}/${r.count} (${r.cases} case(s), ${r.source})`).join(', ')}`);
  notes.push(...runs.map(ceilingsNote));
  if (missing.length) notes.push(`partial: ${missing.length} case(s) of the sweep are missing: ${missing.join('; ')}`);
  const results: BenchResults = {
    schema: inputs[0].results.schema,
    provenance: options.provenance,
    testbed: mergedTestbed(runs.map((r) => r.testbed)),
    settings: { ...settings, timing: runs.every((r) => r.timing === 'timestamp') ? 'timestamp' : 'wall' },
    // One run's ceilings would misstate the others': each shard's are in `shards`, and in the notes.
    ceilings: runs.length === 1 ? runs[0].ceilings : null,
    cases,
    complete: missing.length === 0,
    notes,
    shards: runs,
  };
  return { results, missing };
}
