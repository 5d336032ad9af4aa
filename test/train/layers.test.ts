import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu.js';
import { floatBytes } from '../../src/f16.js';
import type { GpuContext } from '../../src/gpu/runtime.js';
import { STRATEGIES } from '../../src/registry.js';
import { stackFigures, tableFigures } from '../../src/strategy/buffer-table.js';
import { trainConfig, type TrainConfig } from '../../src/train/model.js';
import { referenceTraining } from '../../src/train/reference.js';
import { finalLoss, trainStrategy, type StrategyTraining } from '../../src/train/run.js';
import { GpuTrainer, type TrainStepRecord } from '../../src/train/trainer.js';

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

/** `train --layers L`: L MoE layers with residuals on one allocator, the step's peak measured and predicted. */
describe('train --layers', () => {
  let gpu: GpuContext;
  const four: TrainConfig = trainConfig({ layers: 4, steps: 30, seed: 2 });
  const runs = new Map<string, StrategyTraining>();

  beforeAll(async () => {
    gpu = await testGpu();
    for (const s of STRATEGIES) runs.set(s.id, await trainStrategy(gpu, four, s.id));
  }, 600_000);
  afterAll(() => gpu?.destroy());

  const expectStepsOnTable = (strategy: string, steps: TrainStepRecord[]) => {
    for (const s of steps) expect(s.stepPeakBytes, `${strategy} step ${s.step}`).toBe(s.tablePeakBytes);
    expect(steps.at(-1)!.peakBytes, `${strategy}: the peak since the model was built`).toBe(Math.max(...steps.map((s) => s.tablePeakBytes)));
  };

  for (const strategy of STRATEGIES.map((s) => s.id)) {
    it(`${strategy}, L = 4: every step's peak equals the buffer tables' stack to the byte, and the loss falls`, () => {
      const run = runs.get(strategy)!;
      expectStepsOnTable(strategy, run.steps);
      const m = run.memory!;
      expect(m.layers).toBe(4);
      expect(m.stepPeak).toBe(run.peakBytes);
      expect(m.tablePeak).toBe(m.stepPeak);
      expect(m.peakLayer).toBe(4);
      console.log(`train --layers 4 ${strategy}: loss ${run.firstLoss.toFixed(3)} → ${run.finalLoss.toFixed(3)}; peak ${m.stepPeak} B, bench ${m.benchEstimate} (activation ${m.activationPeak}), plan ${m.planEstimate} (MoE part ${m.moePeak})`);
      expect(run.finalLoss).toBeLessThan(run.firstLoss / 2);
      expect(run.expertLoadsByLayer).toHaveLength(4);
      for (const loads of run.expertLoadsByLayer) expect(loads.reduce((a, b) => a + b, 0)).toBe(four.tokens * four.topK);
    });
  }

  it('L = 4, zero-buffer: the gaps to bench and plan are exactly what the stack holds beyond their models', () => {
    // Zero-buffer's table does not depend on routing, so plan's expected routing is the real one:
    // the gaps are each lower layer's output O (held until its backward) and, for plan, its own dO.
    const m = runs.get('zero-buffer')!.memory!;
    const rows = four.tokens * four.hidden * floatBytes(four.dtype);
    expect(m.activationPeak - m.benchEstimate).toBe(3 * rows);
    expect(m.moePeak - m.planEstimate).toBe(3 * 2 * rows);
  });

  it('L = 4: the first steps match the float64 4-layer training loop within 1e-4 (every strategy: nothing is dropped)', () => {
    const ref = referenceTraining(four, 5);
    for (const [strategy, run] of runs) {
      for (let s = 0; s < ref.length; s++) expect(rel(run.steps[s].loss, ref[s].loss), `${strategy} step ${s}`).toBeLessThan(1e-4);
    }
  });

  it('L = 2 with the load-balancing loss: every layer adds its own, as in the float64 loop', async () => {
    const c = trainConfig({ layers: 2, steps: 3, seed: 5, auxLoss: 0.01 });
    const ref = referenceTraining(c, 3);
    const got = await trainStrategy(gpu, c, 'zero-buffer');
    for (let s = 0; s < 3; s++) {
      expect(rel(got.steps[s].aux, ref[s].aux), `aux at step ${s}`).toBeLessThan(1e-4);
      expect(rel(got.steps[s].loss, ref[s].loss), `loss at step ${s}`).toBeLessThan(1e-4);
    }
  });

  it('L = 1 is the one-layer model: its peak is one layer\'s buffer table plus the model\'s own buffers, every strategy', async () => {
    const one = trainConfig({ steps: 3, seed: 2 });
    expect(one.layers).toBe(1);
    for (const strategy of STRATEGIES.map((s) => s.id)) {
      const trainer = await GpuTrainer.create(gpu, one, strategy);
      try {
        const steps: TrainStepRecord[] = [];
        for (let s = 0; s < one.steps; s++) steps.push(await trainer.step());
        expectStepsOnTable(strategy, steps);
        const [table] = trainer.peakStep!.tables;
        expect(stackFigures([table]).stepPeak).toBe(tableFigures(table).stepPeak);
        expect(trainer.allocator.peakComposition.bytes, strategy).toBe(tableFigures(table).stepPeak + trainer.ownBytes);
        expect(trainer.peakStep!.baselineBytes).toBe(tableFigures(table).baseline + trainer.ownBytes);
      } finally {
        trainer.destroy();
      }
    }
    // bench's L-layer estimate at L = 1 is the measured activation peak itself.
    const run = await trainStrategy(gpu, trainConfig({ steps: 2, seed: 2 }), 'zero-buffer');
    expect(run.memory!.benchEstimate).toBe(run.memory!.activationPeak);
  });
});
