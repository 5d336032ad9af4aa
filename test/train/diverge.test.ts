import { afterAll, describe, expect, it } from 'vitest';
import { trainConfig } from '../../src/train/model.js';
import { divergenceMessages, runTraining } from '../../src/train/run.js';
import { renderTrainSummary } from '../../src/render/train.js';
import { testGpu } from '../helpers/gpu.js';

/* Issue 28, item 8: `train --lr 1e30` is a run that diverged, reported with its step, not "internal error: loss is NaN". */

afterAll(async () => (await testGpu()).destroy());

describe('a diverged training run', () => {
  it('stops at the first non-finite loss and reports that step; the steps before it are kept', async () => {
    const config = trainConfig({ lr: 1e30, steps: 8, tokens: 32, inputDim: 8, hidden: 8, ffn: 8, experts: 4, topK: 2, outputDim: 4 });
    const result = await runTraining(await testGpu(), config, ['zero-buffer']);
    const [run] = result.runs;
    expect(run.diverged, 'a learning rate of 1e30 diverges within 8 steps').toBeDefined();
    const { step, loss } = run.diverged!;
    expect(loss).toMatch(/^(NaN|-?Infinity)$/);
    expect(run.steps).toHaveLength(step);
    expect(run.steps.every((s) => Number.isFinite(s.loss))).toBe(true);
    expect(run.expertLoads).toEqual([]);
    expect(divergenceMessages(result)).toEqual([`zero-buffer diverged at step ${step}: the loss is ${loss} (lr 1e+30); try a smaller --lr`]);
    expect(renderTrainSummary(result)).toContain(`zero-buffer: DIVERGED at step ${step} (loss ${loss})`);
    // train.json keeps it: the step and the value survive JSON.
    expect(JSON.parse(JSON.stringify(result)).runs[0].diverged).toEqual({ step, loss });
  });
});
