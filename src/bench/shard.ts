import { UsageError } from '../errors.js';
import { routingModel, sampleRoutings } from '../plan/routing.js';
import { meanWork } from '../plan/traffic.js';
import { findStrategy } from '../registry.js';
import { caseConfig, configKey, type SweepCase, type SweepCases } from './cases.js';
import type { ShardRecord } from './schema.js';

/*
 * `bench --shard i/n` (docs/design.md#shards): a deterministic slice of a sweep, balanced by the
 * predicted cost of its cases, so that n machines given the same sweep each run their part and
 * finish together, and `moeblaze merge` puts the parts back together. The slices depend only on
 * the sweep and n (never on the adapter, the clock or the order shards start in), the
 * convention of Playwright's `--shard=i/n` and pytest-split.
 */

export interface ShardSpec {
  /** 1-based. */
  index: number;
  count: number;
}

/** More shards than this is a typo, not a cluster. */
export const MAX_SHARDS = 10000;

export function formatShard(s: ShardSpec): string {
  return `${s.index}/${s.count}`;
}

/** "2/4" → { index: 2, count: 4 }; anything else is a UsageError naming what is allowed. */
export function parseShardSpec(text: string, flag = 'shard'): ShardSpec {
  const m = /^\s*(\d{1,9})\s*\/\s*(\d{1,9})\s*$/.exec(text);
  const index = m ? Number(m[1]) : Number.NaN;
  const count = m ? Number(m[2]) : Number.NaN;
  if (!m || count < 1 || count > MAX_SHARDS || index < 1 || index > count) {
    throw new UsageError(`--${flag}: "${text}" is not allowed; use i/n with 1 ≤ i ≤ n ≤ ${MAX_SHARDS} (shard i of n, e.g. 1/4)`);
  }
  return { index, count };
}

/**
 * FLOPs worth one byte of traffic in the cost: about the balance of the GPUs the big sweeps run
 * on (the H200's measured f32 GEMM ceiling, 35.8 TFLOP/s, README, over HBM's 3.3–4.8 TB/s). Only
 * ratios between cases matter, and a kernel is charged whichever of the two bounds it.
 */
export const FLOPS_PER_BYTE = 10;

/** A fixed binding limit for the work model, so that the cost never depends on the adapter a shard runs on. */
const COST_CHUNK_BYTES = 2 ** 27;

/** Routings sampled for a case's expected work (seeded: the same on every machine). */
const COST_ROUTINGS = 4;

/**
 * The predicted cost of one case, in byte-equivalents: each kernel of the strategy's work model
 * (Strategy.work, averaged over seeded expected routings as `plan` does) costs the larger of its
 * bytes and its useful FLOPs / FLOPS_PER_BYTE (a roofline with a nominal balance); forward-only
 * cases count their forward kernels. A case the strategy cannot run costs nothing. Rounded to
 * an integer so that the slices never hinge on the last bit of a float.
 */
export function caseCost(sweepCase: SweepCase): number {
  const strategy = findStrategy(sweepCase.impl);
  const c = sweepCase.layer;
  if (strategy.unsupported(c) !== null) return 0;
  const routings = sampleRoutings(c, strategy.dropless, routingModel(c, COST_ROUTINGS));
  const work = meanWork(routings.map((r) => strategy.work(c, r, { chunkBytes: COST_CHUNK_BYTES })));
  const counted = sweepCase.pass === 'forward' ? work.filter((w) => w.pass === 'forward') : work;
  return Math.round(counted.reduce((sum, w) => sum + Math.max(w.bytes, w.flops / FLOPS_PER_BYTE), 0));
}

interface Unit {
  cases: SweepCase[];
  cost: number;
  /** Position of its first case in the sweep: the tie-break. */
  first: number;
}

type Partition = { unit: ShardRecord['unit']; slices: { keys: string[]; cost: number }[] };

/** How far above an even split the largest slice may be before configs are split up. */
export const CONFIG_IMBALANCE = 0.1;

/**
 * Longest-processing-time first: units by cost, largest first (ties in the sweep's order), each to the
 * shard with the smallest total so far (ties: the lowest index). Within a shard, cases keep the
 * plan's order (zero-buffer first within a config).
 */
