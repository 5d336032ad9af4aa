import { ALLOCATOR_MODES } from '../gpu/allocator.js';
import { GAP_CAUSES } from '../gpu/timer.js';
import type { Checker } from './checker.js';

/*
 * The fields issue 27 added to a case (schema.ts StepSplit, CaseBuffers, oomLimit), checked where
 * present: files written before it lack them and stay valid.
 */

type Obj = Record<string, unknown>;

const OOM_LIMITS = ['max-buffer-size', 'max-binding-size', 'memory-limit-live', 'device', 'planned'];

/** Busy and idle medians of the timed steps, one sample per step (as many as time.step has). */
export function stepSplit(ch: Checker, v: unknown, path: string, steps: unknown): void {
  const s = ch.object(v, path);
  if (!s) return;
  ch.number(s, 'busyMs', path, { min: 0 });
  ch.number(s, 'idleMs', path, { min: 0 });
  ch.numberRecord(s.idleByCause, `${path}.idleByCause`, GAP_CAUSES);
  for (const key of ['busySamples', 'idleSamples']) {
    const list = ch.numberArray(s[key], `${path}.${key}`);
    if (list && typeof steps === 'number' && list.length !== steps) ch.fail(`${path}.${key}`, `expected one sample per timed step (${steps}), got ${list.length}`);
  }
}

/** The allocator and its buffer creations per timed step; an oom case's limit. */
export function caseBuffers(ch: Checker, c: Obj, path: string): void {
  if (c.oomLimit !== undefined) ch.oneOf(c, 'oomLimit', path, OOM_LIMITS);
  if (c.buffers === undefined) return;
  const b = ch.object(c.buffers, `${path}.buffers`);
  if (!b) return;
  ch.oneOf(b, 'allocator', `${path}.buffers`, ALLOCATOR_MODES);
  const created = ch.numberArray(b.createdPerStep, `${path}.buffers.createdPerStep`);
  if (created?.some((n) => n < 0 || !Number.isInteger(n))) ch.fail(`${path}.buffers.createdPerStep`, 'expected counts (integers ≥ 0)');
  ch.number(b, 'releasedForLimit', `${path}.buffers`, { min: 0, integer: true });
}
