import type { LayerConfig } from '../config.js';
import { floatBytes } from '../f16.js';
import type { KernelWork } from './contract.js';

/** Kernel names of one strategy's six expert GEMMs, forward and backward. */
export interface ExpertGemmNames {
  up: string;
  down: string;
  dW2: string;
  dU: string;
  dW13: string;
  dX: string;
}

/**
 * Work of the expert GEMMs of a strategy that computes `rows` rows per weight pass (padded bins,
 * capacity slots) of which `keptPairs` carry a routed pair. FLOPs count only the kept pairs, the
 * same useful FLOPs as every strategy's (padding and empty slots are the strategy's own waste);
 * bytes count what the kernel touches, padding included: operands read once, outputs written
 * once, weight gradients read and written. `m` is 2 for SwiGLU's two up-projections, else 1.
 */
export function expertGemmWork(c: LayerConfig, names: ExpertGemmNames, rows: number, keptPairs: number): Record<string, KernelWork> {
  const { hidden: d, ffn: h, experts: E } = c;
  const m = c.activation === 'swiglu' ? 2 : 1;
  const f = floatBytes(c.dtype);
  const R = keptPairs;
  return {
    [names.up]: { flops: 2 * R * d * h * m, bytes: f * (rows * d + E * d * h * m + rows * h * m) },
    [names.down]: { flops: 2 * R * h * d, bytes: f * (rows * h + E * h * d + rows * d) },
    [names.dW2]: { flops: 2 * R * h * d, bytes: f * (rows * h + rows * d + 2 * E * h * d) },
    [names.dU]: { flops: 2 * R * d * h, bytes: f * (rows * d + E * h * d + rows * h) },
    [names.dW13]: { flops: 2 * R * d * h * m, bytes: f * (rows * d + rows * h * m + 2 * E * d * h * m) },
    [names.dX]: { flops: 2 * R * h * m * d, bytes: f * (rows * h * m + E * d * h * m + rows * d) },
  };
}

/** MegaBlocks' kernels (sparse and grouped share them). */
export function megablocksGemmNames(c: LayerConfig): ExpertGemmNames {
  const glu = c.activation === 'swiglu' ? 'swiglu' : 'plain';
  return { up: `mb-up-${c.activation}`, down: 'mb-down', dW2: 'mb-dW2', dU: 'mb-dU', dW13: `mb-dW13-${glu}`, dX: `mb-dXp-${glu}` };
}

/** Tutel's and GShard's expert kernels over the [E,C,·] slots. */
export function capacityGemmNames(c: LayerConfig): ExpertGemmNames {
  const glu = c.activation === 'swiglu' ? 'swiglu' : 'plain';
  return { up: `capacity-up-${c.activation}`, down: 'capacity-down', dW2: 'capacity-dW2', dU: 'capacity-dU', dW13: `capacity-dW13-${glu}`, dX: `capacity-dDispatched-${glu}` };
}

/**
 * GShard's einsums over the dense [T,E,C] mask and weights: the dispatch and combine as GEMMs.
 * They do no useful FLOPs (they move rows, which the others do by index), so only bytes count.
 */
export function einsumWork(c: LayerConfig, capacity: number): Record<string, KernelWork> {
  const { tokens: T, hidden: d, experts: E } = c;
  const f = floatBytes(c.dtype);
  const slots = E * capacity;
  return {
    'gshard-dispatch': { flops: 0, bytes: T * slots + f * (T * d + slots * d) },
    'gshard-combine': { flops: 0, bytes: f * (T * slots + slots * d + T * d) },
    'gshard-combine-dY': { flops: 0, bytes: f * (T * slots + T * d + slots * d) },
    'gshard-combine-dWeights': { flops: 0, bytes: f * (T * d + slots * d + T * slots) },
    'gshard-dispatch-dX': { flops: 0, bytes: T * slots + f * (slots * d + T * d) },
  };
}
