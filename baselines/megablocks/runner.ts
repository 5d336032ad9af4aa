import { SEGMENT_TILE } from '../../kernels/gemm/tiling.js';
import { scatterWgrad } from './permute.js';
import { grid } from '../../kernels/program.js';
import { encodeBins, encodeRadixSort } from './sort.js';
import type { TrackedBuffer } from '../../src/gpu/allocator.js';
import { chunkRowRange, uploadTensor, type Tensor } from '../../src/gpu/tensor.js';
import type { LayerTensors, RoutingSummary, StepContext, StrategyRunner } from '../../src/strategy/contract.js';
import { readRouterOutput, routeTokens, routeTokensBackward } from '../../src/strategy/router.js';
import { MegaBlocksBuffers, readU32 } from './buffers.js';
import { megablocksGemms } from './gemm-kernels.js';
import { activationGradGrid } from '../../kernels/activation.js';
import { BLOCKING, megablocksLayouts } from './table.js';

/**
 * One MegaBlocks dMoE layer: the phases and buffers of table.ts, in that order.
 * `sparse` pads every bin to 128 rows and learns the padded total P with one scalar readback
 * (padded_gather's `padded_bins[-1].cpu().item()` sizes its output exactly; so does this);
 * the bins themselves never leave the GPU. `grouped` pads nothing (P = R) and reads every
 * bin size back before the GEMMs (GroupedMLP's `tokens_per_expert.cpu()`), then lays out the
 * GEMM tiles on the host.
 */
export class MegaBlocksRunner extends MegaBlocksBuffers implements StrategyRunner {
  private loads: number[] | null = null;
  /** The bins, copied out before backward frees them, for summary() after the step. */
  private binsCopy: TrackedBuffer | null = null;
  private readonly gemms = megablocksGemms(this.c.activation, this.c.dtype);

  async forward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = this.c;
    const R = T * k;
    const sparse = this.mode === 'sparse';
    const swiglu = this.c.activation === 'swiglu';
    this.loads = null;
    this.dropBinsCopy(step);
    this.chunkBytes = step.chunkBytes;
    this.sizeFor(R);
    const S = megablocksLayouts(this.c, R, step.chunkBytes);

    this.buffers.enter(step, 'router');
    this.alloc(step, 'routerProbs');
    this.alloc(step, 'tokenExperts', 'gates');
    await routeTokens(step, layer, { probs: this.chunk('routerProbs'), tokenExperts: this.chunk('tokenExperts'), gates: this.chunk('gates') });

    this.buffers.enter(step, 'sort');
    if (S.sort.needsTemp) this.alloc(step, 'sortTempKeys', 'sortTempValues');
    this.alloc(step, 'sortHist');
    this.alloc(step, 'binIds', 'indices');
    this.alloc(step, 'bins', ...(sparse ? ['paddedBins', 'tileOffsets'] : []));
    const temp = (n: string) => (this.buffers.has(n) ? this.chunk(n) : null);
    await encodeRadixSort(step.enc, S.sort, { keysIn: this.chunk('tokenExperts'), keysOut: this.chunk('binIds'), valuesOut: this.chunk('indices'), tempKeys: temp('sortTempKeys'), tempValues: temp('sortTempValues'), hist: this.chunk('sortHist') });
    const bins = { sortedKeys: this.chunk('binIds'), bins: this.chunk('bins') };
    await encodeBins(step.enc, { count: R, experts: E, blocking: BLOCKING, tileRows: SEGMENT_TILE.m }, sparse ? { ...bins, paddedBins: this.chunk('paddedBins'), tileOffsets: this.chunk('tileOffsets') } : bins);
    this.free(step, 'sortTempKeys', 'sortTempValues', 'sortHist');

    this.buffers.enter(step, 'permute');
    this.sizeFor(sparse ? (await readU32(step, this.chunk('paddedBins'), E, 1))[0] : R);
    const L = this.layouts();
    this.alloc(step, 'Xperm');
    await this.gather(step, layer.X.chunks[0], this.get('Xperm'), false);

