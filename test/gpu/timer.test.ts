import { afterAll, describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { busyAndIdle, type PassTime, type PassTiming } from '../../src/gpu/timer.js';
import { MoELayer } from '../../src/layer.js';
import { testGpu } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

describe('busy time and idle gaps (docs/design.md#time)', () => {
  it('sums the passes as busy time and puts each gap down to what the host did before the next pass', () => {
    const times: PassTime[] = [
      { label: 'router', startMs: 0, ms: 2 },
      { label: 'metadata', startMs: 2.5, ms: 1 }, // 0.5 ms after a submission
      { label: 'experts', startMs: 5.5, ms: 4 }, // 2 ms of readback
      { label: 'combine', startMs: 9.5, ms: 1 }, // back to back
      { label: 'backward', startMs: 11, ms: 3 }, // 0.5 ms of allocation
    ];
    const passes: PassTiming[] = [
      { label: 'router', kernels: [] },
      { label: 'metadata', kernels: [], gapBefore: 'submission' },
      { label: 'experts', kernels: [], gapBefore: 'readback' },
      { label: 'combine', kernels: [], gapBefore: 'pass-boundary' },
      { label: 'backward', kernels: [], gapBefore: 'allocation' },
    ];
    const split = busyAndIdle(14, times, passes);
    expect(split.busyMs).toBe(11);
    expect(split.idleMs).toBe(3);
    expect(split.idleByCause).toEqual({ submission: 0.5, readback: 2, allocation: 0.5 });
  });

  it('a real step: busy plus idle is the step, and a steady caching step creates no buffer', async () => {
    const gpu = await testGpu();
    const layer = await MoELayer.fromConfig(gpu, layerConfig({ tokens: 64, hidden: 16, ffn: 32, experts: 4, topK: 2 }), { impl: 'megablocks-grouped' });
    try {
      layer.randomize();
      const passes: PassTiming[][] = [];
      // A stand-in timer: the encoder's passes are what is under test; lavapipe has no timestamps.
      const timer = {
        writes: null as never,
        read: async (p: readonly PassTiming[]) => {
          passes.push(p.map((x) => ({ ...x })));
          const times = p.map((x, i) => ({ label: x.label, startMs: 2 * i, ms: 1 }));
          return { totalMs: 2 * p.length - 1, forwardMs: null, backwardMs: null, passes: times, ...busyAndIdle(2 * p.length - 1, times, p) };
        },
      };
      const first = await layer.step({ timer });
      const second = await layer.step({ timer });
      expect(first.memory.buffersCreated).toBeGreaterThan(0);
      expect(second.memory.buffersCreated).toBe(0);
      expect(second.timing!.busyMs + second.timing!.idleMs).toBeCloseTo(second.timing!.totalMs, 9);
      // MegaBlocks grouped reads its bin sizes back mid-step; the first step also creates buffers.
      expect(passes[1].map((p) => p.gapBefore).filter(Boolean)).toContain('readback');
      expect(passes[0].map((p) => p.gapBefore)).toContain('allocation');
      expect(passes[1].map((p) => p.gapBefore)).not.toContain('allocation');
      expect(passes[0][0].gapBefore).toBeUndefined();
      expect(second.memory.reservedPeak).toBeGreaterThanOrEqual(second.memory.stepPeak);
    } finally {
      layer.destroy();
    }
    expect(layer.allocator.pooled).toEqual({ buffers: 0, bytes: 0 });
  });
});
