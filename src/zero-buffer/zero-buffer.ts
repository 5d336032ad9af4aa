import { dgParts, expertKernels } from './expert-gemm.js';
import { MAX_TOP_K } from '../../kernels/routing/router.js';
import { encodeRoutingMetadata, MAX_PAIRS } from '../../kernels/routing/metadata.js';
import type { LayerConfig } from '../config.js';
import { bufferTable, rowTarget } from './table.js';
import { zeroBufferWork } from './work.js';
import { ExpertPasses } from './passes.js';
import { encodeRowGates } from './row-gates.js';
import { readTensor, readTensorU32 } from '../gpu/readback.js';
import type { Tensor } from '../gpu/tensor.js';
import { StepBuffers } from '../strategy/step-buffers.js';
import { droplessSummary, routeTokens, routeTokensBackward } from '../strategy/router.js';
import { type LayerTensors, type RoutingSummary, type StepContext, type Strategy, type StrategyRunner } from '../strategy/contract.js';

/**
 * MoEBlaze-style dispatch: index lists instead of permuted or padded token buffers, gathers fused
 * into the GEMM loads, the combine and dX reduced into token rows (slot by slot, or through
 * bounded scratch-row blocks when experts get few rows), and silu(a)·b recomputed in backward
 * from the saved a and b. No [R,d] buffer exists at any time.
 */
class ZeroBufferRunner implements StrategyRunner {
  private readonly buffers = new StepBuffers('zero-buffer');
  private readonly kernels: ReturnType<typeof expertKernels>;
  private readonly keptU: boolean;
  private readonly passes: ExpertPasses;

  constructor(private readonly c: LayerConfig) {
    this.keptU = c.checkpoint === 'none';
    this.kernels = expertKernels({ activation: c.activation, keptU: this.keptU, dtype: c.dtype });
    this.passes = new ExpertPasses(c, this.buffers);
  }

  private get(name: string): Tensor {
    return this.buffers.get(name);
  }

  private chunk(name: string, c: number) {
    return this.buffers.chunk(name, c);
  }

  /** a (and b, and u when kept) as the table declares them for this phase: saved, or recomputed workspace. */
  private async upProject(step: StepContext, layer: LayerTensors) {
    const { hidden: d, ffn: h } = this.c;
    const swiglu = this.c.activation === 'swiglu';
    this.buffers.alloc(step, 'a', ...(swiglu ? ['b'] : []), ...(this.keptU ? ['u'] : []));
    await this.passes.segments(step, this.kernels.up, layer.W1, h, d, (ac, wc) => ({
      X: layer.X.chunks[0],
      rowTokens: this.chunk('expertTokenIndices', 0),
      expertOffsets: this.chunk('expertOffsets', 0),
      expertTileOffsets: this.chunk('expertTileOffsets', 0),
      W1: layer.W1.chunks[wc],
      ...(swiglu && { W3: layer.W3!.chunks[wc] }),
      Ab: this.chunk('a', ac),
      ...(swiglu && { Bb: this.chunk('b', ac) }),
      ...(this.buffers.has('u') && { U: this.chunk('u', ac) }),
    }));
  }

  /** u's bindings for a kernel reading the hidden activation (expert-gemm.ts hiddenBindings). */
  private hiddenChunks(ac: number) {
    if (this.buffers.has('u')) return { U: this.chunk('u', ac) };
    return this.buffers.has('b') ? { Ab: this.chunk('a', ac), Bb: this.chunk('b', ac) } : { Ab: this.chunk('a', ac) };
  }

  async forward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    const c = this.c;
    const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
    if (k > MAX_TOP_K) throw new Error(`top-k ${k} exceeds ${MAX_TOP_K}`);
    if (E * k > MAX_PAIRS) throw new Error(`experts × top-k ${E * k} exceeds ${MAX_PAIRS}`);
    this.buffers.use(bufferTable(c, null, { chunkBytes: step.chunkBytes }));
    this.buffers.enter(step, 'router');
    this.buffers.alloc(step, 'routerProbs', 'tokenExperts', 'gates');
    await routeTokens(step, layer, { probs: this.chunk('routerProbs', 0), tokenExperts: this.chunk('tokenExperts', 0), gates: this.chunk('gates', 0) });

