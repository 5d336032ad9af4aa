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
  it("materialises DeepSpeed's [T,E,C] tensors: f32 gating transients, a byte mask, and the mask and combine weights in the input dtype, saved for backward", () => {
    const config = layerConfig({ tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2 });
    const C = 2 * 8;
    const table = gshard.bufferTable(config, { expertLoads: [], keptPairs: 128, droppedPairs: 0, capacity: null }, { chunkBytes: 1 << 30 });
    const mask = table.step.find((s) => s.name === 'dispatchMask')!;
    const combine = table.step.find((s) => s.name === 'combineWeights')!;
    expect(mask.shape).toEqual([64, 8, C]);
    // dispatch_mask.type_as(input) and combine_weights.type_as(input): the input's dtype (f32 here).
    expect([mask.bytes, mask.dtype]).toEqual([4 * 64 * 8 * C, 'f32']);
    expect(combine.bytes).toBe(4 * 64 * 8 * C);
    // top2gating's three f32 [T,E,C] tensors live at once in the gating, with combine_weights.bool().
    const gating = table.step.filter((s) => s.from === 'gating' && s.shape.length === 3).map((s) => [s.name, s.dtype, s.bytes]);
    // At f32 the third is combine_weights itself, which the combine then reads (type_as is a no-op).
    expect(gating.sort()).toEqual([['combine1Sec', 'f32', 4 * 64 * 8 * C], ['combine2Sec', 'f32', 4 * 64 * 8 * C], ['combineWeights', 'f32', 4 * 64 * 8 * C], ['dispatchBool', 'u8', 64 * 8 * C]].sort());
    // The one-hot locations [T,C] f32, saved by the gating einsums until the gates' gradient.
    for (const name of ['locations1Sc', 'locations2Sc']) expect(table.step.find((s) => s.name === name)!.shape).toEqual([64, C]);
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
      await expect(layer.forward()).rejects.toThrow(/one token's row of the f32 \[T,E,C\] gating tensors/);
      // The failed step took back what it had allocated (router, routing metadata).
      expect(layer.allocator.live).toBe(before);
    } finally {
      layer.destroy();
    }
  });
});
