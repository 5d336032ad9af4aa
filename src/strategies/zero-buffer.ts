import { downCombine, dgParts, hiddenGrad, inputGrad, REDUCE_TILE, SEGMENT_TILE, upProjection, weightGradW13, weightGradW2, type ExpertKernelOptions } from '../../kernels/expert-gemm.js';
import { tiles, type ReduceMode } from '../../kernels/gemm/core.js';
import type { KernelSource } from '../../kernels/program.js';
import { encodeRouterBackward, encodeRouterForward, MAX_TOP_K, routerShape } from '../../kernels/router.js';
import { encodeRoutingMetadata, MAX_PAIRS } from '../../kernels/routing-metadata.js';
import type { LayerConfig } from '../config.js';
import { bufferTable, kernelWork, layouts, rowTarget } from './zero-buffer-table.js';
import { encodeRowGates } from '../../kernels/row-gates.js';
import { encodeRowReduce } from '../../kernels/row-reduce.js';
import { readTensor, readTensorU32 } from '../gpu/readback.js';
import { chunkRowRange, type Tensor } from '../gpu/tensor.js';
import { type LayerTensors, type RoutingSummary, type StepContext, type Strategy, type StrategyRunner } from '../strategy.js';

/**
 * MoEBlaze-style dispatch: index lists instead of permuted or padded token buffers, gathers fused
 * into the GEMM loads, the combine and dX reduced slot by slot straight into token rows, and
 * silu(a)·b recomputed in backward from the saved a and b. No [R,d] buffer exists at any time.
 */
class ZeroBufferRunner implements StrategyRunner {
  private t: Record<string, Tensor | null> = {};
  private readonly kernels: ExpertKernelOptions;

  constructor(private readonly c: LayerConfig) {
    this.kernels = { activation: c.activation, keptU: c.checkpoint === 'none', dtype: c.dtype };
  }

  private get(name: string): Tensor {
    const tensor = this.t[name];
    if (!tensor) throw new Error(`zero-buffer: ${name} is not live: routing and saved tensors exist from forward() until the end of backward(); read routing between the two`);
    return tensor;
  }

  private chunk(name: string, c: number) {
    return this.get(name).chunks[c];
  }

