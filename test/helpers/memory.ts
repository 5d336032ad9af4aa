import { expect } from 'vitest';
import { tableFigures, type BufferTable } from '../../src/strategy/buffer-table.js';
import { layerConfig, type LayerConfig } from '../../src/config.js';
import { MoELayer } from '../../src/layer.js';
import type { StepMemory } from '../../src/gpu/memory-profiler.js';
import type { RoutingSummary, Strategy } from '../../src/strategy/contract.js';
import { testGpu } from './gpu.js';

/** The four figures of docs/design.md#memory that a strategy's buffer table must predict to the byte. */
export function memoryFigures(m: { baseline: number; stepPeak: number; activationPeak: number; savedForBackward: number | null }) {
  return { baseline: m.baseline, stepPeak: m.stepPeak, activationPeak: m.activationPeak, savedForBackward: m.savedForBackward };
}

/**
 * The f16 memory claim, phase by phase, from two buffer tables that tests have already held to the
 * allocator: activation bytes at f16 × 2 − the bytes that stay full width (u32 metadata, u8 masks,
 * f32 router state) = activation bytes at f32. Returns the largest full-width share of any phase.
 */
export function f16Halving(table32: BufferTable, table16: BufferTable, extra: (phase: string, table16: BufferTable) => number = () => 0): { maxFixed: number; rows: { phase: string; f32: number; f16: number; fixed: number }[] } {
  const f32 = tableFigures(table32);
  const f16 = tableFigures(table16);
  const at = (phase: string) => table16.phases.indexOf(phase);
  const rows = table16.phases.map((phase) => {
    const fixed = table16.step.filter((s) => s.dtype !== 'f16' && at(s.from) <= at(phase) && at(phase) <= at(s.to)).reduce((a, s) => a + s.bytes, 0);
    return { phase, f32: f32.byPhase[phase] - f32.baseline, f16: f16.byPhase[phase] - f16.baseline, fixed };
  });
  // `extra`: f16-only bytes a strategy names (a cast that is a no-op at f32 but a copy at f16).
  for (const r of rows) expect(2 * r.f16 - r.fixed - extra(r.phase, table16), `phase ${r.phase}`).toBe(r.f32);
  return { maxFixed: Math.max(...rows.map((r) => r.fixed)), rows };
}

/**
 * Two train steps of `strategy` on seeded random inputs; both must equal its buffer table, built
 * from the realised routing (read after a forward pass: routing is deterministic, so it is the
 * steps' too), to the byte.
 */
export async function stepsMatchTable(strategy: Strategy, config: LayerConfig, chunkBytes?: number): Promise<{ table: BufferTable; routing: RoutingSummary; measured: StepMemory }> {
  const layer = await MoELayer.fromConfig(await testGpu(), config, { impl: strategy.id, chunkBytes });
  try {
    layer.randomize();
    await layer.forward();
    const routing = await layer.routingSummary();
    const steps = [await layer.trainStep(), await layer.trainStep()];
    const table = strategy.bufferTable(config, routing, { chunkBytes: layer.chunkBytes });
    for (const measured of steps) expect(memoryFigures(measured)).toEqual(memoryFigures(tableFigures(table)));
    return { table, routing, measured: steps[1] };
  } finally {
    layer.destroy();
  }
}

/** The f16 claim end to end: both dtypes held to their tables, the tables related phase by phase, the peaks bounded. */
export async function expectF16Halving(strategy: Strategy, partial: Partial<LayerConfig>, chunkBytes?: number, extra?: (phase: string, table16: BufferTable) => number): Promise<{ f32: StepMemory; f16: StepMemory; maxFixed: number }> {
  const full = await stepsMatchTable(strategy, layerConfig({ ...partial, dtype: 'f32' }), chunkBytes);
  const half = await stepsMatchTable(strategy, layerConfig({ ...partial, dtype: 'f16' }), chunkBytes);
  const { maxFixed, rows } = f16Halving(full.table, half.table, extra);
  const most = extra ? Math.max(...rows.map((r) => extra(r.phase, half.table))) : 0;
  expect(half.measured.activationPeak).toBeGreaterThanOrEqual(full.measured.activationPeak / 2);
  expect(half.measured.activationPeak).toBeLessThanOrEqual((full.measured.activationPeak + maxFixed + most) / 2);
  return { f32: full.measured, f16: half.measured, maxFixed };
}

