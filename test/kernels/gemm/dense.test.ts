import { afterAll, describe, expect, it } from 'vitest';
import { encodeDenseGemm } from '../../../kernels/gemm/dense.js';
import { readTensor } from '../../../src/gpu/readback.js';
import { allocateTensor, chunkLayout, uploadTensor } from '../../../src/gpu/tensor.js';
import { productError, randomArray, testGpu, testKernels } from '../../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

describe('shared GEMM core, dense instance', () => {
  for (const [M, N, K] of [
    [1, 1, 1],
    [64, 64, 16],
    [67, 33, 29],
    [130, 5, 71],
    [3, 129, 200],
  ]) {
    it(`matches the float64 product for ${M}×${K}·${K}×${N}`, async () => {
      const ctx = await testKernels();
      const a = randomArray(M * K, 1 + M);
      const b = randomArray(K * N, 7 + N);
      const tensor = (name: string, rows: number, cols: number) => allocateTensor(ctx.allocator, name, 'workspace', chunkLayout(rows, cols, 4, Infinity));
      const [A, B, C] = [tensor('A', M, K), tensor('B', K, N), tensor('C', M, N)];
      uploadTensor(ctx.device, A, a);
      uploadTensor(ctx.device, B, b);
      const enc = ctx.encoder();
      await encodeDenseGemm(enc, { A: A.chunks[0], B: B.chunks[0], C: C.chunks[0] }, M, N, K);
      enc.flush();
      expect(productError(await readTensor(ctx.allocator, C), a, b, M, N, K)).toBeLessThan(1e-5);
      ctx.allocator.freeAll();
    });
  }
});