    this.buffers.enter(step, 'experts');
    if (sparse) this.setTiles(this.rows / SEGMENT_TILE.m);
    else await this.groupedTiles(step);
    this.alloc(step, 'a', ...(swiglu ? ['b', 'siluA'] : []), 'u');
    this.alloc(step, 'Y');
    const seg = { offsets: this.offsets, tileOffsets: this.chunk('tileOffsets') };
    await this.segmentRows(step, this.gemms.up, layer.W1, h, d, (ac, wc) => ({
      Xp: this.chunk('Xperm', ac),
      ...seg,
      W1: layer.W1.chunks[wc],
      ...(swiglu && { W3: layer.W3!.chunks[wc] }),
      A: this.chunk('a', ac),
      ...(swiglu && { B: this.chunk('b', ac), S: this.chunk('siluA', ac) }),
      U: this.chunk('u', ac),
    }));
    await this.segmentRows(step, this.gemms.down, layer.W2, d, h, (ac, wc) => ({ U: this.chunk('u', ac), ...seg, W2: layer.W2.chunks[wc], Y: this.chunk('Y', ac) }));

    this.buffers.enter(step, 'scatter');
    this.alloc(step, 'O');
    if (k > 1) {
      this.alloc(step, 'scattered');
      await this.scatter(step, this.get('Y'), this.get('scattered'), this.chunk('gates'), false);
      await this.sumOverK(step, this.get('scattered'), this.get('O'), false);
      this.free(step, 'scattered');
    } else {
      await this.scatter(step, this.get('Y'), this.get('O'), this.chunk('gates'), false);
    }
    return this.get('O');
  }

  /** GroupedMLP's host-side batch sizes: read the bins, lay out the row tiles, upload them. */
  private async groupedTiles(step: StepContext) {
    const E = this.c.experts;
    const bins = await readU32(step, this.chunk('bins'), 0, E + 1);
    this.loads = Array.from({ length: E }, (_, e) => bins[e + 1] - bins[e]);
    const tileOffsets = new Uint32Array(E + 1);
    this.loads.forEach((n, e) => (tileOffsets[e + 1] = tileOffsets[e] + Math.ceil(n / SEGMENT_TILE.m)));
    this.setTiles(tileOffsets[E]);
    this.alloc(step, 'tileOffsets');
    uploadTensor(step.kernels.device, this.get('tileOffsets'), tileOffsets);
  }

  async backward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = this.c;
    const R = T * k;
    const swiglu = this.c.activation === 'swiglu';
    const L = this.layouts();
    const seg = () => ({ offsets: this.offsets, tileOffsets: this.chunk('tileOffsets') });

    this.buffers.enter(step, 'scatter-grad');
    this.alloc(step, 'dY');
    this.alloc(step, 'dg', 'pairRows');
    await this.gather(step, layer.dO.chunks[0], this.get('dY'), true);
    const Y = this.get('Y');
    for (let c = 0; c < Y.chunks.length; c++) {
      const rows = chunkRowRange(Y.layout, c);
      await this.dispatch(step, {
        source: scatterWgrad(this.c.dtype),
        params: { count: R, d, k, rowBase: rows.start, rowEnd: rows.start + rows.count },
        buffers: { Y: Y.chunks[c], dO: layer.dO.chunks[0], ...this.route(), dg: this.chunk('dg'), pairRows: this.chunk('pairRows') },
        workgroups: grid(R),
      });
    }
    this.free(step, 'Y');

    this.buffers.enter(step, 'down-grad');
    await this.segmentReduce(step, this.gemms.dW2, layer.dW2, h, d, (ac, wc) => ({ U: this.chunk('u', ac), dY: this.chunk('dY', ac), offsets: this.offsets, dW2: layer.dW2.chunks[wc] }));
    this.alloc(step, 'dU');
    await this.segmentRows(step, this.gemms.dU, layer.W2, h, d, (ac, wc) => ({ dY: this.chunk('dY', ac), ...seg(), W2: layer.W2.chunks[wc], dU: this.chunk('dU', ac) }));
    this.free(step, 'u', 'dY');

    this.buffers.enter(step, 'act-grad');
    this.alloc(step, 'dA', ...(swiglu ? ['dB'] : []));
    const grads = (c: number) => ({ dA: this.chunk('dA', c), ...(swiglu && { dB: this.chunk('dB', c) }) });
    for (let c = 0; c < L.permutedH.chunkCount; c++) {
      const count = chunkRowRange(L.permutedH, c).count * h;
      await this.dispatch(step, {
        source: this.gemms.actGrad,
        params: { count },
        buffers: { dU: this.chunk('dU', c), A: this.chunk('a', c), ...(swiglu && { B: this.chunk('b', c) }), ...grads(c) },
        workgroups: activationGradGrid(count),
      });
    }
    this.free(step, 'dU', 'a', 'b', 'siluA');

    this.buffers.enter(step, 'up-grad');
    await this.segmentReduce(step, this.gemms.dW13, layer.dW1, d, h, (ac, wc) => ({
      Xp: this.chunk('Xperm', ac),
      ...grads(ac),
      offsets: this.offsets,
      dW1: layer.dW1.chunks[wc],
      ...(swiglu && { dW3: layer.dW3!.chunks[wc] }),
    }));
    this.alloc(step, 'dXperm');
    await this.segmentRows(step, this.gemms.dXp, layer.W1, d, swiglu ? 2 * h : h, (ac, wc) => ({
      ...grads(ac),
      ...seg(),
      W1: layer.W1.chunks[wc],
      ...(swiglu && { W3: layer.W3!.chunks[wc] }),
      dXp: this.chunk('dXperm', ac),
    }));
    this.free(step, 'Xperm', 'dA', 'dB', 'tileOffsets');

    this.buffers.enter(step, 'router-grad');
    this.alloc(step, 'routerGrad');
    this.alloc(step, 'dX');
    await routeTokensBackward(step, layer, (name) => this.chunk(name), { dgParts: 1, names: { expertOffsets: 'bins' } });
    this.free(step, 'routerGrad', 'routerProbs', 'tokenExperts', 'gates', 'dg', 'pairRows');

    this.buffers.enter(step, 'input-grad');
    if (k > 1) {
      this.alloc(step, 'scatteredGrad');
      await this.scatter(step, this.get('dXperm'), this.get('scatteredGrad'), null, false);
      await this.sumOverK(step, this.get('scatteredGrad'), this.get('dX'), true);
    } else {
      await this.scatter(step, this.get('dXperm'), this.get('dX'), null, true);
    }
    if (!this.loads) this.keepBins(step, E);
    this.free(step, 'scatteredGrad', 'dXperm', 'binIds', 'indices', 'bins', 'paddedBins');
    return this.get('dX');
  }

  /** An uncounted host-visible copy of the bins, so summary() works after the step without a sync in it. */
  private keepBins(step: StepContext, E: number) {
    const allocator = step.kernels.allocator;
    this.binsCopy = allocator.create('bins:summary', 'readback', (E + 1) * 4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, { bound: false });
    step.enc.endPass();
    step.enc.commandEncoder.copyBufferToBuffer(this.chunk('bins').buffer, 0, this.binsCopy.buffer, 0, (E + 1) * 4);
  }

  private dropBinsCopy(step: StepContext) {
    step.kernels.allocator.free(this.binsCopy ?? undefined);
    this.binsCopy = null;
  }

  readRouting(step: StepContext) {
    return readRouterOutput(step, (name) => this.get(name));
  }

  async summary(step: StepContext): Promise<RoutingSummary> {
    const E = this.c.experts;
    if (!this.loads) {
      let bins: Uint32Array;
      if (this.buffers.has('bins')) bins = await readU32(step, this.chunk('bins'), 0, E + 1);
      else if (this.binsCopy) {
        await this.binsCopy.buffer.mapAsync(GPUMapMode.READ);
        bins = new Uint32Array(this.binsCopy.buffer.getMappedRange().slice(0));
        this.dropBinsCopy(step);
      } else throw new Error('megablocks: no routing to summarise; run forward first');
      this.loads = Array.from({ length: E }, (_, e) => bins[e + 1] - bins[e]);
    }
    return { expertLoads: [...this.loads], keptPairs: this.c.tokens * this.c.topK, droppedPairs: 0, capacity: null };
  }

  release(step: StepContext): void {
    this.buffers.release(step);
    this.dropBinsCopy(step);
  }
}
