import { gemmGrid } from '../../kernels/gemm/core.js';
import { SEGMENT_TILE, tiles, type ReduceMode } from '../../kernels/gemm/tiling.js';
import { grid, type Dispatch, type DispatchBuffers, type KernelSource } from '../../kernels/program.js';
import { encodeRoutingMetadata } from '../../kernels/routing/metadata.js';
import type { LayerConfig } from '../../src/config.js';
import type { TrackedBuffer } from '../../src/gpu/allocator.js';
import { chunkRowRange, type ChunkLayout, type Tensor } from '../../src/gpu/tensor.js';
import { StepBuffers } from '../../src/strategy/step-buffers.js';
import { droplessSummary, readRouterOutput, routeTokens, routeTokensBackward } from '../../src/strategy/router.js';
import type { LayerTensors, RoutingSummary, StepContext, StrategyRunner } from '../../src/strategy/contract.js';
import { scatterMoEGemms } from './gemm-kernels.js';
import { outputWindows, windowBindings } from './scattered-output.js';
import { activationGrad, catGrad, combine, elementGroups, gateGrad, groupRows, identityRows, mulGrad, sortedExperts, sumOverK } from './row-kernels.js';
import { hiddenWidth, scatterMoETable } from './table.js';

type Range = { start: number; count: number };
/** A dispatch's buffers, by the binding names its kernel declares. */
type Buffers = DispatchBuffers;
type Gemms = ReturnType<typeof scatterMoEGemms>;

export interface ScatterMoEOptions {
  /**
   * Storage bindings a kernel may use [default: the device's maxStorageBuffersPerShaderStage]:
   * bounds how many chunks of a scattered output one dispatch binds (scattered-output.ts). Tests
   * set it low to run the windowed fallback.
   */
  maxStorageBuffers?: number;
}

/**
 * One ScatterMoE layer: the phases and buffers of table.ts, in that order, every buffer allocated
 * and freed through the table (step-buffers.ts). Dispatches go through `run` and the three loops
 * over chunks below.
 */
export class ScatterMoERunner implements StrategyRunner {
  private readonly buffers = new StepBuffers('scattermoe');
  /** The GEMMs, built for the step's output chunks and binding limit (the same every step). */
  private built: { key: string; gemms: Gemms } | null = null;
  private readonly actGrad: KernelSource;
  private summaryCache: RoutingSummary | null = null;

  constructor(
    private readonly c: LayerConfig,
    private readonly options: ScatterMoEOptions = {},
  ) {
    this.actGrad = activationGrad(c.activation, c.dtype);
  }

  private get gemms(): Gemms {
    if (!this.built) throw new Error('scattermoe: GEMMs used before the forward pass built them');
    return this.built.gemms;
  }

  /**
   * Builds the GEMMs once for the table's chunking: the scattered outputs' chunks bound side by
   * side (Y's, and grouped_x's, which shares its layout: table.ts rowsD).
   */
  private buildGemms(step: StepContext): void {
    const chunks = this.buffers.layoutOf('Y').chunkCount;
    const maxStorageBuffers = this.options.maxStorageBuffers ?? step.enc.device.limits.maxStorageBuffersPerShaderStage;
    const key = `${chunks}:${maxStorageBuffers}`;
    if (this.built?.key !== key) this.built = { key, gemms: scatterMoEGemms(this.c.activation, this.c.dtype, { chunks, maxStorageBuffers }) };
  }

  private get swiglu(): boolean {
    return this.c.activation === 'swiglu';
  }

  private chunk(name: string, i = 0): TrackedBuffer {
    return this.buffers.chunk(name, i);
  }

  private enter(step: StepContext, phase: string, ...allocate: string[]): void {
    this.buffers.enter(step, phase);
    this.buffers.alloc(step, ...allocate);
  }

  /** The one place this strategy dispatches a kernel. */
  private run(step: StepContext, source: KernelSource, params: Record<string, number>, buffers: Buffers, workgroups: Dispatch['workgroups']) {
    return step.enc.dispatch({ source, params, buffers, workgroups });
  }

  /** The row chunks every [R,·] tensor shares. */
  private rowChunks(): Range[] {
    const layout = this.buffers.layoutOf('u');
    return Array.from({ length: layout.chunkCount }, (_, i) => chunkRowRange(layout, i));
  }

