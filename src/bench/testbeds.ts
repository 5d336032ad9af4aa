import type { Ceilings } from '../measure/ceilings.js';
import type { BenchCase, BenchResults, Testbed } from './schema.js';

/*
 * Where a case ran. One bench run has one testbed and one set of ceilings; a file `moeblaze
 * merge` wrote has one per shard, and each case keeps its own (docs/design.md#shards). Readers
 * (the gate, the reports) ask here rather than reading results.testbed.
 */

export function caseTestbed(results: Pick<BenchResults, 'testbed'>, c: BenchCase): Testbed {
  return c.testbed ?? results.testbed;
}

/** The ceilings measured in the run the case ran in: the case's GEMM fraction is against them. */
export function caseCeilings(results: Pick<BenchResults, 'ceilings' | 'shards'>, c: BenchCase): Ceilings | null {
  if (c.shard === undefined || !results.shards) return results.ceilings;
  return results.shards.find((s) => s.index === c.shard)?.ceilings ?? null;
}

/** The distinct testbeds of a file's cases, in the order they first appear (one for a plain bench run). */
export function testbedsOf(results: Pick<BenchResults, 'testbed' | 'cases'>): Testbed[] {
  const seen = new Map<string, Testbed>();
  for (const c of results.cases) {
    const t = caseTestbed(results, c);
    if (!seen.has(t.fingerprint)) seen.set(t.fingerprint, t);
  }
  return seen.size ? [...seen.values()] : [results.testbed];
}
