import type { BenchResults } from '../bench/schema.js';
import { caseLabel } from '../bench/cases.js';
import { caseTestbed } from '../bench/testbeds.js';
import { formatPercent } from './bench-format.js';

/** One entry of github-action-benchmark's `customSmallerIsBetter` input. */
export interface BenchmarkActionEntry {
  name: string;
  unit: string;
  value: number;
  range?: string;
  extra?: string;
}

/**
 * benchmark-action.json for github-action-benchmark (tool: customSmallerIsBetter): per ok case,
 * its median step time and its two memory peaks. Names use the case key, which covers every
 * config field, so a series stays the same series from run to run. Failed cases give no entry:
 * a missing point is more honest than a made-up value.
 */
export function renderBenchmarkAction(results: BenchResults): BenchmarkActionEntry[] {
  const entries: BenchmarkActionEntry[] = [];
  for (const c of results.cases) {
    if (c.status !== 'ok') continue;
    // Absolute times only compare on the same testbed; the fingerprint (the case's own, in a merged file) travels with each point.
    const testbed = `testbed: ${caseTestbed(results, c).fingerprint}`;
    const label = caseLabel(c.config);
    const step = c.time?.step;
    if (step) {
      const halfIqr = (step.noise * step.median) / 2;
      entries.push({
        name: `${c.key} step time`,
        unit: 'ms',
        value: step.median,
        range: `± ${Number(halfIqr.toPrecision(3))}`,
        extra: `${label}\nmedian of ${step.n} (${c.time!.source}), p10 ${step.p10} ms, p90 ${step.p90} ms, noise ${formatPercent(step.noise)}\n${testbed}`,
      });
    }
    if (c.memory) {
      entries.push({ name: `${c.key} step peak`, unit: 'bytes', value: c.memory.stepPeak, extra: `${label}\n${testbed}` });
      entries.push({ name: `${c.key} activation peak`, unit: 'bytes', value: c.memory.activationPeak, extra: `${label}\n${testbed}` });
    }
  }
  return entries;
}