  /** A kernel over the elements (rows × cols) of each row chunk of `layout`, told its first row. */
  private async perElement(step: StepContext, source: KernelSource, layout: ChunkLayout, params: Record<string, number>, buffers: (chunk: number) => Buffers) {
    for (let i = 0; i < layout.chunkCount; i++) {
      const rows = chunkRowRange(layout, i);
      const count = rows.count * layout.cols;
      if (count > 0) await this.run(step, source, { ...params, count, rowBase: rows.start, cols: layout.cols }, buffers(i), grid(elementGroups(count)));
    }
  }

  /** The token rows of a [T·k, d] layout's chunks (each holds whole tokens' k rows). */
  private tokens(layout: ChunkLayout): ChunkLayout {
    const k = this.c.topK;
    return { ...layout, rows: layout.rows / k, rowsPerChunk: layout.rowsPerChunk / k };
  }

  /** A kernel with one workgroup per row of each chunk of `layout` (rows [rowBegin, rowEnd)). */
  private async perRow(step: StepContext, source: KernelSource, layout: ChunkLayout, params: Record<string, number>, buffers: (chunk: number) => Buffers) {
    for (let i = 0; i < layout.chunkCount; i++) {
      const rows = chunkRowRange(layout, i);
      if (rows.count > 0) await this.run(step, source, { ...params, rowBegin: rows.start, rowEnd: rows.start + rows.count, cols: layout.cols }, buffers(i), grid(rows.count));
    }
  }

  /**
   * scatter2scatter: one dispatch per (row chunk of the grouped rows, weight chunk); a grouped
   * output shares the input's row chunk. A scattered one (`scattered`: its tensor, binding name
   * and slots) has its chunks bound side by side, the store picking each row's chunk, so each
   * tile is computed once as upstream's; only where the adapter cannot bind them all does a
   * dispatch go per window of `slots` chunks (scattered-output.ts). The expert-aligned blocks
   * number Σ_e ⌈n_e / 64⌉ ≤ ⌈R / 64⌉ + E: the grid has the bound, spare workgroups and those of
   * other chunks exit at once (the tiling's tileOf), as upstream's grid has one program per
   * block of padded_block_idxs.
   */
  private async scatterGemm(step: StepContext, source: KernelSource, weights: Tensor, N: number, K: number, scattered: { tensor: Tensor; name: string; slots: number } | null, buffers: (ac: number, wc: number) => Buffers) {
    const { tokens: T, hidden: d, ffn: h, experts: E, topK } = this.c;
    const blocks = tiles(T * topK, SEGMENT_TILE.m) + E;
    const outputs = scattered
      ? outputWindows(scattered.tensor.chunks.length, scattered.slots).map((w) => windowBindings(scattered.name, scattered.tensor.chunks, scattered.tensor.layout.rowsPerChunk, w, scattered.slots))
      : [{ buffers: {}, params: {} }];
    for (const [ac, rows] of this.rowChunks().entries()) {
      for (let wc = 0; wc < weights.chunks.length; wc++) {
        const experts = chunkRowRange(weights.layout, wc);
        for (const out of outputs) {
          const tiling = { N, K, segCount: E, tileBase: 0, segBegin: experts.start, segEnd: experts.start + experts.count, rowBase: 0, rowStride: 1, rowBegin: rows.start, rowEnd: rows.start + rows.count };
          const params = { ...tiling, rowChunkBase: rows.start, expertBase: experts.start, ...out.params, topK, d, h };
          await this.run(step, source, params, { ...buffers(ac, wc), ...out.buffers }, gemmGrid({ rowTiles: blocks }, N));
        }
      }
    }
  }

  /** group_bwd_W: per expert over its grouped rows; the first row chunk stores, later ones add. */
  private async reduce(step: StepContext, source: Record<ReduceMode, KernelSource>, weights: Tensor, M: number, N: number, buffers: (ac: number, wc: number) => Buffers) {
    const { hidden: d, ffn: h } = this.c;
    for (const [ac, rows] of this.rowChunks().entries()) {
      for (let wc = 0; wc < weights.chunks.length; wc++) {
        const experts = chunkRowRange(weights.layout, wc);
        const params = { M, N, segBegin: experts.start, segEnd: experts.start + experts.count, rowBase: 0, rowStride: 1, rowBegin: rows.start, rowEnd: rows.start + rows.count, d, h, expertBase: experts.start, rowChunkBase: rows.start };
        await this.run(step, source[ac === 0 ? 'store' : 'add'], params, buffers(ac, wc), gemmGrid({ M }, N, experts.count));
      }
    }
  }

  /** What scatter2scatter reads besides its operands: the expert-aligned blocks and the scatter's index list. */
  private indexLists() {
    return { expertOffsets: this.chunk('expertOffsets'), tileOffsets: this.chunk('tileOffsets'), sortedScatteredIdxs: this.chunk('sortedScatteredIdxs') };
  }

