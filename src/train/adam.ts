/**
 * Adam's state for the GPU trainer (src/train/trainer.ts): f32 moments per parameter and, for a
 * weight stored below f32, an f32 master copy (mixed precision), all under the allocator's
 * 'optimizer' tag; and the update, dispatched per overlap of weight and state chunks.
 */
import type { StepEncoder } from '../../kernels/program.js';
import { encodeAdam, type AdamParams } from '../../kernels/train.js';
import type { DType } from '../config.js';
import type { BufferTag } from '../gpu/allocator.js';
import { chunkLayout, chunkRowRange, type ChunkLayout, type Tensor } from '../gpu/tensor.js';

/** One parameter tensor and what Adam keeps for it. */
export interface ParamState {
  name: string;
  /** Storage of w and g. */
  dtype: DType;
  /** The weight the forward reads and its gradient: at the model's dtype, but Wr is f32 at any. */
  w: Tensor;
  g: Tensor;
  /** f32 moments and (below f32 storage) the f32 master weight, flat vectors of w's elements. */
  m: Tensor;
  v: Tensor;
  master: Tensor | null;
}

/**
 * Adam's state for weight `w` (gradient `g`). Adam is elementwise: its f32 state is a flat vector,
 * chunked on its own (encodeParamUpdate walks the overlaps with the weight's chunks, which hold
 * whole experts at the dtype).
 */
export function adamState(name: string, w: Tensor, g: Tensor, dtype: DType, chunkBytes: number, alloc: (name: string, tag: BufferTag, layout: ChunkLayout) => Tensor): ParamState {
  const state = chunkLayout(w.layout.rows * w.layout.cols, 1, 4, chunkBytes);
  const m = alloc(`adam.m.${name}`, 'optimizer', state);
  const v = alloc(`adam.v.${name}`, 'optimizer', state);
  // A weight stored at f32 (any weight at f32; the router's Wr at any dtype) is its own master.
  const master = w.layout.elementBytes === 4 ? null : alloc(`master.${name}`, 'optimizer', state);
  return { name, dtype: master ? dtype : 'f32', w, g, m, v, master };
}

/** Element range [begin, end) of each chunk of a row-chunked tensor, in the whole tensor. */
function elementRanges(layout: ChunkLayout): [number, number][] {
  return Array.from({ length: layout.chunkCount }, (_, c) => {
    const { start, count } = chunkRowRange(layout, c);
    return [start * layout.cols, (start + count) * layout.cols];
  });
}

/** Adam over one parameter: a dispatch per overlap of a weight chunk with a state chunk. */
export async function encodeParamUpdate(enc: StepEncoder, p: ParamState, hyper: AdamParams): Promise<void> {
  const weightRanges = elementRanges(p.w.layout);
  const stateRanges = elementRanges(p.m.layout);
  for (const [k, [w0, w1]] of weightRanges.entries()) {
    for (const [s, [s0, s1]] of stateRanges.entries()) {
      const lo = Math.max(w0, s0);
      const hi = Math.min(w1, s1);
      if (hi <= lo) continue;
      const buffers = { w: p.w.chunks[k], g: p.g.chunks[k], m: p.m.chunks[s], v: p.v.chunks[s], ...(p.master && { master: p.master.chunks[s] }) };
      await encodeAdam(enc, p.dtype, buffers, hi - lo, lo - w0, lo - s0, hyper);
    }
  }
}