    this.buffers.enter(step, 'metadata');
    const [blockCounts] = this.buffers.alloc(step, 'blockCounts', 'expertTokenIndices', 'tokenSlotMap', 'expertOffsets', 'expertSlotOffsets', 'expertTileOffsets', 'slotTileOffsets');
    await encodeRoutingMetadata(step.enc, { tokens: T, experts: E, topK: k }, {
      tokenExperts: this.chunk('tokenExperts', 0),
      blockCounts: blockCounts.chunks[0],
      expertTokenIndices: this.chunk('expertTokenIndices', 0),
      tokenSlotMap: this.chunk('tokenSlotMap', 0),
      expertOffsets: this.chunk('expertOffsets', 0),
      expertSlotOffsets: this.chunk('expertSlotOffsets', 0),
      expertTileOffsets: this.chunk('expertTileOffsets', 0),
      slotTileOffsets: this.chunk('slotTileOffsets', 0),
    });
    this.buffers.free(step, 'blockCounts');
    this.buffers.alloc(step, 'rowGates');
    await encodeRowGates(step.enc, T * k, { gates: this.chunk('gates', 0), tokenSlotMap: this.chunk('tokenSlotMap', 0), rowGates: this.chunk('rowGates', 0) });
    // From here every kernel, the router's backward included, reads gates by routed row.
    this.buffers.free(step, 'gates');

