import { afterEach, describe, expect, it } from 'vitest';
import { layerConfig, type LayerConfig } from '../../src/config.js';
import { FILL_TENSORS, fillScale, fillStds, fillValue, type FilledTensor } from '../../src/fill.js';
import { readTensor } from '../../src/gpu/readback.js';
import { MoELayer } from '../../src/layer.js';
import { Xoshiro128 } from '../../src/rng.js';
import { guardFill } from '../../src/verify/sampled.js';
import { readElements } from '../../kernels/gather-words.js';
import { testGpu } from '../helpers/gpu.js';

/*
 * The GPU fill (kernels/init.ts) against its host replica (src/fill.ts), bit for bit: the
 * sampled check regenerates the weights on the host and must see exactly what the GPU holds.
 */

const layers: MoELayer[] = [];
afterEach(() => {
  for (const l of layers.splice(0)) l.destroy();
});

async function filled(c: LayerConfig, chunkBytes?: number, seed?: number): Promise<MoELayer> {
  const layer = await MoELayer.fromConfig(await testGpu(), c, { impl: 'zero-buffer', chunkBytes });
  layers.push(layer);
  await layer.randomizeOnGpu(seed);
  return layer;
}

const NAMES: FilledTensor[] = ['X', 'dO', 'Wr', 'W1', 'W3', 'W2'];

describe('hashed GPU fill', () => {
  it('every element of every tensor equals the host replica, at f32 and f16, in chunks or whole', async () => {
    for (const dtype of ['f32', 'f16'] as const) {
      const c = layerConfig({ tokens: 24, hidden: 20, ffn: 12, experts: 5, topK: 2, dtype, seed: 123 });
      // 2 experts' W1 per chunk: 3 chunks, the last one short.
      for (const chunkBytes of [undefined, 2 * 20 * 12 * (dtype === 'f16' ? 2 : 4)]) {
        const layer = await filled(c, chunkBytes);
        if (chunkBytes) expect(layer.gpuTensors().layer.W1.chunks).toHaveLength(3);
        const std = fillStds(c.hidden, c.ffn);
        for (const name of NAMES) {
          const tensor = layer.gpuTensors().layer[name]!;
          const got = await readTensor(layer.allocator, tensor);
          const { cols } = tensor.layout;
          const scale = fillScale(std[name]);
          let mismatches = 0;
          got.forEach((v, i) => {
            if (!Object.is(v, fillValue(123, FILL_TENSORS[name], Math.floor(i / cols), i % cols, scale))) mismatches++;
          });
          expect(mismatches, `${dtype} ${name} chunkBytes ${chunkBytes}`).toBe(0);
          expect(new Set(got).size, `${name} is not constant`).toBeGreaterThan(got.length / 4);
        }
      }
    }
  });

  it('a few hundred random elements of a larger layer, bit for bit, and the guard the sampled check runs', async () => {
    const c = layerConfig({ tokens: 64, hidden: 96, ffn: 80, experts: 16, topK: 2, dtype: 'f16', seed: 4242 });
    const layer = await filled(c, 3 * 96 * 80 * 2);
    const rng = new Xoshiro128(29);
    const std = fillStds(c.hidden, c.ffn);
    for (const name of ['W1', 'W2', 'X'] as const) {
      const tensor = layer.gpuTensors().layer[name]!;
      const { rows, cols } = tensor.layout;
      const indices = Array.from({ length: 200 }, () => Math.floor(rng.uniform() * rows * cols));
      const got = await readElements(layer.kernels, tensor, indices);
      const want = indices.map((i) => fillValue(4242, FILL_TENSORS[name], Math.floor(i / cols), i % cols, fillScale(std[name])));
      expect(Array.from(got)).toEqual(want);
    }
    await expect(guardFill(layer, 4242)).resolves.toBeUndefined();
    // The guard names a fill that is not the one it replays (another seed's values).
    await expect(guardFill(layer, 4243)).rejects.toThrow(/the GPU fill of W1 differs from its host replica at element \d+/);
  });

  it('setting host weights forgets the fill: the sampled check then cannot regenerate them', async () => {
    const c = layerConfig({ tokens: 8, hidden: 8, ffn: 8, experts: 2, topK: 1 });
    const layer = await filled(c);
    expect(layer.gpuFillSeed).toBe(c.seed);
    layer.setInputs({ X: new Float32Array(64).fill(1) });
    expect(layer.gpuFillSeed).toBe(c.seed);
    layer.setInputs({ W2: new Float32Array(128).fill(1) });
    expect(layer.gpuFillSeed).toBeNull();
  });
});
