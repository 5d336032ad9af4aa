import { readFile, stat } from 'node:fs/promises';
import { BENCH_SCHEMA, type BenchResults } from '../bench/schema.js';
import { UsageError } from '../errors.js';
import { writeFileAtomic } from '../npy.js';
import { describeTestbed } from './compare.js';

/**
 * Reads a moeblaze.bench/v1 results file for the gate. Anything unusable is a UsageError (exit 2)
 * naming the flag: a gate that silently compared against nothing would pass every submission.
 */
export async function loadResultsFile(path: string, flag = 'baseline'): Promise<BenchResults> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const hint = flag === 'baseline' ? '; create one with `moeblaze gate --baseline FILE --current results.json --update-baseline`' : '';
    throw new UsageError(`--${flag}: cannot read "${path}" (${code ?? (error as Error).message})${code === 'ENOENT' ? hint : ''}`);
  }
  let parsed: Partial<BenchResults>;
  try {
    parsed = JSON.parse(text) as Partial<BenchResults>;
  } catch (error) {
    throw new UsageError(`--${flag}: "${path}" is not valid JSON (${(error as Error).message})`);
  }
  if (parsed?.schema !== BENCH_SCHEMA) throw new UsageError(`--${flag}: "${path}" is not a ${BENCH_SCHEMA} results file (schema: ${String(parsed?.schema)})`);
  if (!Array.isArray(parsed.cases) || typeof parsed.testbed?.fingerprint !== 'string') {
    throw new UsageError(`--${flag}: "${path}" lacks ${!Array.isArray(parsed.cases) ? 'cases' : 'testbed.fingerprint'}; regenerate it with \`moeblaze bench\``);
  }
  for (const c of parsed.cases) {
    if (typeof c?.config?.strategy !== 'string') throw new UsageError(`--${flag}: "${path}" has a case without config.strategy; regenerate it with \`moeblaze bench\``);
  }
  return parsed as BenchResults;
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
