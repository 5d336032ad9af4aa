import { afterAll, describe, expect, it } from 'vitest';
import { layerConfig } from '../src/config.js';
import { chromeTrace, profileStrategies } from '../src/profile.js';
import { renderProfile, sparkline } from '../src/render/profile.js';
import { testGpu } from './helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

describe('profile', () => {
  it('breaks a step into kernels and writes a trace that Perfetto can load', async () => {
    const config = layerConfig({ tokens: 96, hidden: 16, ffn: 32, experts: 4, topK: 2 });
    const result = await profileStrategies(await testGpu(), config, ['zero-buffer']);
    const [zb] = result.strategies;
    // T/E = 24 rows per expert: the combine and dX go through scratch row blocks of T rows, R/T = 2 blocks.
    expect(zb.kernels.map((k) => k.kernel)).toEqual(expect.arrayContaining(['router-logits', 'router-topk', 'expert-up-swiglu', 'expert-dX-swiglu-rows', 'row-reduce']));
    expect(zb.kernels.find((k) => k.kernel === 'expert-dX-swiglu-rows')!.calls).toBe(2);
    expect(zb.kernels.find((k) => k.kernel === 'row-reduce')!.calls).toBe(4);
    expect(zb.kernels.reduce((a, k) => a + k.percent, 0)).toBeCloseTo(100, 6);
    expect(zb.stepMs).toBeGreaterThan(0);
    const up = zb.kernels.find((k) => k.kernel === 'expert-up-swiglu')!;
    // 2·R·d·h·2 useful FLOPs for the dual up-projection, over its measured time.
    expect(up.tflops).toBeCloseTo((2 * 192 * 16 * 32 * 2) / (up.ms * 1e-3) / 1e12, 12);
    expect(up.gbPerS).toBeGreaterThan(0);
    expect(zb.kernels.find((k) => k.kernel === 'routing-scan')!.tflops).toBeNull();
    expect(renderProfile(result)).toMatch(/own compute pass|pass overhead/);

    const trace = JSON.parse(JSON.stringify(chromeTrace(result))) as { traceEvents: Record<string, unknown>[] };
    expect(Array.isArray(trace.traceEvents)).toBe(true);
    const slices = trace.traceEvents.filter((e) => e.ph === 'X');
    expect(slices.length).toBe(zb.slices.length);
    for (const e of slices) {
      expect(typeof e.name).toBe('string');
      expect(e.ts as number).toBeGreaterThanOrEqual(0);
      expect(e.dur as number).toBeGreaterThanOrEqual(0);
      expect(Number.isInteger(e.pid) && Number.isInteger(e.tid)).toBe(true);
    }
    const counters = trace.traceEvents.filter((e) => e.ph === 'C');
    expect(counters.length).toBeGreaterThan(0);
    expect(Math.max(...counters.map((e) => (e.args as { bytes: number }).bytes))).toBe(zb.memory.stepPeak);
    expect(trace.traceEvents.some((e) => e.ph === 'M' && e.name === 'process_name')).toBe(true);
  });

  it('draws a sparkline that spans the range', () => {
    expect(sparkline([0, 1, 2, 3, 4, 5, 6, 7])).toBe('▁▂▃▄▅▆▇█');
    expect(sparkline([])).toBe('');
  });
});
