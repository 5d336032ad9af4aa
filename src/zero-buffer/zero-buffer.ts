import { dgParts, expertKernels } from './expert-gemm.js';
import { encodeRouterBackward, encodeRouterForward, MAX_TOP_K, routerShape } from '../../kernels/routing/router.js';
import { encodeRoutingMetadata, MAX_PAIRS } from '../../kernels/routing/metadata.js';
import type { LayerConfig } from '../config.js';
import { bufferTable, kernelWork, layouts, rowTarget } from './table.js';
import { ExpertPasses } from './passes.js';
import { encodeRowGates } from './row-gates.js';
import { readTensor, readTensorU32 } from '../gpu/readback.js';
import type { Tensor } from '../gpu/tensor.js';
import { type LayerTensors, type RoutingSummary, type StepContext, type Strategy, type StrategyRunner } from '../strategy/contract.js';

/**
 * MoEBlaze-style dispatch: index lists instead of permuted or padded token buffers, gathers fused
 * into the GEMM loads, the combine and dX reduced into token rows (slot by slot, or through
 * bounded scratch-row blocks when experts get few rows), and silu(a)·b recomputed in backward
 * from the saved a and b. No [R,d] buffer exists at any time.
 */
class ZeroBufferRunner implements StrategyRunner {
  private t: Record<string, Tensor | null> = {};
  private readonly kernels: ReturnType<typeof expertKernels>;
  private readonly keptU: boolean;
  private readonly passes: ExpertPasses;

  constructor(private readonly c: LayerConfig) {
    this.keptU = c.checkpoint === 'none';
    this.kernels = expertKernels({ activation: c.activation, keptU: this.keptU, dtype: c.dtype });
    this.passes = new ExpertPasses(c, () => this.get('a').layout);
  }

  private get(name: string): Tensor {
    const tensor = this.t[name];
    if (!tensor) throw new Error(`zero-buffer: ${name} is not live: routing and saved tensors exist from forward() until the end of backward(); read routing between the two`);
    return tensor;
  }

  private chunk(name: string, c: number) {
    return this.get(name).chunks[c];
  }

  private async upProject(step: StepContext, layer: LayerTensors, tag: 'activations-saved' | 'workspace') {
    const { hidden: d, ffn: h } = this.c;
    const L = layouts(this.c, step.chunkBytes);
    const swiglu = this.c.activation === 'swiglu';
    this.t.a = step.alloc('a', tag, L.hidden);
    this.t.b = swiglu ? step.alloc('b', tag, L.hidden) : null;
    if (this.keptU && tag === 'activations-saved') this.t.u = step.alloc('u', tag, L.hidden);
    await this.passes.segments(step, this.kernels.up, layer.W1, h, d, (ac, wc) => [
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
      await this.passes.rowBlocks(step, 'combineRows', this.get('O'), this.chunk('tokenSlotMap', 0), this.kernels.combine.rows, layer.W2, d, h, (ac, wc, scratch) => [
        ...this.hiddenChunks(ac),
        this.chunk('expertTokenIndices', 0),
        this.chunk('expertOffsets', 0),
        this.chunk('expertTileOffsets', 0),
        this.chunk('rowGates', 0),
        layer.W2.chunks[wc],
        scratch,
      ]);
    } else {
      await this.passes.slotPasses(step, this.kernels.combine.tokens, layer.W2, d, h, (ac, wc) => [
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
    await this.passes.reduceSegments(step, this.kernels.dW2, layer.dW2, h, d, (ac, wc) => [
      ...this.hiddenChunks(ac),
      layer.dO.chunks[0],
      this.chunk('expertTokenIndices', 0),
      this.chunk('expertOffsets', 0),
      this.chunk('rowGates', 0),
      layer.dW2.chunks[wc],
    ]);
    this.t.dgPartial = step.alloc('dgPartial', 'workspace', L.dgPartial);
    await this.passes.segments(
      step,
      this.kernels.hiddenGrad,
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
    await this.passes.reduceSegments(step, this.kernels.dW13, layer.dW1, d, h, (ac, wc) => [
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
      { ...routerShape(c), dgParts: dgParts(h), auxLoss: c.auxLoss, gatesByRow: true },
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
      await this.passes.rowBlocks(step, 'inputGradRows', this.get('dX'), this.chunk('tokenSlotMap', 0), this.kernels.dX.rows, layer.W1, d, swiglu ? 2 * h : h, (ac, wc, scratch) => [
        ...gradRows(ac),
        this.chunk('expertOffsets', 0),
        this.chunk('expertTileOffsets', 0),
        ...gradWeights(wc),
        scratch,
      ]);
    } else {
      await this.passes.slotPasses(step, this.kernels.dX.tokens, layer.W1, d, swiglu ? 2 * h : h, (ac, wc) => [
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