function assign(sweep: SweepCases, unit: ShardRecord['unit'], list: Unit[], count: number): Partition {
  const order = [...list].sort((a, b) => b.cost - a.cost || a.first - b.first);
  const shards = Array.from({ length: count }, () => ({ units: [] as Unit[], cost: 0 }));
  for (const u of order) {
    let best = 0;
    for (let s = 1; s < count; s++) if (shards[s].cost < shards[best].cost) best = s;
    shards[best].units.push(u);
    shards[best].cost += u.cost;
  }
  const position = new Map(sweep.cases.map((c, i) => [c.key, i]));
  const slices = shards.map((s) => ({ keys: s.units.flatMap((u) => u.cases.map((c) => c.key)).sort((a, b) => position.get(a)! - position.get(b)!), cost: s.cost }));
  return { unit, slices };
}

const largest = (p: Partition) => Math.max(...p.slices.map((s) => s.cost));

/**
 * Every shard's slice at once. The strategies of one config (zero-buffer and those compared with
 * it) stay in one shard, so that the figures relative to zero-buffer come from one run on one
 * device, unless that leaves the largest slice more than CONFIG_IMBALANCE above an even split
 * (or there are fewer configs than shards) and slicing case by case does better.
 */
export function partitionSweep(sweep: SweepCases, count: number): Partition {
  if (sweep.cases.length < count) throw new UsageError(`--shard: the sweep has ${sweep.cases.length} case(s), fewer than the ${count} shards asked for; use at most ${sweep.cases.length}`);
  const costs = sweep.cases.map(caseCost);
  const byConfig = new Map<string, Unit>();
  sweep.cases.forEach((c, i) => {
    const key = configKey(caseConfig(c));
    const unit = byConfig.get(key) ?? { cases: [], cost: 0, first: i };
    unit.cases.push(c);
    unit.cost += costs[i];
    byConfig.set(key, unit);
  });
  const byCase = assign(sweep, 'case', sweep.cases.map((c, i) => ({ cases: [c], cost: costs[i], first: i })), count);
  if (byConfig.size < count) return byCase;
  const together = assign(sweep, 'config', [...byConfig.values()], count);
  const even = costs.reduce((a, b) => a + b, 0) / count;
  return largest(together) <= (1 + CONFIG_IMBALANCE) * even || largest(together) <= largest(byCase) ? together : byCase;
}

/** Shard i/n of a sweep: its cases alone, and the record results.json keeps of it. */
export function sliceSweep(sweep: SweepCases, spec: ShardSpec): { sweep: SweepCases; shard: ShardRecord } {
  const { unit, slices } = partitionSweep(sweep, spec.count);
  const slice = slices[spec.index - 1];
  const shard: ShardRecord = {
    index: spec.index,
    count: spec.count,
    unit,
    keys: slice.keys,
    sweepKeys: sweep.cases.map((c) => c.key),
    cost: { slice: slice.cost, sweep: slices.reduce((a, s) => a + s.cost, 0) },
  };
  return { sweep: casesOfSlice(sweep, shard), shard };
}

/**
 * The whole sweep's plan cut down to a recorded slice (--resume of a shard continues exactly the
 * slice it saved, even if a later version would slice the sweep otherwise). A recorded key the
 * sweep does not plan is a UsageError.
 */
export function casesOfSlice(sweep: SweepCases, shard: ShardRecord): SweepCases {
  const keys = new Set(shard.keys);
  const cases = sweep.cases.filter((c) => keys.has(c.key));
  if (cases.length !== keys.size) {
    const planned = new Set(sweep.cases.map((c) => c.key));
    const stray = shard.keys.find((k) => !planned.has(k));
    throw new UsageError(`--shard ${formatShard(shard)}: the slice holds a case its sweep does not plan (${stray}); rerun the shard instead of resuming it`);
  }
  const share = shard.cost.sweep > 0 ? ` (${((100 * shard.cost.slice) / shard.cost.sweep).toFixed(1)}% of its predicted cost)` : '';
  const note = `shard ${formatShard(shard)}: ${cases.length} of the sweep's ${shard.sweepKeys.length} case(s)${share}, sliced by ${shard.unit}; \`moeblaze merge\` joins the shards`;
  return { ...sweep, cases, notes: [...sweep.notes, note] };
}
