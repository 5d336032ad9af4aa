import { capacitySlots, DISPATCH_WORKGROUP, DROPPED } from './dispatch-kernels.js';
import { gemmGrid } from '../../kernels/gemm/core.js';
import { type ReduceMode } from '../../kernels/gemm/tiling.js';
import { grid, MAX_WORKGROUPS_PER_DIM, type DispatchBuffers, type KernelSource } from '../../kernels/program.js';
import { MAX_TOP_K } from '../../kernels/routing/router.js';
import { encodeRoutingMetadata, MAX_PAIRS } from '../../kernels/routing/metadata.js';
import { capacityOf, type LayerConfig } from '../../src/config.js';
import { readTensor, readTensorU32 } from '../../src/gpu/readback.js';
import { chunkRowRange, type ChunkLayout, type Tensor } from '../../src/gpu/tensor.js';
import type { LayerTensors, RoutingSummary, StepContext, StrategyRunner } from '../../src/strategy/contract.js';
import { StepBuffers } from '../../src/strategy/step-buffers.js';
import { routeTokens } from '../../src/strategy/router.js';
import { withPersistent, type StepTableFor } from './table.js';

/**
 * The runner skeleton the capacity strategies (Tutel, GShard) share: routing, the capacity rule
 * (capacityOf in src/config.ts) and the lifetimes, kept by StepBuffers over the strategy's table
 * (table.ts), so the declared table and the allocator's record cannot drift apart.
 */
export function unsupportedCapacity(c: LayerConfig): string | null {
  if (c.topK > MAX_TOP_K) return `top-k ${c.topK} > ${MAX_TOP_K}`;
  if (c.experts * c.topK > MAX_PAIRS) return `experts × top-k = ${c.experts * c.topK} > ${MAX_PAIRS}`;
  return null;
}

export function checkGrid(kernel: string, count: number): number {
  if (count > MAX_WORKGROUPS_PER_DIM) throw new Error(`${kernel}: ${count} workgroups along one grid dimension exceed ${MAX_WORKGROUPS_PER_DIM}; use a smaller capacity or fewer tokens`);
  return count;
}

/** A GEMM's grid in the tile of the kernel the encoder builds (gemmGrid), each dimension checked. */
export function checkedGemmGrid(kernel: string, ...args: Parameters<typeof gemmGrid>): (built: KernelSource) => [number, number, number] {
  const inTiles = gemmGrid(...args);
  return (built) => inTiles(built).map((count) => checkGrid(kernel, count)) as [number, number, number];
}

export interface ExpertChunk {
  ac: number;
  wc: number;
  rowBegin: number;
  rowEnd: number;
  expertFirst: number;
  expertBase: number;
  experts: number;
}

/**
 * The skeleton of a capacity strategy's step. Subclasses supply the two ends (how X reaches the
 * [E,C,d] grid and how y returns to tokens, forward and backward); the router, the capacity rule
 * and the lifetimes live here, the expert MLP in experts.ts.
 */
export abstract class CapacityRunnerBase implements StrategyRunner {
  protected C = 0;
  private readonly buffers: StepBuffers;
  private routingCache: { experts: Uint32Array; gates: Float32Array; kept: Uint8Array } | null = null;
  private summaryCache: RoutingSummary | null = null;

  constructor(
    protected readonly c: LayerConfig,
    private readonly stepTableFor: StepTableFor,
    protected readonly id: string,
  ) {
    this.buffers = new StepBuffers(id);
  }

  abstract forward(step: StepContext, layer: LayerTensors): Promise<Tensor>;
  abstract backward(step: StepContext, layer: LayerTensors): Promise<Tensor>;

  protected get(name: string): Tensor {
    return this.buffers.get(name);
  }

  protected chunk(name: string, i = 0) {
    return this.buffers.chunk(name, i);
  }

  protected layoutOf(name: string): ChunkLayout {
    return this.buffers.layoutOf(name);
  }

  /** Frees what ended with the current phase, then starts the next one. */
  protected enter(step: StepContext, phase: string): void {
    this.buffers.enter(step, phase);
  }

  /** Frees the buffers whose last phase is the current one; outputs stay for the caller to read. */
  protected endPhase(step: StepContext): void {
    this.buffers.endPhase(step);
  }

  protected alloc(step: StepContext, name: string): Tensor {
    return this.buffers.alloc(step, name)[0];
  }

  private usePlan(step: StepContext): void {
    this.buffers.use(withPersistent(this.stepTableFor(this.c, this.C, step.chunkBytes), this.c, { chunkBytes: step.chunkBytes }));
  }

