import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.js';
import { BENCH_SCHEMA_V1, migrateBenchResults } from './migrate.js';
import { BENCH_SCHEMA, type BenchResults } from './schema.js';
import { validateBenchResults } from './validate.js';

/**
 * Reads a results.json (moeblaze.bench/v2, or v1 migrated: migrate.ts) for the gate or --resume,
 * validated before any work: a hand-edited or corrupt file is a UsageError (exit 2) naming the
 * flag and the first problems, never a TypeError deep inside a renderer or a gate that silently
 * compares against nothing.
 */
export async function readBenchResults(path: string, flag: string, hint = ''): Promise<BenchResults> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(`--${flag}: cannot read "${path}" (${code ?? (error as Error).message})${code === 'ENOENT' ? hint : ''}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--${flag}: "${path}" is not valid JSON (${(error as Error).message})`);
  }
  const schema = (parsed as { schema?: unknown } | null)?.schema;
  if (schema !== BENCH_SCHEMA && schema !== BENCH_SCHEMA_V1) throw new UsageError(`--${flag}: "${path}" is not a ${BENCH_SCHEMA} (or ${BENCH_SCHEMA_V1}) results file (schema: ${String(schema)})`);
  const results = migrateBenchResults(parsed);
  const problems = validateBenchResults(results);
  if (problems.length > 0) {
    const more = problems.length > 3 ? ` (and ${problems.length - 3} more)` : '';
    throw new UsageError(`--${flag}: "${path}" is not a valid ${String(schema)} results file: ${problems.slice(0, 3).join('; ')}${more}`);
  }
  return results as BenchResults;
}
