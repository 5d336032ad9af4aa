import { expect } from 'vitest';
import { tableFigures, type BufferTable } from '../../src/buffer-table.js';

/** The four figures of DESIGN.md §4 that a strategy's buffer table must predict to the byte. */
export function memoryFigures(m: { baseline: number; stepPeak: number; activationPeak: number; savedForBackward: number | null }) {
  return { baseline: m.baseline, stepPeak: m.stepPeak, activationPeak: m.activationPeak, savedForBackward: m.savedForBackward };
}

/**
 * The f16 memory claim, phase by phase, from two buffer tables that tests have already held to the
 * allocator: activation bytes at f16 × 2 − the bytes that stay full width (u32 metadata, u8 masks,
 * f32 router state) = activation bytes at f32. Returns the largest full-width share of any phase.
 */
export function f16Halving(table32: BufferTable, table16: BufferTable): { maxFixed: number; rows: { phase: string; f32: number; f16: number; fixed: number }[] } {
  const f32 = tableFigures(table32);
  const f16 = tableFigures(table16);
  const at = (phase: string) => table16.phases.indexOf(phase);
  const rows = table16.phases.map((phase) => {
    const fixed = table16.step.filter((s) => s.dtype !== 'f16' && at(s.from) <= at(phase) && at(phase) <= at(s.to)).reduce((a, s) => a + s.bytes, 0);
    return { phase, f32: f32.byPhase[phase] - f32.baseline, f16: f16.byPhase[phase] - f16.baseline, fixed };
  });
  for (const r of rows) expect(2 * r.f16 - r.fixed, `phase ${r.phase}`).toBe(r.f32);
  return { maxFixed: Math.max(...rows.map((r) => r.fixed)), rows };
}