  /** Router, routing metadata, C (read back to the host when cf = 0, as Tutel all-reduces it) and the slots map. */
  protected async route(step: StepContext, layer: LayerTensors): Promise<void> {
    const c = this.c;
    const { tokens: T, experts: E, topK: k } = c;
    const reason = unsupportedCapacity(c);
    if (reason) throw new Error(`${this.id}: ${reason}`);
    this.routingCache = this.summaryCache = null;
    this.C = capacityOf(c); // with cf = 0, the table is resized below once the loads are read back
    this.usePlan(step);
    this.enter(step, 'router');
    for (const name of ['routerProbs', 'tokenExperts', 'gates']) this.alloc(step, name);
    await routeTokens(step, layer, { probs: this.chunk('routerProbs'), tokenExperts: this.chunk('tokenExperts'), gates: this.chunk('gates') });

    this.enter(step, 'metadata');
    const names = ['blockCounts', 'expertTokenIndices', 'slots', 'expertOffsets', 'expertSlotOffsets', 'expertTileOffsets', 'slotTileOffsets'];
    for (const name of names) this.alloc(step, name);
    await encodeRoutingMetadata(step.enc, { tokens: T, experts: E, topK: k }, {
      tokenExperts: this.chunk('tokenExperts'),
      blockCounts: this.chunk('blockCounts'),
      expertTokenIndices: this.chunk('expertTokenIndices'),
      tokenSlotMap: this.chunk('slots'),
      expertOffsets: this.chunk('expertOffsets'),
      expertSlotOffsets: this.chunk('expertSlotOffsets'),
      expertTileOffsets: this.chunk('expertTileOffsets'),
      slotTileOffsets: this.chunk('slotTileOffsets'),
    });
    if (c.capacityFactor === 0) {
      // The host needs C to size [E,C,·]: a mid-step readback, inside the timed step.
      step.enc.flush();
      const offsets = await readTensorU32(step.kernels.allocator, this.get('expertOffsets'));
      this.C = capacityOf(c, Array.from({ length: E }, (_, e) => offsets[e + 1] - offsets[e]));
      this.usePlan(step);
    }
    await step.enc.dispatch({
      source: capacitySlots,
      params: { pairs: T * k, C: this.C },
      buffers: { tokenExperts: this.chunk('tokenExperts'), expertOffsets: this.chunk('expertOffsets'), slots: this.chunk('slots') },
      workgroups: grid(Math.ceil((T * k) / DISPATCH_WORKGROUP)),
    });
  }

  /** One call per (row chunk of [E·C,·], weight chunk) that share at least one expert. */
  protected async overExperts(weights: Tensor, run: (x: ExpertChunk) => Promise<void>): Promise<void> {
    const C = this.C;
    if (C === 0) return;
    const rows = this.layoutOf('dispatched');
    for (let ac = 0; ac < rows.chunkCount; ac++) {
      const r = chunkRowRange(rows, ac);
      if (r.count === 0) continue;
      for (let wc = 0; wc < weights.chunks.length; wc++) {
        const w = chunkRowRange(weights.layout, wc);
        const first = Math.max(w.start, Math.floor(r.start / C));
        const end = Math.min(w.start + w.count, Math.ceil((r.start + r.count) / C));
        if (end > first) await run({ ac, wc, rowBegin: r.start, rowEnd: r.start + r.count, expertFirst: first, expertBase: w.start, experts: end - first });
      }
    }
  }

  protected expertParams(x: ExpertChunk, M: number, N: number, K: number) {
    return { M, N, K, C: this.C, rowBegin: x.rowBegin, rowEnd: x.rowEnd, expertFirst: x.expertFirst, expertBase: x.expertBase, d: this.c.hidden, h: this.c.ffn };
  }

  /** A GEMM whose output rows are capacity slots (one workgroup column per expert). */
  protected async expertRows(step: StepContext, source: KernelSource, weights: Tensor, N: number, K: number, buffers: (x: ExpertChunk) => DispatchBuffers) {
    await this.overExperts(weights, (x) =>
      step.enc.dispatch({
        source,
        params: this.expertParams(x, 0, N, K),
        buffers: buffers(x),
        workgroups: checkedGemmGrid(source.name, { M: Math.min(this.C, x.rowEnd - x.rowBegin) }, N, x.experts),
      }),
    );
  }

  /**
   * A weight-gradient GEMM reducing over each expert's slots in the row chunk. An expert's first
   * row chunk stores its gradient, later ones add: only the chunk's first expert can continue
   * from an earlier chunk, so it gets its own 'add' dispatch.
   */
  protected async expertReduce(step: StepContext, source: Record<ReduceMode, KernelSource>, weights: Tensor, M: number, N: number, buffers: (x: ExpertChunk) => DispatchBuffers) {
    await this.overExperts(weights, async (x) => {
      const continued = x.expertFirst * this.C < x.rowBegin ? 1 : 0;
      const parts: [ReduceMode, ExpertChunk][] = [
        ['add', { ...x, experts: continued }],
        ['store', { ...x, expertFirst: x.expertFirst + continued, experts: x.experts - continued }],
      ];
      for (const [mode, part] of parts) {
        if (part.experts === 0) continue;
        const kernel = source[mode];
        await step.enc.dispatch({
          source: kernel,
          params: this.expertParams(part, M, N, 0),
          buffers: buffers(part),
          workgroups: checkedGemmGrid(kernel.name, { M }, N, part.experts),
        });
      }
    });
  }

  async readRouting(step: StepContext) {
    if (this.routingCache) return this.routingCache;
    const allocator = step.kernels.allocator;
    const experts = await readTensorU32(allocator, this.get('tokenExperts'));
    const gates = await readTensor(allocator, this.get('gates'));
    const slots = await readTensorU32(allocator, this.get('slots'));
    this.routingCache = { experts, gates, kept: Uint8Array.from(slots, (s) => (s === DROPPED ? 0 : 1)) };
    return this.routingCache;
  }

  async summary(step: StepContext): Promise<RoutingSummary> {
    if (this.summaryCache) return this.summaryCache;
    const offsets = await readTensorU32(step.kernels.allocator, this.get('expertOffsets'));
    const slots = await readTensorU32(step.kernels.allocator, this.get('slots'));
    const droppedPairs = slots.reduce((n, s) => n + (s === DROPPED ? 1 : 0), 0);
    const expertLoads = Array.from({ length: this.c.experts }, (_, e) => offsets[e + 1] - offsets[e]);
    this.summaryCache = { expertLoads, keptPairs: slots.length - droppedPairs, droppedPairs, capacity: this.C };
    return this.summaryCache;
  }

  release(step: StepContext): void {
    this.buffers.release(step);
  }
}
