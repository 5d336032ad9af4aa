import { gemmGrid } from '../../kernels/gemm/core.js';
import { type ReduceMode } from '../../kernels/gemm/tiling.js';
import { paddedGather, paddedScatter, sumTopK, sumTopKGroups } from './permute.js';
import { grid, MAX_WORKGROUPS_PER_DIM, type Dispatch, type DispatchBuffers, type KernelSource } from '../../kernels/program.js';
import type { LayerConfig } from '../../src/config.js';
import type { TrackedBuffer } from '../../src/gpu/allocator.js';
import { chunkRowRange, type Tensor } from '../../src/gpu/tensor.js';
import type { StepContext } from '../../src/strategy/contract.js';
import { megablocksLayouts, tableForRows, type MegaBlocksMode } from './table.js';
import { StepBuffers } from '../../src/strategy/step-buffers.js';

type Range = { start: number; count: number };
type Chunks = (ac: number, wc: number) => DispatchBuffers;

/** Copies `count` u32 at element `first` of a buffer to the host: a mid-step sync, as in MegaBlocks. */
export async function readU32(step: StepContext, buffer: TrackedBuffer, first: number, count: number): Promise<Uint32Array> {
  step.enc.flush();
  const allocator = step.kernels.allocator;
  const staging = allocator.create(`${buffer.name}:readback`, 'readback', count * 4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, { bound: false });
  try {
    const encoder = allocator.device.createCommandEncoder({ label: `readback ${buffer.name}` });
    encoder.copyBufferToBuffer(buffer.buffer, first * 4, staging.buffer, 0, count * 4);
    allocator.device.queue.submit([encoder.finish()]);
    await staging.buffer.mapAsync(GPUMapMode.READ);
    const out = new Uint32Array(staging.buffer.getMappedRange().slice(0));
    staging.buffer.unmap();
    return out;
  } finally {
    allocator.free(staging);
  }
}

/**
 * The buffers of one MegaBlocks layer and the dispatch loops over their chunks: the permutation
 * copies (one dispatch per chunk, or per pair of chunks) and the expert GEMMs (one dispatch per
 * activation chunk and weight chunk). The phases themselves are in runner.ts.
 */
export class MegaBlocksBuffers {
  protected readonly buffers: StepBuffers;
  protected rows = 0;
  protected chunkBytes = 0;
  protected totalTiles = 0;

  constructor(
    protected readonly c: LayerConfig,
    protected readonly mode: MegaBlocksMode,
  ) {
    this.buffers = new StepBuffers(mode === 'sparse' ? 'megablocks' : 'megablocks-grouped');
  }

  protected get(name: string): Tensor {
    return this.buffers.get(name);
  }

  protected chunk(name: string, c = 0): TrackedBuffer {
    return this.buffers.chunk(name, c);
  }

  /** Layouts for the permuted row count of this step (known once the permute phase began). */
  protected layouts() {
    return megablocksLayouts(this.c, this.rows, this.chunkBytes);
  }

  /** Sizes the step's buffer table for `rows` permuted rows: a first guess at the start, the real count once the bins are read. */
  protected sizeFor(rows: number): void {
    this.rows = rows;
    this.buffers.use(tableForRows(this.c, this.mode, rows, { chunkBytes: this.chunkBytes }));
  }

  protected alloc(step: StepContext, ...names: string[]): void {
    this.buffers.alloc(step, ...names);
  }

  protected free(step: StepContext, ...names: string[]): void {
    this.buffers.free(step, ...names);
  }

  /** Every dispatch goes through here (the step encoder bounds the work in flight). */
  protected async dispatch(step: StepContext, d: Dispatch): Promise<void> {
    await step.enc.dispatch(d);
  }

  /** The bins the GEMMs segment by: padded in the sparse layout. */
  protected get offsets(): TrackedBuffer {
    return this.chunk(this.mode === 'sparse' ? 'paddedBins' : 'bins');
  }

  /** The permutation kernels' routing bindings (permute.ts ROUTE_BINDINGS). */
  protected route() {
    return { indices: this.chunk('indices'), binIds: this.chunk('binIds'), bins: this.chunk('bins'), paddedBins: this.offsets };
  }

  /** dst rows ← (g·) token rows of src, one dispatch per dst chunk; sparse clears the padding first. */
  protected async gather(step: StepContext, src: TrackedBuffer, dst: Tensor, scaled: boolean) {
    const { hidden: d, topK: k } = this.c;
    for (let c = 0; c < dst.chunks.length; c++) {
      const rows = chunkRowRange(dst.layout, c);
      if (this.mode === 'sparse') step.enc.clear(dst.chunks[c]);
      await this.dispatch(step, {
        source: paddedGather(this.c.dtype),
        params: { count: this.c.tokens * k, d, k, rowBase: rows.start, rowEnd: rows.start + rows.count, scaled: scaled ? 1 : 0 },
        buffers: { src, ...this.route(), gates: this.chunk('gates'), dst: dst.chunks[c] },
        workgroups: grid(this.c.tokens * k),
      });
    }
  }

