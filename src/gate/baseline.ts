import { lstat, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { readBenchResults } from '../bench/read.js';
import type { BenchResults } from '../bench/schema.js';
import { UsageError } from '../errors.js';
import { writeFileAtomic } from '../fs.js';
import { describeTestbed } from './compare.js';

/**
 * Reads a moeblaze.bench results file (v2, or v1 migrated) for the gate, validated (src/bench/read.ts). Anything
 * unusable is a UsageError (exit 2) naming the flag: a gate that silently compared against
 * nothing would pass every submission.
 */
export async function loadResultsFile(given: string, flag = 'baseline'): Promise<BenchResults> {
  const path = await resultsFileIn(given, flag);
  const hint = flag === 'baseline' ? '; create one with `moeblaze gate --baseline FILE --current results.json --update-baseline`' : '';
  const results = await readBenchResults(path, flag, hint);
  // An interrupted sweep lacks cases: gating it (or against it) would pass on what never ran.
  if (!results.complete) {
    throw new UsageError(`--${flag}: "${path}" is an unfinished sweep (${results.cases.length} case(s) so far); finish it with \`moeblaze bench --resume <its folder>\` first`);
  }
  return results;
}

/**
 * A bench output folder stands for its results.json (what `bench --out` prints), so that
 * `--current moeblaze-results/ci` works; a folder without one is a usage error saying so.
 */
export async function resultsFileIn(path: string, flag: string): Promise<string> {
  const isFolder = await stat(path).then((s) => s.isDirectory(), () => false);
  if (!isFolder) return path;
  const inside = join(path, 'results.json');
  if (await stat(inside).then((s) => s.isFile(), () => false)) return inside;
  throw new UsageError(`--${flag}: "${path}" is a folder without a results.json; give a moeblaze.bench results file, e.g. the results.json that \`moeblaze bench --out DIR\` writes`);
}

export function loadBaseline(path: string): Promise<BenchResults> {
  return loadResultsFile(path, 'baseline');
}

/**
 * The file a baseline path stands for: a symlink's target (followed to the end; a dangling link's
 * own target), so that an update replaces the target and the link stays a link (issue 28).
 */
export async function baselineTarget(path: string): Promise<string> {
  const link = await lstat(path).then((s) => s.isSymbolicLink(), () => false);
  if (!link) return path;
  return realpath(path).catch(async () => resolve(dirname(path), await readlink(path)));
}

/**
 * Replaces the baseline with `results`: written to a temporary file beside it (beside a symlink's
 * target), then renamed, so a reader (or a crash) never sees half a file. Returns the sentence to
 * print: a baseline is never changed silently.
 */
export async function updateBaseline(path: string, results: BenchResults): Promise<string> {
  let before: string | null = null;
  const exists = await stat(path).then((s) => s.isFile(), () => false);
  if (exists) {
    try {
      const old = JSON.parse(await readFile(path, 'utf8')) as Partial<BenchResults>;
      before = `${old.cases?.length ?? 0} case(s) from ${old.provenance?.time ?? 'an unknown time'}`;
    } catch {
      before = 'an unreadable file';
    }
  }
  const ok = results.cases.filter((c) => c.status === 'ok').length;
  const target = await baselineTarget(path);
  await writeFileAtomic(target, `${JSON.stringify(results, null, 2)}\n`);
  const what = `${results.cases.length} case(s) (${ok} ok) measured ${results.provenance?.time ?? 'at an unknown time'} on ${describeTestbed(results.testbed)}`;
  const where = target === path ? path : `${path} (→ ${target})`;
  return before === null ? `wrote a new baseline ${where}: ${what}` : `updated the baseline ${where}: ${what}, replacing ${before}`;
}
