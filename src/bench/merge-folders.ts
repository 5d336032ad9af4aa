import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { checkOutputPath, writeFileAtomic } from '../fs.js';
import type { Provenance } from '../measure/provenance.js';
import { lockFolder } from '../lock.js';
import { mergeShards, type MergeOutcome, type ShardInput } from './merge.js';
import { readBenchResults } from './read.js';
import type { BenchResults } from './schema.js';

export interface MergeRequest {
  /** The shards' folders, as given. */
  dirs: string[];
  out: string;
  allowPartial: boolean;
  provenance: Provenance;
  /** Writes results.md, report.html and benchmark-action.json beside results.json (bench's own writer). */
  writeReports: (dir: string, results: BenchResults) => Promise<void>;
}

/** One shard folder's results.json, validated as every reader does, with the schema it was written as. */
async function readShard(dir: string): Promise<ShardInput> {
  const path = join(dir, 'results.json');
  let results: BenchResults;
  try {
    results = await readBenchResults(path, 'merge', ': is it the --out folder of a `bench --shard i/n` run?');
  } catch (error) {
    // readBenchResults names a flag; here the folder is an argument.
    if (error instanceof UsageError) throw new UsageError(error.message.replace(/^--merge: /, 'merge: '));
    throw error;
  }
  const schema = (JSON.parse(await readFile(path, 'utf8')) as { schema: string }).schema;
  return { source: dir, schema, results };
}

/**
 * `moeblaze merge DIR… --out DIR`: reads every shard, merges them (mergeShards: refusals are
 * UsageErrors), then writes the merged results.json and bench's three reports into `out`. Every
 * check runs before `out` is created; `out` is locked while it is written, and a folder that
 * already holds results is refused, as bench refuses it.
 */
export async function mergeResultsFolders(request: MergeRequest): Promise<MergeOutcome> {
  checkOutputPath(request.out, 'folder', 'out');
  const unique = new Set(request.dirs.map((d) => resolve(d)));
  if (unique.size !== request.dirs.length) throw new UsageError(`merge: a folder is named twice (${request.dirs.find((d, i) => request.dirs.findIndex((e) => resolve(e) === resolve(d)) !== i)}); give each shard once`);
  if (unique.has(resolve(request.out))) throw new UsageError(`--out: "${request.out}" is one of the shards; write the merged results into a folder of their own`);
  const refuseExisting = () => {
    if (existsSync(join(request.out, 'results.json'))) throw new UsageError(`--out: "${request.out}" already holds a results.json; choose another folder (nothing is overwritten)`);
  };
  refuseExisting();
  const inputs = [];
  for (const dir of request.dirs) inputs.push(await readShard(dir));
  const outcome = mergeShards(inputs, { allowPartial: request.allowPartial, provenance: request.provenance });
  const lock = lockFolder(request.out, 'out');
  try {
    refuseExisting();
    await writeFileAtomic(join(request.out, 'results.json'), `${JSON.stringify(outcome.results, null, 2)}\n`);
    await request.writeReports(request.out, outcome.results);
  } finally {
    lock.release();
  }
  return outcome;
}
