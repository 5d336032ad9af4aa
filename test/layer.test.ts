import { afterAll, describe, expect, it } from 'vitest';
import { chunkBaseName } from '../src/gpu/allocator.js';
import { layerConfig } from '../src/config.js';
import { UsageError } from '../src/errors.js';
import { MoELayer, type MoELayerOptions } from '../src/layer.js';
import { persistentSpecs } from '../src/strategy/contract.js';
import { testGpu } from './helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

describe('MoELayer: a LayerConfig and the runtime options', () => {
  it('allocates exactly the persistent buffers of the tables (persistentSpecs): names, tags and bytes of every chunk', async () => {
    for (const [partial, chunkBytes] of [
      [{ tokens: 33, hidden: 12, ffn: 20, experts: 5, topK: 2 }, 2048],
      [{ tokens: 17, hidden: 8, ffn: 24, experts: 3, topK: 3, activation: 'gelu', dtype: 'f16' }, undefined],
    ] as const) {
      const gpu = await testGpu();
      const config = layerConfig(partial);
      if (config.dtype === 'f16' && !gpu.hasF16) continue;
      const layer = await MoELayer.fromConfig(gpu, config, { impl: 'tutel', chunkBytes });
      try {
        const held = layer.allocator.liveBuffersList().map((b) => ({ name: chunkBaseName(b.name), tag: b.tag, bytes: b.bytes }));
        const specs = persistentSpecs(config, { chunkBytes: layer.chunkBytes });
        const declared = specs.flatMap((s) => Array.from({ length: s.chunks }, () => ({ name: s.name, tag: s.tag })));
        expect(held.map(({ name, tag }) => ({ name, tag }))).toEqual(declared);
        for (const s of specs) expect(held.filter((b) => b.name === s.name).reduce((a, b) => a + b.bytes, 0), s.name).toBe(s.bytes);
        expect(layer.allocator.live).toBe(specs.reduce((a, s) => a + s.bytes, 0));
        expect(specs.find((s) => s.name === 'W1')!.chunks).toBeGreaterThan(chunkBytes ? 1 : 0);
        expect(layer.strategy.id).toBe('tutel');
      } finally {
        layer.destroy();
      }
    }
  });

  it('MoELayer.create takes the flags\' names, and the 0.1 names numExperts, dispatch and auxLossCoef alike', async () => {
    const gpu = await testGpu();
    const shape = { tokens: 24, hidden: 8, ffn: 12, topK: 2 };
    const current = await MoELayer.create(gpu, { ...shape, experts: 4, impl: 'megablocks', auxLoss: 0.25, capacityFactor: 0 });
    const old = await MoELayer.create(gpu, { ...shape, numExperts: 4, dispatch: 'megablocks', auxLossCoef: 0.25, capacityFactor: 0 });
    try {
      expect(old.config).toEqual(current.config);
      expect(current.config).toEqual(layerConfig({ ...shape, experts: 4, auxLoss: 0.25, capacityFactor: 0 }));
      expect([old.strategy.id, current.strategy.id]).toEqual(['megablocks', 'megablocks']);
    } finally {
      current.destroy();
      old.destroy();
    }
  });

  it('MoELayer.create refuses a layer without its sizes, and a bad field, before any buffer exists', async () => {
    const gpu = await testGpu();
    await expect(MoELayer.create(gpu, { tokens: 24, hidden: 8, ffn: 12 } as MoELayerOptions)).rejects.toThrow(/^MoELayer\.create: `experts`, `topK` required/);
    await expect(MoELayer.create(gpu, { tokens: 24, hidden: 8, ffn: 12, experts: 2, topK: 3 })).rejects.toBeInstanceOf(UsageError);
    await expect(MoELayer.fromConfig(gpu, { ...layerConfig({}), auxLoss: -1 })).rejects.toThrow(/^--aux-loss: -1 is not allowed/);
  });
});
