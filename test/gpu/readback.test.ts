import { afterAll, describe, expect, it } from 'vitest';
import { readRuns, readTensor } from '../../src/gpu/readback.js';
import { readElements } from '../../kernels/gather-words.js';
import { allocateTensor, chunkLayout, freeTensor, uploadTensor } from '../../src/gpu/tensor.js';
import { randomArray, testGpu, testKernels } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

describe('reading parts of a tensor back (the sampled check)', () => {
  for (const elementBytes of [4, 2]) {
    it(`${elementBytes === 4 ? 'f32' : 'f16'}, odd rows and columns, several chunks: elements and runs equal the whole read`, async () => {
      const kernels = await testKernels();
      // 7 rows a chunk of 13 columns: chunks start at odd element offsets, so halves fall on both sides of a word.
      const layout = chunkLayout(37, 13, elementBytes, 7 * 13 * elementBytes);
      expect(layout.chunkCount).toBeGreaterThan(4);
      const tensor = allocateTensor(kernels.allocator, 't', 'workspace', layout);
      try {
        uploadTensor(kernels.device, tensor, randomArray(37 * 13, 9));
        const whole = await readTensor(kernels.allocator, tensor);
        const indices = [0, 1, 2, 12, 13, 90, 91, 92, 480, 37 * 13 - 1, 5, 5, 200];
        expect(Array.from(await readElements(kernels, tensor, indices))).toEqual(indices.map((i) => whole[i]));
        const runs = [{ start: 13, length: 13 }, { start: 92, length: 3 }, { start: 37 * 13 - 2, length: 2 }, { start: 1, length: 1 }];
        expect(Array.from(await readRuns(kernels.allocator, tensor, runs))).toEqual(runs.flatMap((r) => Array.from(whole.subarray(r.start, r.start + r.length))));
        await expect(readElements(kernels, tensor, [37 * 13])).rejects.toThrow(/outside/);
        await expect(readRuns(kernels.allocator, tensor, [{ start: 12, length: 2 }])).rejects.toThrow(/leaves its row/);
      } finally {
        freeTensor(kernels.allocator, tensor);
        kernels.destroy();
      }
    });
  }
});