  private weights(layer: LayerTensors, wc: number, up: boolean): Buffers {
    if (!up) return { W2: layer.W2.chunks[wc] };
    return { W1: layer.W1.chunks[wc], ...(this.swiglu && { W3: layer.W3!.chunks[wc] }) };
  }

  async forward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    try {
      return await this.runForward(step, layer);
    } catch (error) {
      this.release(step);
      throw error;
    }
  }

  async backward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    try {
      return await this.runBackward(step, layer);
    } catch (error) {
      this.release(step);
      throw error;
    }
  }

  private async runForward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    const c = this.c;
    const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
    const swiglu = this.swiglu;
    this.summaryCache = null;
    this.buffers.use(scatterMoETable(c, { chunkBytes: step.chunkBytes }));
    this.buildGemms(step);

    this.enter(step, 'router', 'routerProbs', 'tokenExperts', 'gates');
    await routeTokens(step, layer, { probs: this.chunk('routerProbs'), tokenExperts: this.chunk('tokenExperts'), gates: this.chunk('gates') });

    // flatten_sort_count: a stable sort of the flattened [T·k] ids, each pair a "token" with k = 1;
    // its per-expert tile offsets are the expert-aligned blocks (padded_block_indices).
    this.enter(step, 'sort', 'sortBlockCounts', 'sortPositions', 'sortSegmentOffsets', 'tileOffsets', 'sortSegmentTileOffsets', 'sortedScatteredIdxs', 'sortedExpertIdxs', 'expertOffsets');
    await encodeRoutingMetadata(step.enc, { tokens: T * k, experts: E, topK: 1 }, {
      tokenExperts: this.chunk('tokenExperts'),
      blockCounts: this.chunk('sortBlockCounts'),
      expertTokenIndices: this.chunk('sortedScatteredIdxs'),
      tokenSlotMap: this.chunk('sortPositions'),
      expertOffsets: this.chunk('expertOffsets'),
      expertSlotOffsets: this.chunk('sortSegmentOffsets'),
      expertTileOffsets: this.chunk('tileOffsets'),
      slotTileOffsets: this.chunk('sortSegmentTileOffsets'),
    });
    await this.run(step, sortedExperts, { count: T * k }, { expertIds: this.chunk('tokenExperts'), sortedScatteredIdxs: this.chunk('sortedScatteredIdxs'), sortedExpertIdxs: this.chunk('sortedExpertIdxs') }, grid(elementGroups(T * k)));

    this.enter(step, 'up', 'hidden', ...(swiglu ? ['siluA'] : []), 'u');
    await this.scatterGemm(step, this.gemms.up, layer.W1, h, d, null, (ac, wc) => ({
      X: layer.X.chunks[0],
      ...this.indexLists(),
      ...this.weights(layer, wc, true),
      Hidden: this.chunk('hidden', ac),
      ...(swiglu && { SiluA: this.chunk('siluA', ac) }),
      U: this.chunk('u', ac),
    }));

    this.enter(step, 'down', 'Y');
    const Y = this.buffers.get('Y');
    const intoY = { tensor: Y, name: 'Y', slots: this.gemms.slots.down };
    await this.scatterGemm(step, this.gemms.down, layer.W2, d, h, intoY, (ac, wc) => ({ U: this.chunk('u', ac), ...this.indexLists(), ...this.weights(layer, wc, false) }));

    this.enter(step, 'combine', 'O');
    await this.perElement(step, combine(c.dtype), this.tokens(Y.layout), { topK: k }, (i) => ({ Y: Y.chunks[i], gates: this.chunk('gates'), O: this.chunk('O') }));
    this.buffers.endPhase(step);
    return this.buffers.get('O');
  }

  private async runBackward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    const c = this.c;
    const { hidden: d, ffn: h, topK: k } = c;
    const swiglu = this.swiglu;
    const Y = this.buffers.get('Y');

    // Second ParallelLinear.backward: d_gates, then g·dO grouped into Y's storage, dW2 and dU.
    this.enter(step, 'down-grad', 'dg');
    await this.perRow(step, gateGrad(c.dtype), Y.layout, { topK: k }, (i) => ({ Y: Y.chunks[i], dO: layer.dO.chunks[0], dg: this.chunk('dg') }));
    await this.perRow(step, groupRows(c.dtype), Y.layout, { topK: k, scaled: 1 }, (i) => ({ src: layer.dO.chunks[0], sortedScatteredIdxs: this.chunk('sortedScatteredIdxs'), gates: this.chunk('gates'), dst: Y.chunks[i] }));
    await this.reduce(step, this.gemms.dW2, layer.dW2, h, d, (ac, wc) => ({ U: this.chunk('u', ac), dY: Y.chunks[ac], expertOffsets: this.chunk('expertOffsets'), dW2: layer.dW2.chunks[wc] }));
    this.buffers.alloc(step, 'dU');
    await this.scatterGemm(step, this.gemms.dU, layer.W2, h, d, null, (ac, wc) => ({ dY: Y.chunks[ac], ...this.indexLists(), ...this.weights(layer, wc, false), dU: this.chunk('dU', ac) }));

    // The activation's autograd nodes.
    const rowsH = this.buffers.layoutOf('dU');
    // Binding name → buffer name, chunk by chunk.
    const each = (names: Record<string, string>) => (i: number) => Object.fromEntries(Object.entries(names).map(([binding, buffer]) => [binding, this.chunk(buffer, i)]));
    if (swiglu) {
      this.enter(step, 'mul-grad', 'dSiluA', 'dB');
      await this.perElement(step, mulGrad(c.dtype), rowsH, { h }, each({ dU: 'dU', Hidden: 'hidden', SiluA: 'siluA', dSiluA: 'dSiluA', dB: 'dB' }));
      this.enter(step, 'act-grad', 'dA');
      await this.perElement(step, this.actGrad, rowsH, { h }, each({ grad: 'dSiluA', Hidden: 'hidden', dA: 'dA' }));
      this.enter(step, 'cat-grad', 'dHidden');
      await this.perElement(step, catGrad(c.dtype), rowsH, { h }, each({ dB: 'dB', dA: 'dA', dHidden: 'dHidden' }));
    } else {
      this.enter(step, 'act-grad', 'dHidden');
      await this.perElement(step, this.actGrad, rowsH, { h }, each({ grad: 'dU', Hidden: 'hidden', dA: 'dHidden' }));
    }

    // First ParallelLinear.backward: X grouped, dW1|dW3, then the input gradient's rows over it.
    this.enter(step, 'up-grad', 'groupedX');
    const groupedX = this.buffers.get('groupedX');
    await this.perRow(step, groupRows(c.dtype), groupedX.layout, { topK: k, scaled: 0 }, (i) => ({ src: layer.X.chunks[0], sortedScatteredIdxs: this.chunk('sortedScatteredIdxs'), gates: this.chunk('gates'), dst: groupedX.chunks[i] }));
    const gradients = (wc: number) => ({ dW1: layer.dW1.chunks[wc], ...(swiglu && { dW3: layer.dW3!.chunks[wc] }) });
    await this.reduce(step, this.gemms.dW13, layer.dW1, d, h, (ac, wc) => ({ groupedX: groupedX.chunks[ac], dHidden: this.chunk('dHidden', ac), expertOffsets: this.chunk('expertOffsets'), ...gradients(wc) }));
    const intoRows = { tensor: groupedX, name: 'dXRows', slots: this.gemms.slots.dX };
    await this.scatterGemm(step, this.gemms.dX, layer.W1, d, hiddenWidth(c), intoRows, (ac, wc) => ({ dHidden: this.chunk('dHidden', ac), ...this.indexLists(), ...this.weights(layer, wc, true) }));

    this.enter(step, 'router-grad', 'routerGrad', 'pairRows', 'dX');
    await this.run(step, identityRows, { count: c.tokens * k }, { pairRows: this.chunk('pairRows') }, grid(elementGroups(c.tokens * k)));
    await routeTokensBackward(step, layer, (name) => this.chunk(name), { dgParts: 1 });

    this.enter(step, 'input-grad');
    await this.perElement(step, sumOverK(c.dtype), this.tokens(groupedX.layout), { topK: k }, (i) => ({ rows: groupedX.chunks[i], dX: this.chunk('dX') }));
    this.buffers.endPhase(step);
    return this.buffers.get('dX');
  }

  readRouting(step: StepContext) {
    return readRouterOutput(step, (name) => this.buffers.get(name));
  }

  /** Expert loads from expert_offsets: readable from forward() until the router's backward. */
  async summary(step: StepContext): Promise<RoutingSummary> {
    this.summaryCache ??= await droplessSummary(step, this.buffers.get('expertOffsets'));
    return this.summaryCache;
  }

  release(step: StepContext): void {
    this.buffers.release(step);
  }
}
