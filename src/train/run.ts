/**
 * `moeblaze train`: trains the model of src/train/model.ts with one or more dispatch strategies
 * on the same data and initial weights, and collects what the report shows.
 */
import type { BufferTag } from '../gpu/allocator.js';
import type { GpuContext } from '../gpu/runtime.js';
import type { Provenance } from '../measure/provenance.js';
import { lossScale, type TrainConfig } from './model.js';
import { stackMemory, type StackMemory } from './stack.js';
import { GpuTrainer, type TrainStepRecord } from './trainer.js';

export interface StrategyTraining {
  strategy: string;
  steps: TrainStepRecord[];
  firstLoss: number;
  /** Mean loss of the last min(10, steps) steps (single batches are noisy). */
  finalLoss: number;
  /** firstLoss / finalLoss */
  reduction: number;
  tokensPerSecond: number;
  peakBytes: number;
  peakByTag: Partial<Record<BufferTag, number>>;
  /** The L-layer step's peak, its prediction from the buffer tables, and bench's and plan's estimates (absent in train.json files from before --layers). */
  memory?: StackMemory;
  /** Pairs routed to each expert of layer 1 by the trained model on a fresh batch. */
  expertLoads: number[];
  /** The same for every layer, in model order. */
  expertLoadsByLayer: number[][];
  wallSeconds: number;
}

export interface TrainResult {
  /** config.dtype is the storage of activations, weights and gradients (f16: f32 master weights and Adam state). */
  config: TrainConfig;
  /** Static loss scale the gradients carried (1 at f32; see lossScale()). */
  lossScale: number;
  runs: StrategyTraining[];
  provenance?: Provenance;
}

export interface TrainProgress {
  strategy: string;
  record: TrainStepRecord;
  tokensPerSecond: number;
  total: number;
}

export function finalLoss(steps: readonly { loss: number }[]): number {
  const tail = steps.slice(-Math.min(10, steps.length));
  return tail.reduce((s, r) => s + r.loss, 0) / Math.max(tail.length, 1);
}

export async function trainStrategy(gpu: GpuContext, config: TrainConfig, strategy: string, onStep?: (p: TrainProgress) => void): Promise<StrategyTraining> {
  const trainer = await GpuTrainer.create(gpu, config, strategy);
  try {
    const steps: TrainStepRecord[] = [];
    let ms = 0;
    const started = performance.now();
    for (let s = 0; s < config.steps; s++) {
      const record = await trainer.step();
      if (!Number.isFinite(record.loss)) throw new Error(`${strategy}: the loss is ${record.loss} at step ${s}`);
      steps.push(record);
      ms += record.ms;
      onStep?.({ strategy, record, tokensPerSecond: (config.tokens * steps.length) / (ms / 1000), total: config.steps });
    }
    const wallSeconds = (performance.now() - started) / 1000;
    const memory = stackMemory(trainer, config, strategy);
    const expertLoadsByLayer = await trainer.expertLoads();
    const last = finalLoss(steps);
    return {
      strategy,
      steps,
      firstLoss: steps[0].loss,
      finalLoss: last,
      reduction: steps[0].loss / last,
      tokensPerSecond: (config.tokens * steps.length) / (ms / 1000),
      peakBytes: trainer.allocator.peakComposition.bytes,
      peakByTag: { ...trainer.memoryByTag },
      memory,
      expertLoads: expertLoadsByLayer[0],
      expertLoadsByLayer,
      wallSeconds,
    };
  } finally {
    trainer.destroy();
  }
}

export async function runTraining(gpu: GpuContext, config: TrainConfig, strategies: readonly string[], onStep?: (p: TrainProgress) => void): Promise<TrainResult> {
  const runs: StrategyTraining[] = [];
  for (const strategy of strategies) runs.push(await trainStrategy(gpu, config, strategy, onStep));
  return { config, lossScale: lossScale(config), runs };
}