    this.buffers.enter(step, 'experts');
    await this.upProject(step, layer);
    this.buffers.alloc(step, 'O');
    if (rowTarget(c) === 'rows') {
      step.enc.clear(this.chunk('O', 0));
      await this.passes.rowBlocks(step, 'combineRows', this.get('O'), this.chunk('tokenSlotMap', 0), this.kernels.combine.rows, layer.W2, d, h, (ac, wc, scratch) => ({
        ...this.hiddenChunks(ac),
        rowTokens: this.chunk('expertTokenIndices', 0),
        expertOffsets: this.chunk('expertOffsets', 0),
        expertTileOffsets: this.chunk('expertTileOffsets', 0),
        rowGates: this.chunk('rowGates', 0),
        W2: layer.W2.chunks[wc],
        rowsOut: scratch,
      }));
    } else {
      await this.passes.slotPasses(step, this.kernels.combine.tokens, layer.W2, d, h, (ac, wc) => ({
        ...this.hiddenChunks(ac),
        rowTokens: this.chunk('expertTokenIndices', 0),
        expertSlotOffsets: this.chunk('expertSlotOffsets', 0),
        slotTileOffsets: this.chunk('slotTileOffsets', 0),
        rowGates: this.chunk('rowGates', 0),
        W2: layer.W2.chunks[wc],
        O: this.chunk('O', 0),
      }));
    }
    // Checkpoint 'full' drops a and b here (the table ends them with the phase).
    this.buffers.endPhase(step);
    return this.get('O');
  }

  async backward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    const c = this.c;
    const { hidden: d, ffn: h } = c;
    const swiglu = c.activation === 'swiglu';
    this.buffers.enter(step, 'recompute');
    if (c.checkpoint === 'full') await this.upProject(step, layer);

    this.buffers.enter(step, 'expert-grads');
    await this.passes.reduceSegments(step, this.kernels.dW2, layer.dW2, h, d, (ac, wc) => ({
      ...this.hiddenChunks(ac),
      dO: layer.dO.chunks[0],
      rowTokens: this.chunk('expertTokenIndices', 0),
      expertOffsets: this.chunk('expertOffsets', 0),
      rowGates: this.chunk('rowGates', 0),
      dW2: layer.dW2.chunks[wc],
    }));
    this.buffers.alloc(step, 'dgPartial');
    await this.passes.segments(
      step,
      this.kernels.hiddenGrad,
      layer.W2,
      h,
      d,
      (ac, wc) => ({
        dO: layer.dO.chunks[0],
        rowTokens: this.chunk('expertTokenIndices', 0),
        expertOffsets: this.chunk('expertOffsets', 0),
        expertTileOffsets: this.chunk('expertTileOffsets', 0),
        rowGates: this.chunk('rowGates', 0),
        W2: layer.W2.chunks[wc],
        Ab: this.chunk('a', ac),
        ...(swiglu && { Bb: this.chunk('b', ac) }),
        dgPartial: this.chunk('dgPartial', 0),
      }),
      { dgParts: dgParts(h) },
    );
    // a and b now hold da and db.
    await this.passes.reduceSegments(step, this.kernels.dW13, layer.dW1, d, h, (ac, wc) => ({
      X: layer.X.chunks[0],
      rowTokens: this.chunk('expertTokenIndices', 0),
      expertOffsets: this.chunk('expertOffsets', 0),
      dA: this.chunk('a', ac),
      ...(swiglu && { dB: this.chunk('b', ac) }),
      dW1: layer.dW1.chunks[wc],
      ...(swiglu && { dW3: layer.dW3!.chunks[wc] }),
    }));

    this.buffers.enter(step, 'router-grad');
    this.buffers.alloc(step, 'routerGrad', 'dX');
    await routeTokensBackward(step, layer, (name) => this.chunk(name, 0), { dgParts: dgParts(h), gatesByRow: true, names: { gates: 'rowGates', pairRows: 'tokenSlotMap', dgPartial: 'dgPartial' } });

    this.buffers.enter(step, 'input-grad');
    const gradRows = (ac: number) => ({ dA: this.chunk('a', ac), ...(swiglu && { dB: this.chunk('b', ac) }), rowTokens: this.chunk('expertTokenIndices', 0) });
    const gradWeights = (wc: number) => ({ W1: layer.W1.chunks[wc], ...(swiglu && { W3: layer.W3!.chunks[wc] }) });
    if (rowTarget(c) === 'rows') {
      await this.passes.rowBlocks(step, 'inputGradRows', this.get('dX'), this.chunk('tokenSlotMap', 0), this.kernels.dX.rows, layer.W1, d, swiglu ? 2 * h : h, (ac, wc, scratch) => ({
        ...gradRows(ac),
        expertOffsets: this.chunk('expertOffsets', 0),
        expertTileOffsets: this.chunk('expertTileOffsets', 0),
        ...gradWeights(wc),
        rowsOut: scratch,
      }));
    } else {
      await this.passes.slotPasses(step, this.kernels.dX.tokens, layer.W1, d, swiglu ? 2 * h : h, (ac, wc) => ({
        ...gradRows(ac),
        expertSlotOffsets: this.chunk('expertSlotOffsets', 0),
        slotTileOffsets: this.chunk('slotTileOffsets', 0),
        ...gradWeights(wc),
        dX: this.chunk('dX', 0),
      }));
    }
    this.buffers.endPhase(step);
    return this.get('dX');
  }

  async readRouting(step: StepContext) {
    const experts = await readTensorU32(step.kernels.allocator, this.get('tokenExperts'));
    const rowGates = await readTensor(step.kernels.allocator, this.get('rowGates'));
    const slotRows = await readTensorU32(step.kernels.allocator, this.get('tokenSlotMap'));
    const gates = Float32Array.from(slotRows, (row) => rowGates[row]);
    return { experts, gates, kept: new Uint8Array(experts.length).fill(1) };
  }

  summary(step: StepContext): Promise<RoutingSummary> {
    return droplessSummary(step, this.get('expertOffsets'));
  }

  release(step: StepContext): void {
    this.buffers.release(step);
  }
}

export const zeroBuffer: Strategy = {
  id: 'zero-buffer',
  // Okabe–Ito palette (src/render/bench-format.ts says why).
  style: { color: '#0072B2', marker: 'circle' },
  title: 'MoEBlaze zero-buffer: index lists, gathers fused into GEMMs, no [R,d] buffer',
  dropless: true,
  unsupported(c) {
    if (c.topK > MAX_TOP_K) return `top-k ${c.topK} > ${MAX_TOP_K}`;
    if (c.experts * c.topK > MAX_PAIRS) return `experts × top-k = ${c.experts * c.topK} > ${MAX_PAIRS}`;
    return null;
  },
  bufferTable,
  create: (c) => new ZeroBufferRunner(c),
  work: (c, _routing, limits) => zeroBufferWork(c, limits),
  expertRows: (c) => c.tokens * c.topK,
};