  /** One dispatch per (activation chunk, weight chunk) pair; idle tiles exit at once. */
  private async perChunk(step: StepContext, weights: Tensor, run: (ac: number, wc: number, rows: { start: number; count: number }, experts: { start: number; count: number }) => Promise<void>) {
    const hidden = this.get('a').layout;
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

  private async expertSegments(step: StepContext, source: KernelSource, weights: Tensor, N: number, K: number, buffers: (ac: number, wc: number) => Tensor['chunks'], extra: Record<string, number> = {}) {
    const R = this.c.tokens * this.c.topK;
    const maxTiles = Math.ceil(R / SEGMENT_TILE.m) + this.c.experts;
    await this.perChunk(step, weights, (ac, wc, rows, experts) =>
      step.enc.dispatch({
        source,
        params: this.rowsParams(rows, experts, { N, K, rowBase: 0, rowStride: 1, tileBase: 0, ...extra }),
        buffers: buffers(ac, wc),
        workgroups: [maxTiles, tiles(N, SEGMENT_TILE.n), 1],
      }),
    );
  }

  /** The slot-by-slot passes: in pass s every token has at most one row, so token-row writes never collide. */
  private async slotPasses(step: StepContext, source: KernelSource, weights: Tensor, N: number, K: number, buffers: (ac: number, wc: number) => Tensor['chunks']) {
    const { tokens: T, experts: E, topK: k } = this.c;
    const maxTiles = Math.ceil(T / SEGMENT_TILE.m) + E;
    for (let s = 0; s < k; s++) {
      await this.perChunk(step, weights, (ac, wc, rows, experts) =>
        step.enc.dispatch({
          source,
          params: this.rowsParams(rows, experts, { N, K, rowBase: s, rowStride: k, tileBase: s * (E + 1), slot: s }),
          buffers: buffers(ac, wc),
          workgroups: [maxTiles, tiles(N, SEGMENT_TILE.n), 1],
        }),
      );
    }
  }

  /**
   * The 'rows' target (zero-buffer-table.ts rowTarget): per activation chunk, blocks of at most
   * scratchRows rows; a block's expert-major tiles write its rows for every weight chunk, then
   * row-reduce adds them into the token rows of `out`. Bounded scratch, never an [R,d] buffer.
   */
  private async rowBlocks(step: StepContext, name: string, out: Tensor, source: KernelSource, weights: Tensor, N: number, K: number, buffers: (ac: number, wc: number, scratch: Tensor['chunks'][number]) => Tensor['chunks']) {
    const { tokens: T, hidden: d, experts: E, topK: k } = this.c;
    const scratch = step.alloc(name, 'workspace', layouts(this.c, step.chunkBytes).scratchRows);
    const block = scratch.layout.rows;
    const maxTiles = Math.ceil((T * k) / SEGMENT_TILE.m) + E;
    const hidden = this.get('a').layout;
    for (let ac = 0; ac < hidden.chunkCount; ac++) {
      const rows = chunkRowRange(hidden, ac);
      for (let r0 = rows.start; r0 < rows.start + rows.count; r0 += block) {
        const r1 = Math.min(r0 + block, rows.start + rows.count);
        for (let wc = 0; wc < weights.chunks.length; wc++) {
          await step.enc.dispatch({
            source,
            params: this.rowsParams(rows, chunkRowRange(weights.layout, wc), { N, K, rowBase: 0, rowStride: 1, tileBase: 0, rowBegin: r0, rowEnd: r1 }),
            buffers: buffers(ac, wc, scratch.chunks[0]),
            workgroups: [maxTiles, tiles(N, SEGMENT_TILE.n), 1],
          });
        }
        await encodeRowReduce(step.enc, this.c.dtype, { tokens: T, hidden: d, topK: k, rowBegin: r0, rowEnd: r1 }, { tokenSlotMap: this.chunk('tokenSlotMap', 0), rows: scratch.chunks[0], out: out.chunks[0] });
      }
    }
    step.free(scratch);
  }

  /** Weight gradients: the first activation chunk stores each expert's tiles, later ones add. */
  private async reduceSegments(step: StepContext, source: (mode: ReduceMode) => KernelSource, weights: Tensor, M: number, N: number, buffers: (ac: number, wc: number) => Tensor['chunks']) {
    await this.perChunk(step, weights, (ac, wc, rows, experts) =>
      step.enc.dispatch({
        source: source(ac === 0 ? 'store' : 'add'),
        params: this.rowsParams(rows, experts, { M, N, rowBase: 0, rowStride: 1 }),
        buffers: buffers(ac, wc),
        workgroups: [tiles(M, REDUCE_TILE.m), tiles(N, REDUCE_TILE.n), experts.count],
      }),
    );
  }

  private async upProject(step: StepContext, layer: LayerTensors, tag: 'activations-saved' | 'workspace') {
    const { hidden: d, ffn: h } = this.c;
    const L = layouts(this.c, step.chunkBytes);
    const swiglu = this.c.activation === 'swiglu';
    this.t.a = step.alloc('a', tag, L.hidden);
    this.t.b = swiglu ? step.alloc('b', tag, L.hidden) : null;
    if (this.kernels.keptU && tag === 'activations-saved') this.t.u = step.alloc('u', tag, L.hidden);
    await this.expertSegments(step, upProjection(this.kernels), layer.W1, h, d, (ac, wc) => [
      layer.X.chunks[0],
      this.chunk('expertTokenIndices', 0),
      this.chunk('expertOffsets', 0),
      this.chunk('expertTileOffsets', 0),
      layer.W1.chunks[wc],
      ...(swiglu ? [layer.W3!.chunks[wc]] : []),
      this.chunk('a', ac),
      ...(swiglu ? [this.chunk('b', ac)] : []),
      ...(this.t.u ? [this.chunk('u', ac)] : []),
    ]);
  }

  /** u's bindings for a kernel reading the hidden activation. */
  private hiddenChunks(ac: number) {
    if (this.t.u) return [this.chunk('u', ac)];
    return this.t.b ? [this.chunk('a', ac), this.chunk('b', ac)] : [this.chunk('a', ac)];
  }

  async forward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    const c = this.c;
    const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
    if (k > MAX_TOP_K) throw new Error(`top-k ${k} exceeds ${MAX_TOP_K}`);
    if (E * k > MAX_PAIRS) throw new Error(`experts × top-k ${E * k} exceeds ${MAX_PAIRS}`);
    const L = layouts(c, step.chunkBytes);
    step.phase('router');
    this.t.routerProbs = step.alloc('routerProbs', 'activations-saved', L.probs);
    this.t.tokenExpertIndices = step.alloc('tokenExpertIndices', 'routing-metadata', L.pairs);
    this.t.gates = step.alloc('gates', 'routing-metadata', L.pairs);
    await encodeRouterForward(
      step.enc,
      routerShape(c),
      { X: layer.X.chunks[0], Wr: layer.Wr.chunks[0], probs: this.chunk('routerProbs', 0), tokenExperts: this.chunk('tokenExpertIndices', 0), gates: this.chunk('gates', 0) },
    );

    step.phase('metadata');
    const blockCounts = step.alloc('blockCounts', 'workspace', L.blockCounts);
    for (const name of ['expertTokenIndices', 'tokenSlotMap'] as const) this.t[name] = step.alloc(name, 'routing-metadata', L.rows);
    this.t.expertOffsets = step.alloc('expertOffsets', 'routing-metadata', L.expertOffsets);
    this.t.expertSlotOffsets = step.alloc('expertSlotOffsets', 'routing-metadata', L.expertSlotOffsets);
    this.t.expertTileOffsets = step.alloc('expertTileOffsets', 'routing-metadata', L.expertTileOffsets);
    this.t.slotTileOffsets = step.alloc('slotTileOffsets', 'routing-metadata', L.slotTileOffsets);
    await encodeRoutingMetadata(step.enc, { tokens: T, experts: E, topK: k }, {
      tokenExperts: this.chunk('tokenExpertIndices', 0),
      blockCounts: blockCounts.chunks[0],
      expertTokenIndices: this.chunk('expertTokenIndices', 0),
      tokenSlotMap: this.chunk('tokenSlotMap', 0),
      expertOffsets: this.chunk('expertOffsets', 0),
      expertSlotOffsets: this.chunk('expertSlotOffsets', 0),
      expertTileOffsets: this.chunk('expertTileOffsets', 0),
      slotTileOffsets: this.chunk('slotTileOffsets', 0),
    });
    step.free(blockCounts);
    this.t.rowGates = step.alloc('rowGates', 'routing-metadata', L.rows);
    await encodeRowGates(step.enc, T * k, { gates: this.chunk('gates', 0), tokenSlotMap: this.chunk('tokenSlotMap', 0), rowGates: this.chunk('rowGates', 0) });
    // From here every kernel, the router's backward included, reads gates by routed row.
    step.free(this.t.gates);
    this.t.gates = null;

    step.phase('experts');
    await this.upProject(step, layer, c.checkpoint === 'full' ? 'workspace' : 'activations-saved');
    this.t.O = step.alloc('O', 'output', L.tokenRows);
    if (rowTarget(c) === 'rows') {
      step.enc.clear(this.chunk('O', 0));
      await this.rowBlocks(step, 'combineRows', this.get('O'), downCombine(this.kernels, 'rows'), layer.W2, d, h, (ac, wc, scratch) => [
        ...this.hiddenChunks(ac),
        this.chunk('expertTokenIndices', 0),
        this.chunk('expertOffsets', 0),
        this.chunk('expertTileOffsets', 0),
        this.chunk('rowGates', 0),
        layer.W2.chunks[wc],
        scratch,
      ]);
    } else {
      await this.slotPasses(step, downCombine(this.kernels), layer.W2, d, h, (ac, wc) => [
        ...this.hiddenChunks(ac),
        this.chunk('expertTokenIndices', 0),
        this.chunk('expertSlotOffsets', 0),
        this.chunk('slotTileOffsets', 0),
        this.chunk('rowGates', 0),
        layer.W2.chunks[wc],
        this.chunk('O', 0),
      ]);
    }
    if (c.checkpoint === 'full') {
      step.free(this.t.a, this.t.b);
      this.t.a = this.t.b = null;
    }
    return this.get('O');
  }

