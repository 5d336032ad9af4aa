import { beforeAll, describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.js';
import { lossScale, trainConfig, type TrainConfig } from '../../src/train/model.js';
import { referenceTraining } from '../../src/train/reference.js';
import { finalLoss } from '../../src/train/run.js';
import { GpuTrainer, type ParamName, type TrainStepRecord } from '../../src/train/trainer.js';
import type { GpuContext } from '../../src/gpu/runtime.js';

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
type Weights = Record<ParamName, Float32Array>;

/** Every parameter of the model: W_in, W_out, Wr and the experts' W1, W3, W2. */
function parameterCount(c: TrainConfig): number {
  return c.inputDim * c.hidden + c.hidden * c.outputDim + c.hidden * c.experts + 3 * c.experts * c.hidden * c.ffn;
}

interface Run {
  losses: TrainStepRecord[];
  /** Master and stored weights after `snapshotAt` steps. */
  master: Weights;
  stored: Weights;
  byTag: GpuTrainer['memoryByTag'];
}

async function train(gpu: GpuContext, c: TrainConfig, snapshotAt: number, options: { chunkBytes?: number } = {}): Promise<Run> {
  const trainer = await GpuTrainer.create(gpu, c, 'zero-buffer', options);
  try {
    const losses: TrainStepRecord[] = [];
    let master = {} as Weights;
    let stored = {} as Weights;
    for (let s = 0; s < c.steps; s++) {
      losses.push(await trainer.step());
      if (s + 1 === snapshotAt) {
        master = await trainer.readWeights('master');
        stored = await trainer.readWeights('stored');
      }
    }
    if (options.chunkBytes) expect(trainer.layer.gpuTensors().layer.W1.chunks.length, 'W1 is chunked').toBeGreaterThan(1);
    return { losses, master, stored, byTag: { ...trainer.memoryByTag } };
  } finally {
    trainer.destroy();
  }
}

/**
 * The f16 copy the forward reads is the f32 master rounded to f16 (either neighbour, as WGSL
 * allows); the router's Wr, stored f32, is its own master.
 */
function expectHalfCopies(run: Run) {
  expect(run.stored.Wr).toEqual(run.master.Wr);
  for (const [name, m] of Object.entries(run.master) as [ParamName, Float32Array][]) {
    if (name === 'Wr') continue;
    const s = run.stored[name];
    let worst = 0;
    for (let i = 0; i < m.length; i++) worst = Math.max(worst, Math.abs(s[i] - m[i]) / (Math.abs(m[i]) * 2 ** -10 + 2 ** -24));
    expect(worst, `${name}: |stored − master| in f16 ulps`).toBeLessThanOrEqual(1);
    expect(s.some((v, i) => v !== m[i]), `${name}: the copy is rounded`).toBe(true);
  }
}

describe('train --dtype f16: mixed precision on the tiny shape', () => {
  let gpu: GpuContext;
  const f32 = trainConfig({ steps: 20, seed: 3 });
  const f16 = trainConfig({ steps: 100, seed: 3, dtype: 'f16' });
  let ref: Run;
  let half: Run;

  beforeAll(async () => {
    gpu = await testGpu();
    ref = await train(gpu, f32, 0);
    half = await train(gpu, f16, 15);
  }, 120_000);

  it('the first 20 losses track the f32 run within 2e-2 relative, and 100 steps cut the loss by 5×', () => {
    const diffs = ref.losses.map((r, s) => rel(half.losses[s].loss, r.loss));
    console.log(`train f16: max rel diff to f32 over 20 steps ${Math.max(...diffs).toExponential(2)}; loss ${half.losses[0].loss} → ${finalLoss(half.losses)} in 100 steps`);
    for (const [s, d] of diffs.entries()) expect(d, `step ${s}`).toBeLessThan(2e-2);
    expect(half.losses[0].loss / finalLoss(half.losses)).toBeGreaterThan(5);
  });

  it('the first 5 f16 losses match the float64 training loop within 1e-2 relative', () => {
    const ref = referenceTraining(trainConfig({ ...f32, steps: 5 }), 5);
    const diffs = ref.map((r, s) => rel(half.losses[s].loss, r.loss));
    console.log(`train f16: rel diff to the float64 loop over 5 steps ${diffs.map((d) => d.toExponential(1)).join(' ')}`);
    for (const [s, d] of diffs.entries()) expect(d, `step ${s}`).toBeLessThan(1e-2);
  });

  it('optimizer state is exactly (8 B moments + 4 B master) × f16 parameters, 8 B × the f32 router weight', () => {
    const n = parameterCount(f16);
    // The layer keeps the router's Wr (and dWr) f32 at any dtype: that weight is its own master.
    const router = f16.hidden * f16.experts;
    expect(half.byTag.optimizer).toBe(12 * (n - router) + 8 * router);
    expect(half.byTag.weights).toBe(2 * (n - router) + 4 * router);
    expect(half.byTag.gradients).toBe(2 * (n - router) + 4 * router);
    // At f32 every weight is its own master.
    expect(ref.byTag.optimizer).toBe(8 * n);
    expect(ref.byTag.weights).toBe(4 * n);
    expect(ref.byTag.gradients).toBe(4 * n);
  });

  it('Adam updates the f32 master and writes its f16 rounding for the next forward', () => {
    expectHalfCopies(half);
  });

  it('two f16 runs with the same seed are bitwise identical (losses, master and stored weights)', async () => {
    const again = await train(gpu, trainConfig({ ...f16, steps: 15 }), 15);
    expect(again.losses.map((r) => r.loss)).toEqual(half.losses.slice(0, 15).map((r) => r.loss));
    for (const name of Object.keys(half.master) as ParamName[]) {
      expect(Buffer.from(again.master[name].buffer).equals(Buffer.from(half.master[name].buffer)), `master ${name}`).toBe(true);
      expect(Buffer.from(again.stored[name].buffer).equals(Buffer.from(half.stored[name].buffer)), `stored ${name}`).toBe(true);
    }
  });

  it('chunked expert weights (f16 chunks of one expert, f32 state chunks elsewhere) train the same', async () => {
    // 1536 B: one expert's f16 W1 (1 KiB) per chunk, 384 f32 state elements per chunk: the
    // update walks overlaps that start mid-chunk on both sides.
    const chunked = await train(gpu, trainConfig({ ...f16, steps: 5 }), 5, { chunkBytes: 1536 });
    expect(chunked.losses[0].loss).toBe(half.losses[0].loss);
    for (let s = 1; s < 5; s++) expect(rel(chunked.losses[s].loss, half.losses[s].loss), `step ${s}`).toBeLessThan(1e-3);
    expectHalfCopies(chunked);
  });

  it('f16 gradients carry the loss scale S: dW/S matches the f32 gradients, load-balancing term included', async () => {
    const c = { steps: 1, seed: 5, auxLoss: 0.5 };
    const grads: Record<string, Weights> = {};
    for (const dtype of ['f32', 'f16'] as const) {
      const trainer = await GpuTrainer.create(gpu, trainConfig({ ...c, dtype }), 'zero-buffer');
      try {
        await trainer.step();
        grads[dtype] = await trainer.readGradients();
      } finally {
        trainer.destroy();
      }
    }
    const S = lossScale({ dtype: 'f16', tokens: trainConfig(c).tokens });
    const errors: string[] = [];
    for (const name of Object.keys(grads.f32) as ParamName[]) {
      const a = grads.f16[name];
      const b = grads.f32[name];
      let err = 0;
      let norm = 0;
      for (let i = 0; i < b.length; i++) {
        err += (a[i] / S - b[i]) ** 2;
        norm += b[i] ** 2;
      }
      errors.push(`${name} ${Math.sqrt(err / norm).toExponential(1)}`);
      expect(Math.sqrt(err / norm), name).toBeLessThan(1e-2);
    }
    console.log(`train f16: ‖dW/S − dW_f32‖/‖dW_f32‖: ${errors.join(', ')}`);
  });

  it('without shader-f16 it is an environment error (exit 4) naming the feature and the adapter', async () => {
    const attempt = GpuTrainer.create({ ...gpu, hasF16: false }, f16, 'zero-buffer');
    await expect(attempt).rejects.toMatchObject({ exitCode: 4, message: expect.stringContaining(`shader-f16 feature, which ${gpu.adapter.description} lacks`) });
  });

  it('the loss scale is a power of two near T, capped at 2^10, and 1 at f32', () => {
    expect(lossScale({ dtype: 'f32', tokens: 128 })).toBe(1);
    expect(lossScale({ dtype: 'f16', tokens: 128 })).toBe(128);
    expect(lossScale({ dtype: 'f16', tokens: 100 })).toBe(64);
    expect(lossScale({ dtype: 'f16', tokens: 1 })).toBe(1);
    expect(lossScale({ dtype: 'f16', tokens: 32768 })).toBe(1024);
  });
});
