import { afterAll, describe, expect, it } from 'vitest';
import { mseGradKernel } from '../../kernels/train.js';
import { readTensor } from '../../src/gpu/readback.js';
import { allocateTensor, chunkLayout, uploadTensor } from '../../src/gpu/tensor.js';
import { randomArray, testGpu, testKernels } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

/** dY = scale·(y − tgt): three bindings, and swapping y and tgt changes the result. */
const SOURCE = mseGradKernel('f32');

async function operands(count: number) {
  const ctx = await testKernels();
  const tensor = (name: string) => allocateTensor(ctx.allocator, name, 'workspace', chunkLayout(count, 1, 4, Infinity));
  return { ctx, y: tensor('y'), tgt: tensor('tgt'), dY: tensor('dY') };
}

describe('StepEncoder.dispatch binds buffers by name', () => {
  it('refuses a record that misses a declared name, naming the kernel, the missing and the declared names, before recording anything', async () => {
    const { ctx, y, dY } = await operands(8);
    const enc = ctx.encoder();
    // An undefined entry counts as absent.
    const dispatch = enc.dispatch({ source: SOURCE, params: { count: 8, scale: 1 }, buffers: { y: y.chunks[0], tgt: undefined, dY: dY.chunks[0] }, workgroups: 1 });
    await expect(dispatch).rejects.toThrow('kernel "train-mse-grad": buffers missing tgt (it declares y, tgt, dY)');
    expect(enc.passes).toEqual([]);
    ctx.allocator.freeAll();
  });

  it('refuses a record with a name the kernel does not declare, naming it and the declared ones', async () => {
    const { ctx, y, tgt, dY } = await operands(8);
    const enc = ctx.encoder();
    const buffers = { y: y.chunks[0], target: tgt.chunks[0], dY: dY.chunks[0] };
    const dispatch = enc.dispatch({ source: SOURCE, params: { count: 8, scale: 1 }, buffers, workgroups: 1 });
    await expect(dispatch).rejects.toThrow('kernel "train-mse-grad": buffers missing tgt; not declared: target (it declares y, tgt, dY)');
    expect(enc.passes).toEqual([]);
    ctx.allocator.freeAll();
  });

  it('binds each buffer to its named binding whatever the record order, and matches float64', async () => {
    const count = 1037;
    const scale = 0.75;
    const { ctx, y, tgt, dY } = await operands(count);
    const yValues = randomArray(count, 7);
    const tgtValues = randomArray(count, 13);
    uploadTensor(ctx.device, y, yValues);
    uploadTensor(ctx.device, tgt, tgtValues);
    const enc = ctx.encoder();
    await enc.dispatch({ source: SOURCE, params: { count, scale }, buffers: { dY: dY.chunks[0], tgt: tgt.chunks[0], y: y.chunks[0] }, workgroups: Math.ceil(count / 256) });
    enc.flush();
    const got = await readTensor(ctx.allocator, dY);
    let worst = 0;
    for (let i = 0; i < count; i++) {
      const want = scale * (yValues[i] - tgtValues[i]);
      // Math.max keeps a NaN, which then fails the bound.
      worst = Math.max(worst, Math.abs(got[i] - want) / Math.max(Math.abs(want), 1e-3));
    }
    expect(worst).toBeLessThan(1e-6);
    ctx.allocator.freeAll();
  });
});
