import { beforeAll, describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.js';
import { trainConfig, type TrainConfig } from '../../src/train/model.js';
import { linearBaselineMse, referenceTraining } from '../../src/train/reference.js';
import { finalLoss, trainStrategy, type StrategyTraining } from '../../src/train/run.js';
import { GpuTrainer } from '../../src/train/trainer.js';
import type { GpuContext } from '../../src/gpu/runtime.js';
import { STRATEGIES } from '../../src/registry.js';

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('train: a small MoE model with Adam on the GPU', () => {
  let gpu: GpuContext;
  const config: TrainConfig = trainConfig({ steps: 300, seed: 3 });
  let zero: StrategyTraining;
  let grouped: StrategyTraining;

  beforeAll(async () => {
    gpu = await testGpu();
    zero = await trainStrategy(gpu, config, 'zero-buffer');
    grouped = await trainStrategy(gpu, config, 'megablocks-grouped');
  }, 300_000);

  it('the loss falls by at least 10× within 300 steps', () => {
    expect(zero.firstLoss / finalLoss(zero.steps)).toBeGreaterThan(10);
    expect(grouped.firstLoss / finalLoss(grouped.steps)).toBeGreaterThan(10);
    console.log(`train: zero-buffer ${zero.firstLoss} → ${zero.finalLoss}, megablocks-grouped ${grouped.firstLoss} → ${grouped.finalLoss}`);
  });

  it('the task needs the experts: the trained loss is far below the best linear map', () => {
    const linear = linearBaselineMse(config);
    console.log(`train: best linear map MSE ${linear}, trained ${zero.finalLoss}`);
    expect(zero.finalLoss).toBeLessThan(0.5 * linear);
  });

  it('the first steps match a float64 CPU training loop within 1e-4 relative', () => {
    const ref = referenceTraining(config, 5);
    console.log('train: f64 vs GPU', ref.map((r, s) => rel(zero.steps[s].loss, r.loss)));
    for (let s = 0; s < ref.length; s++) expect(rel(zero.steps[s].loss, ref[s].loss), `step ${s}`).toBeLessThan(1e-4);
  });

  it('every strategy\'s first losses match the float64 loop within 1e-4 (capacity strategies at cf = 0 drop nothing)', async () => {
    const ref = referenceTraining(config, 5);
    const short = trainConfig({ ...config, steps: 5 });
    for (const strategy of STRATEGIES.map((s) => s.id)) {
      const run = strategy === 'zero-buffer' ? zero : strategy === 'megablocks-grouped' ? grouped : await trainStrategy(gpu, short, strategy);
      for (let s = 0; s < ref.length; s++) expect(rel(run.steps[s].loss, ref[s].loss), `${strategy} step ${s}`).toBeLessThan(1e-4);
    }
  });

  it('zero-buffer and megablocks-grouped agree: first 20 steps within 1e-4, final loss within 5%', () => {
    console.log('train: max rel diff over 20 steps', Math.max(...zero.steps.slice(0, 20).map((z, s) => rel(grouped.steps[s].loss, z.loss))));
    for (let s = 0; s < 20; s++) expect(rel(grouped.steps[s].loss, zero.steps[s].loss), `step ${s}`).toBeLessThan(1e-4);
    expect(rel(grouped.finalLoss, zero.finalLoss)).toBeLessThan(0.05);
  });

  it('Adam state is tracked under the optimizer tag: 2 × the parameters', () => {
    const c = config;
    const params = c.inputDim * c.hidden + c.hidden * c.outputDim + c.hidden * c.experts + 3 * c.experts * c.hidden * c.ffn;
    expect(zero.peakByTag.optimizer).toBe(2 * 4 * params);
    expect(zero.expertLoads.reduce((a, b) => a + b, 0)).toBe(c.tokens * c.topK);
  });

  it('two runs with the same seed are bitwise identical (losses and weights)', async () => {
    const c = trainConfig({ steps: 15, seed: 11 });
    const runs: { losses: number[]; weights: Record<string, Float32Array> }[] = [];
    for (let r = 0; r < 2; r++) {
      const trainer = await GpuTrainer.create(gpu, c, 'zero-buffer');
      try {
        const losses: number[] = [];
        for (let s = 0; s < c.steps; s++) losses.push((await trainer.step()).loss);
        runs.push({ losses, weights: await trainer.readWeights() });
      } finally {
        trainer.destroy();
      }
    }
    expect(runs[1].losses).toEqual(runs[0].losses);
    for (const [name, w] of Object.entries(runs[0].weights)) {
      expect(Buffer.from(runs[1].weights[name].buffer).equals(Buffer.from(w.buffer)), name).toBe(true);
    }
    // A different seed trains differently.
    expect(zero.steps[0].loss).not.toBe(runs[0].losses[0]);
  });

  it('with the load-balancing loss (α = 0.01) the GPU matches the float64 loop, aux included', async () => {
    const c = trainConfig({ steps: 4, seed: 5, auxLoss: 0.01 });
    const ref = referenceTraining(c, 4);
    const got = await trainStrategy(gpu, c, 'zero-buffer');
    for (let s = 0; s < 4; s++) {
      expect(got.steps[s].aux).toBeGreaterThan(0);
      expect(rel(got.steps[s].aux, ref[s].aux), `aux at step ${s}`).toBeLessThan(1e-4);
      expect(rel(got.steps[s].loss, ref[s].loss), `loss at step ${s}`).toBeLessThan(1e-4);
    }
  });
});
