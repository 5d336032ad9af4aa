import type { KernelWork, RoutingSummary, Strategy, TableLimits } from '../strategy/contract.js';
import { passBytes } from '../strategy/work.js';
import type { LayerConfig } from '../config.js';

/**
 * The bytes the kernels of one step move: the strategy's own work entries (Strategy.work, the
 * ones `profile` divides by kernel times), each the compulsory traffic of one kernel in one
 * phase (every operand read once, every output written once; tile re-reads and caches are
 * ignored, so real kernels move more). Like plan's memory figures, the entries are means over the
 * sampled routings: MegaBlocks' padding and cf = 0 capacity are not linear in the loads.
 */
export interface StrategyTraffic {
  kernels: KernelWork[];
  forward: number;
  backward: number;
  total: number;
}

/** Entries averaged over routings, matched by (pass, phase, kernel); one missing from a routing counts as zero there. */
export function meanWork(runs: readonly KernelWork[][]): KernelWork[] {
  const byKey = new Map<string, KernelWork>();
  for (const run of runs) {
    for (const w of run) {
      const key = `${w.pass}|${w.phase}|${w.kernel}`;
      const sum = byKey.get(key) ?? { ...w, flops: 0, bytes: 0 };
      sum.flops += w.flops / runs.length;
      sum.bytes += w.bytes / runs.length;
      byKey.set(key, sum);
    }
  }
  return [...byKey.values()];
}

export function strategyTraffic(strategy: Strategy, c: LayerConfig, routings: readonly RoutingSummary[], limits: TableLimits): StrategyTraffic {
  const kernels = meanWork(routings.map((r) => strategy.work(c, r, limits)));
  const forward = passBytes(kernels, 'forward');
  const backward = passBytes(kernels, 'backward');
  return { kernels, forward, backward, total: forward + backward };
}
