import { readFile, stat } from 'node:fs/promises';
import { UsageError } from '../errors.js';
import { BENCH_SCHEMA_V1, migrateBenchResults } from './migrate.js';
import { BENCH_SCHEMA, type BenchResults } from './schema.js';
import { validateBenchResults } from './validate.js';

/** A results file of the largest sweep is tens of MiB; beyond this it is not one (and would take the heap). */
export const RESULTS_MAX_BYTES = 1024 * 2 ** 20;
/** A results file nests about 6 levels deep; writing back a file nested thousands deep overflows the stack. */
export const RESULTS_MAX_DEPTH = 64;

/** How deep the arrays and objects of a JSON text nest, scanned without recursion (strings skipped). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) max = Math.max(max, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/**
 * Reads a results.json (moeblaze.bench/v2, or v1 migrated: migrate.ts) for the gate or --resume,
 * validated before any work: a hand-edited or corrupt file is a UsageError (exit 2) naming the
 * flag and the first problems, never a TypeError deep inside a renderer or a gate that silently
 * compares against nothing.
 */
export async function readBenchResults(path: string, flag: string, hint = ''): Promise<BenchResults> {
  let text: string;
  try {
    const { size } = await stat(path);
    if (size > RESULTS_MAX_BYTES) throw new UsageError(`--${flag}: "${path}" is ${size} bytes, more than a results file can be (at most ${RESULTS_MAX_BYTES} bytes)`);
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(`--${flag}: cannot read "${path}" (${code ?? (error as Error).message})${code === 'ENOENT' ? hint : ''}`);
  }
  const depth = jsonDepth(text);
  if (depth > RESULTS_MAX_DEPTH) throw new UsageError(`--${flag}: "${path}" nests ${depth} levels deep, more than a results file does (at most ${RESULTS_MAX_DEPTH})`);
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
