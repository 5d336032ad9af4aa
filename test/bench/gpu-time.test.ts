import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { stepSplit } from '../../src/bench/case.js';
import { migrateBenchResults } from '../../src/bench/migrate.js';
import type { BenchResults } from '../../src/bench/schema.js';
import { validateBenchResults } from '../../src/bench/validate.js';
import type { StepTiming } from '../../src/gpu/timer.js';
import { renderBenchMarkdown } from '../../src/render/bench-markdown.js';
import { renderBenchTable } from '../../src/render/bench-table.js';
import { allocatorLine, busyIdleCell, idleNotes } from '../../src/render/bench-gpu-time.js';
import { results, SWEEP } from '../fixtures/gate/synthetic.js';

const timing = (totalMs: number, busyMs: number, idleByCause: StepTiming['idleByCause']): StepTiming => ({ totalMs, busyMs, idleMs: totalMs - busyMs, idleByCause, forwardMs: null, backwardMs: null, passes: [] });

/** The synthetic sweep with issue 27's fields: zero-buffer busy all through, tutel idle 10% on a readback. */
function withSplit(): BenchResults {
  const r = results({ cases: SWEEP });
  r.settings.allocator = 'caching';
  for (const c of r.cases) {
    if (c.status !== 'ok') continue;
    const step = c.time!.step.median;
    const idle = c.config.impl === 'tutel' ? 0.1 * step : 0.005 * step;
    const steps = c.time!.step.samples.map(() => timing(step, step - idle, c.config.impl === 'tutel' ? { readback: 0.08 * step, submission: 0.02 * step } : { 'pass-boundary': idle }));
    c.time!.split = stepSplit(steps);
    c.memory!.reservedPeak = c.memory!.stepPeak + 4096;
    c.buffers = { allocator: 'caching', createdPerStep: c.time!.step.samples.map(() => 0), releasedForLimit: 0 };
  }
  return r;
}

describe('busy time, idle gaps, reserved bytes and buffer creations in results', () => {
  it('records medians of busy and idle and of idle per cause (zero where a step had none)', () => {
    const split = stepSplit([timing(10, 9, { readback: 1 }), timing(12, 9, { submission: 3 }), timing(11, 10, { readback: 1 })]);
    expect(split).toEqual({ busyMs: 9, idleMs: 1, idleByCause: { readback: 1, submission: 0 }, busySamples: [9, 9, 10], idleSamples: [1, 3, 1] });
  });

  it('validates the new fields and names what is wrong', () => {
    const r = withSplit();
    expect(validateBenchResults(r)).toEqual([]);
    const bad = structuredClone(r) as unknown as { cases: Record<string, any>[] };
    const ok = bad.cases.findIndex((c) => c.status === 'ok');
    bad.cases[ok].time.split.idleByCause = { lunch: 1 };
    bad.cases[ok].time.split.busySamples = [1];
    bad.cases[ok].buffers.createdPerStep = [-1];
    bad.cases[ok].memory.reservedPeak = bad.cases[ok].memory.stepPeak - 4;
    bad.cases[ok].oomLimit = 'moon';
    const problems = validateBenchResults(bad);
    expect(problems).toEqual([
      expect.stringMatching(new RegExp(`cases\\[${ok}\\]\\.time\\.split\\.idleByCause\\.lunch: unknown key`)),
      expect.stringMatching(/time\.split\.busySamples: expected one sample per timed step/),
      expect.stringMatching(/memory\.reservedPeak: reserved \d+ is below the step peak/),
      expect.stringMatching(/\.oomLimit: expected one of/),
      expect.stringMatching(/buffers\.createdPerStep: expected counts/),
    ]);
  });

  it('names idle time above 2% of the step and where it went, in the table and results.md', () => {
    const r = withSplit();
    const notes = idleNotes(r);
    expect(notes.length).toBe(r.cases.filter((c) => c.status === 'ok' && c.config.impl === 'tutel').length);
    expect(notes[0]).toMatch(/^tutel.*: the GPU idles 10\.0% of the step .*host readback .* ms, command submission .* ms$/);
    const tutel = r.cases.find((c) => c.status === 'ok' && c.config.impl === 'tutel')!;
    expect(busyIdleCell(tutel)).toMatch(/ms \(10\.0% idle!\)$/);
    const zero = r.cases.find((c) => c.status === 'ok' && c.config.impl === 'zero-buffer')!;
    expect(busyIdleCell(zero)).toMatch(/ms \(0\.5% idle\)$/);
    expect(allocatorLine(r)).toMatch(/^caching .*; no timed step created a buffer/);
    const table = renderBenchTable(r, { color: false, width: 400 });
    expect(table).toContain('GPU busy (idle)');
    expect(table).toContain('reserved');
    expect(table).toContain(`idle: ${notes[0]}`);
    expect(renderBenchMarkdown(r)).toContain(`- Idle: ${notes[0]}`);
  });

  it('a results file written before issue 27 still reads: fresh allocator, no split, dashes', () => {
    const old = migrateBenchResults(JSON.parse(readFileSync(new URL('../../reports/h200/moeblaze-conf4-f16/results.json', import.meta.url), 'utf8'))) as BenchResults;
    expect(validateBenchResults(old)).toEqual([]);
    expect(old.settings.allocator).toBeUndefined();
    expect(allocatorLine(old)).toMatch(/^fresh/);
    expect(idleNotes(old)).toEqual([]);
    expect(busyIdleCell(old.cases[0])).toBe('—');
    expect(renderBenchTable(old, { color: false, width: 400 })).toContain('allocator: fresh');
  });
});
