import { gemmGrid } from '../../kernels/gemm/core.js';
import { SEGMENT_TILE, type ReduceMode } from '../../kernels/gemm/tiling.js';
import type { DispatchBuffers, KernelSource } from '../../kernels/program.js';
import { encodeRowReduce } from './row-reduce.js';
import type { LayerConfig } from '../config.js';
import type { TrackedBuffer } from '../gpu/allocator.js';
import { chunkRowRange, type ChunkLayout, type Tensor } from '../gpu/tensor.js';
import type { StepContext } from '../strategy/contract.js';
import type { StepBuffers } from '../strategy/step-buffers.js';

/**
 * How zero-buffer's expert GEMMs are dispatched over chunked tensors: every (activation chunk,
 * weight chunk) pair is one dispatch, rows are tiled by expert segment (or by (expert, slot) in
 * the slot passes, or in bounded scratch-row blocks), and weight gradients are stored by the first
 * activation chunk and added by the others. Idle tiles exit at once.
 */
export class ExpertPasses {
  constructor(
    private readonly c: LayerConfig,
    /** The runner's buffers: the scratch rows come from its table, and a's layout fixes the activation chunks. */
    private readonly buffers: StepBuffers,
  ) {}

  /** The layout of the [R,h] activations (a), which fixes the activation chunks. */
  private hidden(): ChunkLayout {
    return this.buffers.layoutOf('a');
  }

  /** One dispatch per (activation chunk, weight chunk) pair; idle tiles exit at once. */
  private async perChunk(step: StepContext, weights: Tensor, run: (ac: number, wc: number, rows: { start: number; count: number }, experts: { start: number; count: number }) => Promise<void>) {
    const hidden = this.hidden();
    for (let ac = 0; ac < hidden.chunkCount; ac++) {
      for (let wc = 0; wc < weights.chunks.length; wc++) {
        await run(ac, wc, chunkRowRange(hidden, ac), chunkRowRange(weights.layout, wc));
      }
    }
  }

  private rowsParams(rows: { start: number; count: number }, experts: { start: number; count: number }, extra: Record<string, number>) {
    const { hidden: d, ffn: h, topK: k, experts: E } = this.c;
    return {
      segCount: E,
      segBegin: experts.start,
      segEnd: experts.start + experts.count,
      rowBegin: rows.start,
      rowEnd: rows.start + rows.count,
      d,
      h,
      k,
      expertBase: experts.start,
      rowChunkBase: rows.start,
      slot: 0,
      ...extra,
    };
  }

  async segments(step: StepContext, source: KernelSource, weights: Tensor, N: number, K: number, buffers: (ac: number, wc: number) => DispatchBuffers, extra: Record<string, number> = {}) {
    const R = this.c.tokens * this.c.topK;
    const maxTiles = Math.ceil(R / SEGMENT_TILE.m) + this.c.experts;
    await this.perChunk(step, weights, (ac, wc, rows, experts) =>
      step.enc.dispatch({
        source,
        params: this.rowsParams(rows, experts, { N, K, rowBase: 0, rowStride: 1, tileBase: 0, ...extra }),
        buffers: buffers(ac, wc),
        workgroups: gemmGrid({ rowTiles: maxTiles }, N),
      }),
    );
  }

  /** The slot-by-slot passes: in pass s every token has at most one row, so token-row writes never collide. */
  async slotPasses(step: StepContext, source: KernelSource, weights: Tensor, N: number, K: number, buffers: (ac: number, wc: number) => DispatchBuffers) {
    const { tokens: T, experts: E, topK: k } = this.c;
    const maxTiles = Math.ceil(T / SEGMENT_TILE.m) + E;
    for (let s = 0; s < k; s++) {
      await this.perChunk(step, weights, (ac, wc, rows, experts) =>
        step.enc.dispatch({
          source,
          params: this.rowsParams(rows, experts, { N, K, rowBase: s, rowStride: k, tileBase: s * (E + 1), slot: s }),
          buffers: buffers(ac, wc),
          workgroups: gemmGrid({ rowTiles: maxTiles }, N),
        }),
      );
    }
  }

  /**
   * The 'rows' target (table.ts rowTarget): per activation chunk, blocks of at most
   * scratchRows rows; a block's expert-major tiles write its rows for every weight chunk, then
   * row-reduce adds them into the token rows of `out`. Bounded scratch, never an [R,d] buffer.
   */
  async rowBlocks(step: StepContext, name: string, out: Tensor, tokenSlotMap: TrackedBuffer, source: KernelSource, weights: Tensor, N: number, K: number, buffers: (ac: number, wc: number, scratch: TrackedBuffer) => DispatchBuffers) {
    const { tokens: T, hidden: d, experts: E, topK: k } = this.c;
    const [scratch] = this.buffers.alloc(step, name);
    const block = scratch.layout.rows;
    const maxTiles = Math.ceil((T * k) / SEGMENT_TILE.m) + E;
    const hidden = this.hidden();
    for (let ac = 0; ac < hidden.chunkCount; ac++) {
      const rows = chunkRowRange(hidden, ac);
      for (let r0 = rows.start; r0 < rows.start + rows.count; r0 += block) {
        const r1 = Math.min(r0 + block, rows.start + rows.count);
        for (let wc = 0; wc < weights.chunks.length; wc++) {
          await step.enc.dispatch({
            source,
            params: this.rowsParams(rows, chunkRowRange(weights.layout, wc), { N, K, rowBase: 0, rowStride: 1, tileBase: 0, rowBegin: r0, rowEnd: r1 }),
            buffers: buffers(ac, wc, scratch.chunks[0]),
            workgroups: gemmGrid({ rowTiles: maxTiles }, N),
          });
        }
        await encodeRowReduce(step.enc, this.c.dtype, { tokens: T, hidden: d, topK: k, rowBegin: r0, rowEnd: r1 }, { tokenSlotMap, rows: scratch.chunks[0], out: out.chunks[0] });
      }
    }
    this.buffers.free(step, name);
  }

  /** Weight gradients: the first activation chunk stores each expert's tiles, later ones add. */
  async reduceSegments(step: StepContext, source: Record<ReduceMode, KernelSource>, weights: Tensor, M: number, N: number, buffers: (ac: number, wc: number) => DispatchBuffers) {
    await this.perChunk(step, weights, (ac, wc, rows, experts) =>
      step.enc.dispatch({
        source: source[ac === 0 ? 'store' : 'add'],
        params: this.rowsParams(rows, experts, { M, N, rowBase: 0, rowStride: 1 }),
        buffers: buffers(ac, wc),
        workgroups: gemmGrid({ M }, N, experts.count),
      }),
    );
  }
}
