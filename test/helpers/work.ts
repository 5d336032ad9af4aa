import { expect } from 'vitest';
import { usefulFlops, type LayerConfig } from '../../src/config.js';
import { profileStrategies, workByKernel, type StrategyProfile } from '../../src/measure/profile.js';
import { testGpu } from './gpu.js';

/** The GEMM FLOPs of docs/design.md#useful-flops: forward 2·R'·d·h·m, a train step three times that. */
function expertFlops(c: LayerConfig, kept: number): number {
  return 3 * 2 * kept * c.hidden * c.ffn * (c.activation === 'swiglu' ? 3 : 2);
}

/** Strategy.work against what profile timed: the same kernel names, useful FLOPs, rates from the entries. */
export function checkWork(c: LayerConfig, s: StrategyProfile): void {
  const label = `${s.strategy} T=${c.tokens} E=${c.experts} k=${c.topK} ${c.activation} checkpoint=${c.checkpoint} cf=${c.capacityFactor}`;
  const timed = new Set(s.kernels.map((k) => k.kernel));
  const declared = new Set(s.work.map((w) => w.kernel));
  expect([...declared].sort(), label).toEqual([...timed].sort());
  const kept = s.routing.keptPairs;
  expect(s.work.reduce((a, w) => a + w.flops, 0), label).toBe(usefulFlops(c, kept, 'train'));
  const experts = s.work.filter((w) => !w.kernel.startsWith('router-'));
  expect(experts.reduce((a, w) => a + w.flops, 0), label).toBe(expertFlops(c, kept));
  for (const w of s.work) {
    expect(Number.isInteger(w.bytes) && w.bytes > 0, `${label} ${w.kernel} bytes ${w.bytes}`).toBe(true);
    expect(w.flops, `${label} ${w.kernel}`).toBeGreaterThanOrEqual(0);
  }
  // No (kernel, phase) twice: an entry sums every dispatch of its kernel in its phase.
  const keys = s.work.map((w) => `${w.pass} ${w.phase} ${w.kernel}`);
  expect(new Set(keys).size, label).toBe(keys.length);
  const sums = workByKernel(s.work);
  for (const row of s.kernels) {
    const w = sums.get(row.kernel)!;
    expect(row.gbPerS, `${label} ${row.kernel}`).toBeCloseTo(w.bytes / (row.ms * 1e-3) / 1e9, 9);
    if (w.flops === 0) expect(row.tflops, `${label} ${row.kernel}`).toBeNull();
    else expect(row.tflops, `${label} ${row.kernel}`).toBeCloseTo(w.flops / (row.ms * 1e-3) / 1e12, 12);
  }
}

export async function profile(config: LayerConfig, strategies: string[]): Promise<void> {
  const result = await profileStrategies(await testGpu(), config, strategies);
  expect(result.strategies.map((s) => s.strategy)).toEqual(strategies);
  for (const s of result.strategies) checkWork(config, s);
}

