import { afterAll, describe, expect, it } from 'vitest';
import { KernelContext } from '../../kernels/context.js';
import { measureCeilings } from '../../src/measure/ceilings.js';
import { testGpu, testKernels } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

describe('ceilings', () => {
  it('measure the SIMT GEMM at f32, the copy, and the subgroup-matrix engine at f16 through its own context, freeing every buffer', async () => {
    const kernels = await testKernels();
    const matrix = new KernelContext(kernels.allocator, 'subgroup-matrix-emulated');
    const live = kernels.allocator.live;
    const c = await measureCeilings(kernels, {
      software: true,
      timestamps: false,
      sampling: { warmup: 0, minSamples: 2, maxSamples: 2, noiseTarget: 1, maxTimeMs: 1000 },
      subgroupMatrix: matrix,
    });
    expect(c.gemm).toMatchObject({ n: 256, samples: [expect.any(Number), expect.any(Number)] });
    expect(c.gemm.tflops).toBeGreaterThan(0);
    expect(c.gemmSubgroupMatrix).toMatchObject({ n: 256 });
    expect(c.gemmSubgroupMatrix!.tflops).toBeGreaterThan(0);
    expect(c.bandwidth.gbPerS).toBeGreaterThan(0);
    expect(kernels.allocator.live).toBe(live);
    matrix.destroy();
    kernels.destroy();
  });
});
