import { readFile, stat } from 'node:fs/promises';
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
export async function loadResultsFile(path: string, flag = 'baseline'): Promise<BenchResults> {
  const hint = flag === 'baseline' ? '; create one with `moeblaze gate --baseline FILE --current results.json --update-baseline`' : '';
  const results = await readBenchResults(path, flag, hint);
  // An interrupted sweep lacks cases: gating it (or against it) would pass on what never ran.
  if (!results.complete) {
    throw new UsageError(`--${flag}: "${path}" is an unfinished sweep (${results.cases.length} case(s) so far); finish it with \`moeblaze bench --resume <its folder>\` first`);
  }
  return results;
}

export function loadBaseline(path: string): Promise<BenchResults> {
  return loadResultsFile(path, 'baseline');
}

/**
 * Replaces the baseline with `results`: written to a temporary file beside it, then renamed, so a
 * reader (or a crash) never sees half a file. Returns the sentence to print: a baseline is never
 * changed silently.
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
  await writeFileAtomic(path, `${JSON.stringify(results, null, 2)}\n`);
  const what = `${results.cases.length} case(s) (${ok} ok) measured ${results.provenance?.time ?? 'at an unknown time'} on ${describeTestbed(results.testbed)}`;
  return before === null ? `wrote a new baseline ${path}: ${what}` : `updated the baseline ${path}: ${what}, replacing ${before}`;
}
