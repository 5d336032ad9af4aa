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
  /**
   * Set when the loss stopped being finite (a learning rate too large, say): the step where it did
   * and the value ("NaN", "Infinity"). Training stopped there; the steps before it are kept, and
   * the expert loads of a model with non-finite weights are not read (empty).
   */
  diverged?: { step: number; loss: string };
  /** Pairs routed to each expert of layer 1 by the trained model on a fresh batch. */
  expertLoads: number[];
  /** The same for every layer, in model order. */
  expertLoadsByLayer: number[][];
  wallSeconds: number;
  /** Pairs routed over the run, every step and layer, and how many capacity dropped (0 for dropless strategies or cf 0). */
  drops?: TrainDrops;
}

export interface TrainDrops {
  pairs: number;
  dropped: number;
  /** dropped / pairs × 100 */
  percent: number;
  /** Steps in which at least one pair was dropped. */
  steps: number;
}

export function trainDrops(steps: readonly Pick<TrainStepRecord, 'pairs' | 'droppedPairs'>[]): TrainDrops {
  const pairs = steps.reduce((a, s) => a + s.pairs, 0);
  const dropped = steps.reduce((a, s) => a + s.droppedPairs, 0);
  return { pairs, dropped, percent: pairs ? (100 * dropped) / pairs : 0, steps: steps.filter((s) => s.droppedPairs > 0).length };
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
    let diverged: StrategyTraining['diverged'];
    for (let s = 0; s < config.steps; s++) {
      const record = await trainer.step();
      // A diverged run is a result (the step where it happened), not an internal error.
      if (!Number.isFinite(record.loss)) {
        diverged = { step: s, loss: String(record.loss) };
        break;
      }
      steps.push(record);
      ms += record.ms;
      onStep?.({ strategy, record, tokensPerSecond: (config.tokens * steps.length) / (ms / 1000), total: config.steps });
    }
    const wallSeconds = (performance.now() - started) / 1000;
    const memory = stackMemory(trainer, config, strategy);
    const expertLoadsByLayer = diverged ? [] : await trainer.expertLoads();
    const last = steps.length ? finalLoss(steps) : Number.NaN;
    const first = steps[0]?.loss ?? Number.NaN;
    return {
      strategy,
      steps,
      ...(diverged && { diverged }),
      firstLoss: first,
      finalLoss: last,
      reduction: first / last,
      tokensPerSecond: steps.length ? (config.tokens * steps.length) / (ms / 1000) : 0,
      peakBytes: trainer.allocator.peakComposition.bytes,
      peakByTag: { ...trainer.memoryByTag },
      memory,
      expertLoads: expertLoadsByLayer[0] ?? [],
      expertLoadsByLayer,
      wallSeconds,
      drops: trainDrops(steps),
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

/** One line per run that diverged, for stderr and the exit code (3: the run produced no usable model). */
export function divergenceMessages(result: TrainResult): string[] {
  return result.runs.filter((r) => r.diverged).map((r) => `${r.strategy} diverged at step ${r.diverged!.step}: the loss is ${r.diverged!.loss} (lr ${result.config.lr}); try a smaller --lr`);
}
