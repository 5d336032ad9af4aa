import { afterAll, describe, expect, it } from 'vitest';
import { gshard } from '../../../baselines/capacity/gshard.js';
import { layerConfig } from '../../../src/config.js';
import { OutOfMemoryError } from '../../../src/errors.js';
import { MoELayer } from '../../../src/layer.js';
import { testGpu } from '../../helpers/gpu.js';
import { capacitySuite } from './capacity-suite.js';

afterAll(async () => (await testGpu()).destroy());

capacitySuite(gshard);

describe('gshard specifics', () => {
  it('materialises both [T,E,C] tensors: a byte mask (4 to a u32) and f32 combine weights, saved for backward', () => {
    const config = layerConfig({ tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2 });
    const C = 2 * 8;
    const table = gshard.bufferTable(config, { expertLoads: [], keptPairs: 128, droppedPairs: 0, capacity: null }, { chunkBytes: 1 << 30 });
    const mask = table.step.find((s) => s.name === 'dispatchMask')!;
    const combine = table.step.find((s) => s.name === 'combineWeights')!;
    expect(mask.shape).toEqual([64, 8, C]);
    expect(mask.bytes).toBe(64 * 8 * C);
    expect(combine.bytes).toBe(4 * 64 * 8 * C);
    expect([mask.tag, combine.tag]).toEqual(['routing-metadata', 'activations-saved']);
    expect(table.phases.indexOf(mask.to)).toBeGreaterThan(table.phases.indexOf(table.forwardEnd));
    expect(table.phases.indexOf(combine.to)).toBeGreaterThan(table.phases.indexOf(table.forwardEnd));
  });

  it('refuses cleanly when one token row of [T,E,C] exceeds a binding', async () => {
    const layer = await MoELayer.create(await testGpu(), { tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, capacityFactor: 4, impl: 'gshard', chunkBytes: 1600 });
    layer.randomize();
    const before = layer.allocator.live;
    try {
      await expect(layer.forward()).rejects.toThrow(OutOfMemoryError);
      await expect(layer.forward()).rejects.toThrow(/one token's row of the \[T,E,C\] combine weights/);
      // The failed step took back what it had allocated (router, routing metadata).
      expect(layer.allocator.live).toBe(before);
    } finally {
      layer.destroy();
    }
  });
});