  async backward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    const c = this.c;
    const { hidden: d, ffn: h } = c;
    const L = layouts(c, step.chunkBytes);
    const swiglu = c.activation === 'swiglu';
    step.phase('recompute');
    if (c.checkpoint === 'full') await this.upProject(step, layer, 'workspace');

    step.phase('expert-grads');
    await this.reduceSegments(step, (mode) => weightGradW2(this.kernels, mode), layer.dW2, h, d, (ac, wc) => [
      ...this.hiddenChunks(ac),
      layer.dO.chunks[0],
      this.chunk('expertTokenIndices', 0),
      this.chunk('expertOffsets', 0),
      this.chunk('rowGates', 0),
      layer.dW2.chunks[wc],
    ]);
    this.t.dgPartial = step.alloc('dgPartial', 'workspace', L.dgPartial);
    await this.expertSegments(
      step,
      hiddenGrad(this.kernels),
      layer.W2,
      h,
      d,
      (ac, wc) => [
        layer.dO.chunks[0],
        this.chunk('expertTokenIndices', 0),
        this.chunk('expertOffsets', 0),
        this.chunk('expertTileOffsets', 0),
        this.chunk('rowGates', 0),
        layer.W2.chunks[wc],
        this.chunk('a', ac),
        ...(swiglu ? [this.chunk('b', ac)] : []),
        this.chunk('dgPartial', 0),
      ],
      { dgParts: dgParts(h) },
    );
    // a and b now hold da and db.
    await this.reduceSegments(step, (mode) => weightGradW13(this.kernels, mode), layer.dW1, d, h, (ac, wc) => [
      layer.X.chunks[0],
      this.chunk('expertTokenIndices', 0),
      this.chunk('expertOffsets', 0),
      this.chunk('a', ac),
      ...(swiglu ? [this.chunk('b', ac)] : []),
      layer.dW1.chunks[wc],
      ...(swiglu ? [layer.dW3!.chunks[wc]] : []),
    ]);
    if (this.t.u) {
      step.free(this.t.u);
      this.t.u = null;
    }

