import type { BenchCase, BenchResults } from '../bench/schema.js';
import type { GapCause } from '../gpu/timer.js';
import { bytesOrDash, DASH, formatMs, formatPercent, strategyLabel } from './bench-format.js';

/*
 * The figures issue 27 added to every report: reserved bytes beside allocated, GPU busy time and
 * the idle gap beside the step time, buffer creations per timed step, and where idle time goes.
 */

/** Above this share of the step, idle time is named in every report (docs/design.md#time). */
export const IDLE_NOTE_FRACTION = 0.02;

const CAUSE_TEXT: Record<GapCause, string> = {
  readback: 'host readback (a mid-step read of routing sizes, as the original does)',
  allocation: 'buffer allocation (and its zero-fill)',
  submission: 'command submission',
  'pass-boundary': 'between passes of one submission (clears, copies, barriers)',
};

/** Idle time over the median step; null without a busy/idle split (wall timing, older files). */
export function idleFraction(c: BenchCase): number | null {
  const split = c.time?.split;
  const step = c.time?.step.median;
  return split && step ? split.idleMs / step : null;
}

/** "325.3 ms (11.8% idle)"; `mark` wraps the idle share where it is above IDLE_NOTE_FRACTION. */
export function busyIdleCell(c: BenchCase, mark: (text: string) => string = (t) => `${t}!`): string {
  const split = c.time?.split;
  const fraction = idleFraction(c);
  if (!split || fraction === null) return DASH;
  const idle = `${formatPercent(fraction)} idle`;
  return `${formatMs(split.busyMs)} ms (${fraction > IDLE_NOTE_FRACTION ? mark(idle) : idle})`;
}

export function reservedCell(c: BenchCase): string {
  return bytesOrDash(c.memory?.reservedPeak);
}

/** One sentence per case whose idle time is above IDLE_NOTE_FRACTION of its step, naming where it went. */
export function idleNotes(results: BenchResults): string[] {
  return results.cases.flatMap((c) => {
    const fraction = idleFraction(c);
    if (c.status !== 'ok' || fraction === null || fraction <= IDLE_NOTE_FRACTION) return [];
    const split = c.time!.split!;
    const causes = (Object.entries(split.idleByCause) as [GapCause, number][])
      .filter(([, ms]) => ms > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([cause, ms]) => `${CAUSE_TEXT[cause] ?? cause} ${formatMs(ms)} ms`);
    return [`${strategyLabel(c.config)}: the GPU idles ${formatPercent(fraction)} of the step (${formatMs(split.idleMs)} ms): ${causes.join(', ') || 'no gap large enough to name'}`];
  });
}

/** The allocator and the buffers timed steps created: a steady caching step creates none. */
export function allocatorLine(results: BenchResults): string {
  const mode = results.settings.allocator ?? 'fresh';
  const what = mode === 'caching' ? 'caching (freed buffers kept for reuse; reserved = live + pooled)' : 'fresh (every buffer created and destroyed in the step; reserved = live)';
  const counted = results.cases.filter((c) => c.buffers);
  if (!counted.length) return what;
  const creating = counted.filter((c) => c.buffers!.createdPerStep.some((n) => n > 0));
  const most = Math.max(0, ...counted.flatMap((c) => c.buffers!.createdPerStep));
  const created = creating.length ? `${creating.length} of ${counted.length} case(s) created buffers in timed steps (up to ${most} a step)` : `no timed step created a buffer (${counted.length} case(s))`;
  return `${what}; ${created}`;
}
