import { afterEach, describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { roundToHalf, toHalf } from '../../src/f16.js';
import { readTensor } from '../../src/gpu/readback.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { MoELayer } from '../../src/layer.js';
import { toFloat64, toleranceFor } from '../../src/reference/index.js';
import { sampledCheck } from '../../src/verify/sampled.js';
import { compareRun, expectedFrom, referenceFor, type VerifiedTensor } from '../../src/verify/verify.js';
import { testGpu } from '../helpers/gpu.js';

/*
 * The f16 bound (docs/design.md#numerics-and-the-reference) is tight enough to catch a 0.5%
 * systematic error (issue 29): planted in O and in dW2 of real f16 GPU results on lavapipe, each
 * fails, alone, in the full check and in the sampled one; without a plant everything passes.
 */

const CONFIG = layerConfig({ tokens: 128, hidden: 64, ffn: 96, experts: 8, topK: 2, dtype: 'f16' });
const PLANT = 1.005;
let layer: MoELayer | null = null;
afterEach(() => {
  layer?.destroy();
  layer = null;
});

/** Every element of a GPU tensor times `factor`, stored back at the tensor's dtype (f16: rounded, as the GPU would). */
async function scaleOnGpu(l: MoELayer, tensor: Tensor, factor: number) {
  const values = await readTensor(l.allocator, tensor);
  const { cols, rowsPerChunk, elementBytes } = tensor.layout;
  tensor.chunks.forEach((chunk, c) => {
    const part = values.subarray(c * rowsPerChunk * cols, Math.min(values.length, (c + 1) * rowsPerChunk * cols)).map((v) => v * factor);
    const data = elementBytes === 2 ? toHalf(part) : part;
    l.gpu.device.queue.writeBuffer(chunk.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  });
}

describe('f16 bound against planted 0.5% errors', () => {
  it('full check: O × 1.005 fails O alone, dW2 × 1.005 fails dW2 alone, unplanted passes', async () => {
    for (const strategy of ['megablocks']) {
      layer = await MoELayer.fromConfig(await testGpu(), CONFIG, { impl: strategy });
      const inputs = layer.randomize();
      await layer.forward();
      const routing = await layer.readRouting();
      await layer.backward();
      const g = await layer.readGradients();
      const got = { O: await layer.readOutput(), dX: g.dX, dWr: g.dWr, dW1: g.dW1, dW2: g.dW2, dW3: g.dW3 };
      layer.destroy();
      layer = null;
      const { ref } = referenceFor(CONFIG, toFloat64(inputs), false, routing.experts);
      const judge = (tensors: typeof got) => compareRun(tensors, expectedFrom(ref), toleranceFor('f16'));
      const clean = judge(got);
      expect(clean.every((t) => t.pass), JSON.stringify(clean)).toBe(true);
      for (const name of ['O', 'dW2'] as VerifiedTensor[]) {
        const planted = judge({ ...got, [name]: roundToHalf(got[name]!.map((v) => v * PLANT)) });
        expect(planted.filter((t) => !t.pass).map((t) => t.tensor), `${strategy}: ${name} × ${PLANT}`).toEqual([name]);
        // Well outside the bound, not at its edge: the real error is a fifth of it.
        expect(planted.find((t) => t.tensor === name)!.errorRatio).toBeGreaterThan(1.3);
      }
    }
  });

  it('sampled check: the same plants, made in the GPU buffers after the step, fail; the step without them passes', async () => {
    const run = async (plant?: (l: MoELayer) => Promise<void>) => {
      layer = await MoELayer.fromConfig(await testGpu(), CONFIG, { impl: 'tutel' });
      await layer.randomizeOnGpu();
      const s = await sampledCheck(layer, { inputs: null, tolerance: toleranceFor('f16'), capacity: true, afterStep: plant });
      layer.destroy();
      layer = null;
      return s;
    };
    const clean = await run();
    expect(clean.pass, JSON.stringify(clean.tensors)).toBe(true);
    const O = await run(async (l) => scaleOnGpu(l, l.gpuTensors().output!, PLANT));
    expect(O.tensors.filter((t) => !t.pass).map((t) => t.tensor)).toEqual(['O']);
    const dW2 = await run(async (l) => scaleOnGpu(l, l.gpuTensors().layer.dW2, PLANT));
    expect(dW2.tensors.filter((t) => !t.pass).map((t) => t.tensor)).toEqual(['dW2']);
  });
});