    step.phase('router-grad');
    const routerGrad = step.alloc('routerGrad', 'workspace', L.probs);
    this.t.dX = step.alloc('dX', 'output', L.tokenRows);
    await encodeRouterBackward(
      step.enc,
      { ...routerShape(c), dgParts: dgParts(h), auxLossCoef: c.auxLossCoef, gatesByRow: true },
      {
        X: layer.X.chunks[0],
        Wr: layer.Wr.chunks[0],
        probs: this.chunk('routerProbs', 0),
        tokenExperts: this.chunk('tokenExpertIndices', 0),
        gates: this.chunk('rowGates', 0),
        pairRows: this.chunk('tokenSlotMap', 0),
        dgPartial: this.chunk('dgPartial', 0),
        expertOffsets: this.chunk('expertOffsets', 0),
        dz: routerGrad.chunks[0],
        dWr: layer.dWr.chunks[0],
        dX: this.chunk('dX', 0),
      },
    );
    step.free(routerGrad, this.t.dgPartial, this.t.routerProbs, this.t.tokenExpertIndices);
    this.t.dgPartial = this.t.routerProbs = this.t.tokenExpertIndices = null;

    step.phase('input-grad');
    const gradRows = (ac: number) => [this.chunk('a', ac), ...(swiglu ? [this.chunk('b', ac)] : []), this.chunk('expertTokenIndices', 0)];
    const gradWeights = (wc: number) => [layer.W1.chunks[wc], ...(swiglu ? [layer.W3!.chunks[wc]] : [])];
    if (rowTarget(c) === 'rows') {
      await this.rowBlocks(step, 'inputGradRows', this.get('dX'), inputGrad(this.kernels, 'rows'), layer.W1, d, swiglu ? 2 * h : h, (ac, wc, scratch) => [
        ...gradRows(ac),
        this.chunk('expertOffsets', 0),
        this.chunk('expertTileOffsets', 0),
        ...gradWeights(wc),
        scratch,
      ]);
    } else {
      await this.slotPasses(step, inputGrad(this.kernels), layer.W1, d, swiglu ? 2 * h : h, (ac, wc) => [
        ...gradRows(ac),
        this.chunk('expertSlotOffsets', 0),
        this.chunk('slotTileOffsets', 0),
        ...gradWeights(wc),
        this.chunk('dX', 0),
      ]);
    }
    const dX = this.get('dX');
    step.free(
      ...['a', 'b', 'rowGates', 'expertTokenIndices', 'tokenSlotMap', 'expertOffsets', 'expertSlotOffsets', 'expertTileOffsets', 'slotTileOffsets'].map((n) => this.t[n]),
    );
    for (const n of ['a', 'b', 'rowGates', 'expertTokenIndices', 'tokenSlotMap', 'expertOffsets', 'expertSlotOffsets', 'expertTileOffsets', 'slotTileOffsets']) this.t[n] = null;
    return dX;
  }

  async readRouting(step: StepContext) {
    const experts = await readTensorU32(step.kernels.allocator, this.get('tokenExpertIndices'));
    const rowGates = await readTensor(step.kernels.allocator, this.get('rowGates'));
    const slotRows = await readTensorU32(step.kernels.allocator, this.get('tokenSlotMap'));
    const gates = Float32Array.from(slotRows, (row) => rowGates[row]);
    return { experts, gates, kept: new Uint8Array(experts.length).fill(1) };
  }

  async summary(step: StepContext): Promise<RoutingSummary> {
    const offsets = await readTensorU32(step.kernels.allocator, this.get('expertOffsets'));
    const expertLoads = Array.from({ length: this.c.experts }, (_, e) => offsets[e + 1] - offsets[e]);
    const R = this.c.tokens * this.c.topK;
    return { expertLoads, keptPairs: R, droppedPairs: 0, capacity: null };
  }

  release(step: StepContext): void {
    step.free(...Object.values(this.t));
    this.t = {};
  }
}

export const zeroBuffer: Strategy = {
  id: 'zero-buffer',
  title: 'MoEBlaze zero-buffer: index lists, gathers fused into GEMMs, no [R,d] buffer',
  dropless: true,
  unsupported(c) {
    if (c.topK > MAX_TOP_K) return `top-k ${c.topK} > ${MAX_TOP_K}`;
    if (c.experts * c.topK > MAX_PAIRS) return `experts × top-k = ${c.experts * c.topK} > ${MAX_PAIRS}`;
    return null;
  },
  bufferTable,
  create: (c) => new ZeroBufferRunner(c),
  kernelWork: (c, _routing, limits) => kernelWork(c, limits.chunkBytes),
};
