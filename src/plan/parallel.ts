import type { LayerConfig } from '../config.js';
import { floatBytes } from '../f16.js';
import type { LayerMemory, ParallelExtra, PlanDType } from './memory.js';
import type { ExpectedRouting } from './routing.js';
import { maxOf } from '../arrays.js';

/**
 * Expert parallelism over N GPUs, modelled (never executed): experts split evenly, E/N a GPU
 * in order (GPU g owns experts g·E/N … (g+1)·E/N − 1), the router replicated, every GPU
 * routing its own micro-batch of T tokens. Each layer runs four all-to-alls a step: dispatch and
 * combine forward, and their gradients backward, each moving the same rows of d elements.
 * What a strategy sends: capacity strategies their E·C slots, padding included (Tutel and
 * GShard exchange the [E,C,d] grid); dropless ones their kept pairs (MegaBlocks pads after the
 * exchange; zero-buffer sends the gathered rows of the kept pairs only).
 */
export interface AllToAll {
  gpus: number;
  /** Rows each GPU puts into one all-to-all (its own share included). */
  rowsPerGpu: number;
  /** Fraction of them that leaves the GPU: (N − 1)/N on average for any routing. */
  remoteFraction: number;
  /** Bytes one GPU sends per step, per all-to-all. */
  bytes: { dispatchForward: number; combineForward: number; dispatchBackward: number; combineBackward: number; total: number };
  /** Rows the busiest GPU receives from the others in one all-to-all (skew makes one GPU hot). */
  maxReceivedRows: number;
  /** Same, averaged over the GPUs. */
  meanReceivedRows: number;
}

export function allToAll(c: LayerConfig, dtype: PlanDType, gpus: number, routing: ExpectedRouting): AllToAll {
  const { tokens: T, hidden: d, experts: E } = c;
  const perGpu = E / gpus;
  const capacity = routing.capacity;
  const kept = 1 - routing.droppedFraction;
  const rows = capacity === null ? T * c.topK * kept : E * capacity;
  const remote = (gpus - 1) / gpus;
  const bytes = Math.round(rows * remote * d * floatBytes(dtype));
  // GPU g receives from each of the other N − 1 GPUs the rows bound for its experts.
  const received = Array.from({ length: gpus }, (_, g) => {
    if (capacity !== null) return (gpus - 1) * perGpu * capacity;
    let share = 0;
    for (let e = g * perGpu; e < (g + 1) * perGpu; e++) share += routing.expertLoads[e] * kept;
    return (gpus - 1) * share;
  });
  return {
    gpus,
    rowsPerGpu: rows,
    remoteFraction: remote,
    bytes: { dispatchForward: bytes, combineForward: bytes, dispatchBackward: bytes, combineBackward: bytes, total: 4 * bytes },
    maxReceivedRows: maxOf(received),
    meanReceivedRows: received.reduce((a, b) => a + b, 0) / gpus,
  };
}

/**
 * Memory expert parallelism adds to a layer, per GPU: the send and receive buffers of one
 * all-to-all (rows × d each, live around the exchange; counted once on top of the layer's
 * peak, which overstates it when the peak is elsewhere), and, for a strategy that gathers its
 * expert inputs straight from X (zero-buffer), the received rows kept for the backward pass,
 * since the weight gradients need them and X is no longer on the expert's GPU.
 */
export function parallelExtra(m: LayerMemory, a: AllToAll, c: LayerConfig, dtype: PlanDType): ParallelExtra {
  const rowBytes = Math.ceil((a.rowsPerGpu * c.hidden * floatBytes(dtype)) / 4) * 4;
  return { savedPerLayer: m.gathersFromInput ? rowBytes : 0, transient: 2 * rowBytes };
}
