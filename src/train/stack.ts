/**
 * The memory of an L-layer training run measured (src/train/trainer.ts) next to the two L-layer
 * estimates moeblaze makes without running L layers (docs/design.md#memory): bench's
 * L × saved for backward + backward transient, from one layer's step, and plan's model (weights,
 * gradients, Adam state, saved for backward, layer inputs, transient) at its expected routing.
 */
import { planModel } from '../plan/model.js';
import { findStrategy } from '../registry.js';
import { stackFigures, tableFigures } from '../strategy/buffer-table.js';
import { moeConfig, type TrainConfig } from './model.js';
import type { GpuTrainer } from './trainer.js';

export interface StackMemory {
  layers: number;
  /** Bytes live when a step starts: every weight, gradient and Adam state, each layer's X and dO, the dense layers' buffers. */
  baseline: number;
  /** The most bytes live in any step, measured by the allocator. */
  stepPeak: number;
  /** The same as the strategy's buffer tables predict it at each step's routing (stackFigures): equal to stepPeak. */
  tablePeak: number;
  /** Where the predicted peak is (layer 1..L, phase of its table), in the step of the largest peak. */
  peakLayer: number;
  peakPhase: string;
  /** stepPeak − baseline. */
  activationPeak: number;
  /** bench's L-layer estimate (L × saved for backward + backward transient) from layer 1's table in that step: compare with activationPeak. */
  benchEstimate: number;
  /** stepPeak less the dense layers around the MoE stack (W_in, W_out, their gradients and Adam state, x, y*, r, y, dY, dZ): what plan models. */
  moePeak: number;
  /** plan's estimate for the same shape, dtype and L with Adam (`plan --optimizer adam`), at its expected routing: compare with moePeak. */
  planEstimate: number;
}

/** The run's stack memory; call after at least one step. */
export function stackMemory(trainer: GpuTrainer, c: TrainConfig, strategy: string): StackMemory {
  const peak = trainer.peakStep;
  if (!peak) throw new Error('stackMemory: no step has run');
  const stack = stackFigures(peak.tables);
  const baseline = peak.baselineBytes;
  const stepPeak = trainer.allocator.peakComposition.bytes;
  // bench's definition: what one layer's step saves, L times, plus its peak above that once.
  const one = tableFigures(peak.tables[0]);
  const plan = planModel({ config: moeConfig(c), layers: c.layers, dtype: c.dtype, optimizer: 'adam', expertParallel: 1, memory: null, strategies: [findStrategy(strategy)] });
  return {
    layers: c.layers,
    baseline,
    stepPeak,
    tablePeak: peak.tablePeakBytes,
    peakLayer: stack.peakLayer + 1,
    peakPhase: stack.peakPhase,
    activationPeak: stepPeak - baseline,
    benchEstimate: c.layers * one.savedForBackward + (one.activationPeak - one.savedForBackward),
    moePeak: stepPeak - trainer.denseBytes,
    planEstimate: plan.strategies[0].estimate.total,
  };
}
