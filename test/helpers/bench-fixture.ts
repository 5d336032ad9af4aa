import { readFileSync } from 'node:fs';
import { migrateBenchResults } from '../../src/bench/migrate.js';
import type { BenchResults } from '../../src/bench/schema.js';

/** The committed results file test/fixtures/bench-results.json as written (moeblaze.bench/v1), parsed. */
export function benchFixtureJson(): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL('../fixtures/bench-results.json', import.meta.url), 'utf8')) as Record<string, unknown>;
}

/** The same file as bench's readers see it: migrated to the current schema. */
export function benchFixture(): BenchResults {
  return migrateBenchResults(benchFixtureJson()) as BenchResults;
}