  /** Pair rows of dst (or token rows when k = 1) ← (g·) permuted rows of src, per chunk pair. */
  protected async scatter(step: StepContext, src: Tensor, dst: Tensor, gates: TrackedBuffer | null, accumulate: boolean) {
    const R = this.c.tokens * this.c.topK;
    for (let sc = 0; sc < src.chunks.length; sc++) {
      const from = chunkRowRange(src.layout, sc);
      for (let dc = 0; dc < dst.chunks.length; dc++) {
        const to = chunkRowRange(dst.layout, dc);
        await this.dispatch(step, {
          source: paddedScatter(this.c.dtype),
          params: { count: R, d: this.c.hidden, srcBase: from.start, srcEnd: from.start + from.count, dstBase: to.start, dstEnd: to.start + to.count, scaled: gates ? 1 : 0, accumulate: accumulate ? 1 : 0 },
          // Unscaled, the gates binding is unused; src stands in (gates may be freed by then).
          buffers: { src: src.chunks[sc], ...this.route(), gates: gates ?? src.chunks[sc], dst: dst.chunks[dc] },
          workgroups: grid(R),
        });
      }
    }
  }

  protected async sumOverK(step: StepContext, src: Tensor, dst: Tensor, accumulate: boolean) {
    const { hidden: d, topK: k } = this.c;
    for (let c = 0; c < src.chunks.length; c++) {
      const rows = chunkRowRange(src.layout, c);
      await this.dispatch(step, {
        source: sumTopK(this.c.dtype),
        params: { tokenBase: rows.start / k, tokens: rows.count / k, d, k, accumulate: accumulate ? 1 : 0 },
        buffers: { src: src.chunks[c], dst: dst.chunks[0] },
        workgroups: grid(sumTopKGroups(rows.count / k, d)),
      });
    }
  }

  protected async perChunk(weights: Tensor, run: (ac: number, wc: number, rows: Range, experts: Range) => Promise<void>) {
    const layout = this.layouts().permutedD;
    for (let ac = 0; ac < layout.chunkCount; ac++) {
      for (let wc = 0; wc < weights.chunks.length; wc++) await run(ac, wc, chunkRowRange(layout, ac), chunkRowRange(weights.layout, wc));
    }
  }

  protected shape(rows: Range, experts: Range) {
    const { hidden: d, ffn: h } = this.c;
    return { segBegin: experts.start, segEnd: experts.start + experts.count, rowBegin: rows.start, rowEnd: rows.start + rows.count, rowBase: 0, rowStride: 1, d, h, expertBase: experts.start, rowChunkBase: rows.start };
  }

  /** A GEMM over the bins' row tiles (the host knows how many: P/64, or Σ⌈n_e/64⌉ when grouped). */
  protected async segmentRows(step: StepContext, source: KernelSource, weights: Tensor, N: number, K: number, buffers: Chunks) {
    await this.perChunk(weights, (ac, wc, rows, experts) =>
      this.dispatch(step, {
        source,
        params: { ...this.shape(rows, experts), N, K, segCount: this.c.experts, tileBase: 0 },
        buffers: buffers(ac, wc),
        workgroups: gemmGrid({ rowTiles: this.totalTiles }, N),
      }),
    );
  }

  /** A per-expert reduction over the bins' rows (weight gradients), accumulated chunk by chunk. */
  /** Weight gradients: the first activation chunk stores each expert's tiles, later ones add. */
  protected async segmentReduce(step: StepContext, source: Record<ReduceMode, KernelSource>, weights: Tensor, M: number, N: number, buffers: Chunks) {
    await this.perChunk(weights, (ac, wc, rows, experts) =>
      this.dispatch(step, { source: source[ac === 0 ? 'store' : 'add'], params: { ...this.shape(rows, experts), M, N }, buffers: buffers(ac, wc), workgroups: gemmGrid({ M }, N, experts.count) }),
    );
  }

  protected setTiles(tileCount: number): void {
    if (tileCount > MAX_WORKGROUPS_PER_DIM) throw new Error(`${tileCount} row tiles of the permuted rows exceed one dispatch dimension (${MAX_WORKGROUPS_PER_DIM}); use fewer tokens`);
    this.totalTiles = tileCount;
  }
}
