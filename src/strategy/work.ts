import { countBlocks, metadataSizes, placeRows, scanCounts } from '../../kernels/routing/metadata.js';
import { routerBackward, routerInputGrad, routerLogits, routerTopK, routerWeightGrad } from '../../kernels/routing/router.js';
import type { LayerConfig } from '../config.js';
import { floatBytes } from '../f16.js';
import type { KernelWork } from './contract.js';

/**
 * Helpers for Strategy.work (the contract is documented there): the shared router's and routing
 * metadata's entries, and the expert MLP over materialised rows that MegaBlocks and the capacity
 * strategies share. Bytes follow docs/design.md#per-kernel-profile: every operand read once,
 * every output written once; index lists and router state are 4 bytes an element at any dtype.
 */
export const WORD = 4;

/** The sizes every estimate is written in. */
export interface WorkSizes {
  T: number;
  d: number;
  h: number;
  E: number;
  k: number;
  /** Routed pairs, T·k. */
  R: number;
  /** Bytes of a float element at the layer's dtype. */
  f: number;
  /** Up-projection matrices (W1, W3 for SwiGLU) and the hidden tensors they give (a, b). */
  up: number;
  /** Bytes of one expert matrix over all experts, E·d·h·f. */
  W: number;
}

export function workSizes(c: LayerConfig): WorkSizes {
  const f = floatBytes(c.dtype);
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
  return { T, d, h, E, k, R: T * k, f, up: c.activation === 'swiglu' ? 2 : 1, W: E * d * h * f };
}

/** An entry builder for one phase: `inPhase('forward', 'router')('router-topk', bytes)`. */
export function inPhase(pass: KernelWork['pass'], phase: string) {
  return (kernel: string, bytes: number, flops = 0): KernelWork => ({ kernel, pass, phase, flops, bytes });
}

/** The router's forward kernels (phase 'router'): logits = X·Wr + β, then softmax, top-k and gates. */
export function routerForwardWork(c: LayerConfig): KernelWork[] {
  const { T, d, E, k, f } = workSizes(c);
  const add = inPhase('forward', 'router');
  return [
    add(routerLogits(c.dtype).name, T * d * f + WORD * (d * E + T * E), 2 * T * d * E),
    add(routerTopK.name, WORD * (2 * T * E + 2 * T * k)),
  ];
}

/**
 * The router's backward kernels (phase 'router-grad'). dz reads each kept pair's gate gradient as
 * `dgParts` partial sums (zero-buffer's per column tile; one elsewhere), then dWr and the
 * router's share of dX.
 */
export function routerBackwardWork(c: LayerConfig, keptPairs: number, dgParts: number): KernelWork[] {
  const { T, d, E, R, f } = workSizes(c);
  const add = inPhase('backward', 'router-grad');
  const dense = 2 * T * d * E;
  return [
    // probs and dz [T,E]; expert ids, gates and pair rows [R]; the dg partial sums of kept pairs.
    add(routerBackward.name, WORD * (2 * T * E + 3 * R + keptPairs * dgParts)),
    add(routerWeightGrad(c.dtype).name, T * d * f + WORD * (T * E + d * E), dense),
    add(routerInputGrad(c.dtype).name, WORD * (T * E + d * E) + T * d * f, dense),
  ];
}

/** The atomic-free index lists (phase 'metadata'): count per token block, scan, stable placement. */
export function routingMetadataWork(c: LayerConfig): KernelWork[] {
  const { T, E, k, R } = workSizes(c);
  const m = metadataSizes(T, E, k);
  const offsets = m.expertOffsets + m.expertSlotOffsets + m.expertTileOffsets + m.slotTileOffsets;
  const add = inPhase('forward', 'metadata');
  return [
    add(countBlocks.name, WORD * (R + m.blockCounts)),
    add(scanCounts.name, WORD * (m.blockCounts + offsets)),
    // tokenExperts and blockCounts in; expertTokenIndices and tokenSlotMap out.
    add(placeRows.name, WORD * (3 * R + m.blockCounts)),
  ];
}

/** Kernel names of an expert MLP over materialised rows, forward and backward. */
export interface DenseExpertKernels {
  up: string;
  down: string;
  dW2: string;
  dU: string;
  actGrad: string;
  dW13: string;
  /** The gradient of the expert input rows: da·W1ᵀ (+ db·W3ᵀ). */
  dInput: string;
}

/** The phases those kernels run in. */
export interface DenseExpertPhases {
  up: string;
  down: string;
  downGrad: string;
  actGrad: string;
  upGrad: string;
}

/**
 * The expert MLP over `rows` materialised rows (padded bins, capacity slots) of which `keptPairs`
 * carry a routed pair: a, b and u written by the up-projection (u saved), Y by the down-projection;
 * in backward dW2 and dU from dY, the activation gradient, then dW1, dW3 and the input rows'
 * gradient. FLOPs count the kept pairs only; bytes count every row, padding included.
 */
export function denseExpertWork(c: LayerConfig, names: DenseExpertKernels, phases: DenseExpertPhases, rows: number, keptPairs: number): { forward: KernelWork[]; backward: KernelWork[] } {
  const { d, h, f, up, W } = workSizes(c);
  const P = rows;
  const useful = (matrices: number) => 2 * keptPairs * d * h * matrices;
  const hidden = P * h * f;
  return {
    forward: [
      // Writes a (and b, and silu(a), which autograd's mul keeps) and u.
      inPhase('forward', phases.up)(names.up, P * d * f + up * W + (2 * up) * hidden, useful(up)),
      inPhase('forward', phases.down)(names.down, hidden + W + P * d * f, useful(1)),
    ],
    backward: [
      inPhase('backward', phases.downGrad)(names.dW2, hidden + P * d * f + W, useful(1)),
      inPhase('backward', phases.downGrad)(names.dU, P * d * f + W + hidden, useful(1)),
      // dU, a (and b) in; da (and db) out.
      inPhase('backward', phases.actGrad)(names.actGrad, (2 * up + 1) * hidden),
      inPhase('backward', phases.upGrad)(names.dW13, P * d * f + up * hidden + up * W, useful(up)),
      inPhase('backward', phases.upGrad)(names.dInput, up * hidden + up * W + P * d * f, useful(up)),
    ],
  };
}

/** Σ bytes of the entries of one pass. */
export function passBytes(work: readonly KernelWork[], pass: KernelWork['pass']): number {
  return work.filter((w) => w.pass === pass).reduce((a, w) => a + w.bytes, 0);
}
