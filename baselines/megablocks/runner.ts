import { SEGMENT_TILE } from '../../kernels/gemm/tiling.js';
import { scatterWgrad } from './permute.js';
import { grid } from '../../kernels/program.js';
import { encodeRouterBackward, encodeRouterForward, routerShape } from '../../kernels/routing/router.js';
import { encodeBins, encodeRadixSort } from './sort.js';
import type { TrackedBuffer } from '../../src/gpu/allocator.js';
import { readTensor, readTensorU32 } from '../../src/gpu/readback.js';
import { chunkRowRange, uploadTensor, type Tensor } from '../../src/gpu/tensor.js';
import type { LayerTensors, RoutingSummary, StepContext, StrategyRunner } from '../../src/strategy/contract.js';
import { MegaBlocksBuffers, readU32 } from './buffers.js';
import { megablocksGemms } from './gemm-kernels.js';
import { activationGradGrid } from '../../kernels/activation.js';
import { BLOCKING, megablocksLayouts } from './table.js';

/**
 * One MegaBlocks dMoE layer: the phases and buffers of megablocks-table.ts, in that order.
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
    const S = megablocksLayouts(this.c, R, step.chunkBytes);

    step.phase('router');
    this.alloc(step, 'activations-saved', S.probs, 'routerProbs');
    this.alloc(step, 'routing-metadata', S.pairs, 'topExperts', 'gates');
    await encodeRouterForward(step.enc, routerShape(this.c), { X: layer.X.chunks[0], Wr: layer.Wr.chunks[0], probs: this.chunk('routerProbs'), tokenExperts: this.chunk('topExperts'), gates: this.chunk('gates') });

    step.phase('sort');
    if (S.sort.needsTemp) this.alloc(step, 'workspace', S.perPair, 'sortTempKeys', 'sortTempValues');
    this.alloc(step, 'workspace', S.hist, 'sortHist');
    this.alloc(step, 'routing-metadata', S.perPair, 'binIds', 'indices');
    this.alloc(step, 'routing-metadata', S.bins, 'bins', ...(sparse ? ['paddedBins', 'tileOffsets'] : []));
    const temp = (n: string) => (this.t[n] ? this.chunk(n) : null);
    await encodeRadixSort(step.enc, S.sort, { keysIn: this.chunk('topExperts'), keysOut: this.chunk('binIds'), valuesOut: this.chunk('indices'), tempKeys: temp('sortTempKeys'), tempValues: temp('sortTempValues'), hist: this.chunk('sortHist') });
    const bins = { sortedKeys: this.chunk('binIds'), bins: this.chunk('bins') };
    await encodeBins(step.enc, { count: R, experts: E, blocking: BLOCKING, tileRows: SEGMENT_TILE.m }, sparse ? { ...bins, paddedBins: this.chunk('paddedBins'), tileOffsets: this.chunk('tileOffsets') } : bins);
    this.free(step, 'sortTempKeys', 'sortTempValues', 'sortHist');

    step.phase('permute');
    this.rows = sparse ? (await readU32(step, this.chunk('paddedBins'), E, 1))[0] : R;
    const L = this.layouts();
    this.alloc(step, 'activations-saved', L.permutedD, 'Xperm');
    await this.gather(step, layer.X.chunks[0], this.get('Xperm'), false);

    step.phase('experts');
    if (sparse) this.setTiles(this.rows / SEGMENT_TILE.m);
    else await this.groupedTiles(step);
    this.alloc(step, 'activations-saved', L.permutedH, 'a', ...(swiglu ? ['b'] : []), 'u');
    this.alloc(step, 'activations-saved', L.permutedD, 'Y');
    const seg = [this.offsets, this.chunk('tileOffsets')];
    await this.segmentRows(step, this.gemms.up, layer.W1, h, d, (ac, wc) => [
      this.chunk('Xperm', ac),
      ...seg,
      layer.W1.chunks[wc],
      ...(swiglu ? [layer.W3!.chunks[wc]] : []),
      this.chunk('a', ac),
      ...(swiglu ? [this.chunk('b', ac)] : []),
      this.chunk('u', ac),
    ]);
    await this.segmentRows(step, this.gemms.down, layer.W2, d, h, (ac, wc) => [this.chunk('u', ac), ...seg, layer.W2.chunks[wc], this.chunk('Y', ac)]);

    step.phase('scatter');
    this.alloc(step, 'output', L.tokenRows, 'O');
    if (k > 1) {
      this.alloc(step, 'workspace', L.pairRowsD, 'scattered');
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
    this.alloc(step, 'routing-metadata', this.layouts().bins, 'tileOffsets');
    uploadTensor(step.kernels.device, this.get('tileOffsets'), tileOffsets);
  }

  async backward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = this.c;
    const R = T * k;
    const swiglu = this.c.activation === 'swiglu';
    const L = this.layouts();
    const seg = () => [this.offsets, this.chunk('tileOffsets')];

    step.phase('scatter-grad');
    this.alloc(step, 'workspace', L.permutedD, 'dY');
    this.alloc(step, 'workspace', L.perPair, 'dg', 'pairRows');
    await this.gather(step, layer.dO.chunks[0], this.get('dY'), true);
    const Y = this.get('Y');
    for (let c = 0; c < Y.chunks.length; c++) {
      const rows = chunkRowRange(Y.layout, c);
      await this.dispatch(step, {
        source: scatterWgrad(this.c.dtype),
        params: { count: R, d, k, rowBase: rows.start, rowEnd: rows.start + rows.count },
        buffers: [Y.chunks[c], layer.dO.chunks[0], ...this.route(), this.chunk('dg'), this.chunk('pairRows')],
        workgroups: grid(R),
      });
    }
    this.free(step, 'Y');

    step.phase('down-grad');
    await this.segmentReduce(step, this.gemms.dW2, layer.dW2, h, d, (ac, wc) => [this.chunk('u', ac), this.chunk('dY', ac), this.offsets, layer.dW2.chunks[wc]]);
    this.alloc(step, 'workspace', L.permutedH, 'dU');
    await this.segmentRows(step, this.gemms.dU, layer.W2, h, d, (ac, wc) => [this.chunk('dY', ac), ...seg(), layer.W2.chunks[wc], this.chunk('dU', ac)]);
    this.free(step, 'u', 'dY');

    step.phase('act-grad');
    this.alloc(step, 'workspace', L.permutedH, 'dA', ...(swiglu ? ['dB'] : []));
    const hidden = (n: string, c: number) => (swiglu || (n !== 'b' && n !== 'dB') ? [this.chunk(n, c)] : []);
    for (let c = 0; c < L.permutedH.chunkCount; c++) {
      const count = chunkRowRange(L.permutedH, c).count * h;
      await this.dispatch(step, {
        source: this.gemms.actGrad,
        params: { count },
        buffers: ['dU', 'a', 'b', 'dA', 'dB'].flatMap((n) => hidden(n, c)),
        workgroups: activationGradGrid(count),
      });
    }
    this.free(step, 'dU', 'a', 'b');

    step.phase('up-grad');
    await this.segmentReduce(step, this.gemms.dW13, layer.dW1, d, h, (ac, wc) => [
      this.chunk('Xperm', ac),
      ...hidden('dA', ac),
      ...hidden('dB', ac),
      this.offsets,
      layer.dW1.chunks[wc],
      ...(swiglu ? [layer.dW3!.chunks[wc]] : []),
    ]);
    this.alloc(step, 'workspace', L.permutedD, 'dXperm');
    await this.segmentRows(step, this.gemms.dXp, layer.W1, d, swiglu ? 2 * h : h, (ac, wc) => [
      ...hidden('dA', ac),
      ...hidden('dB', ac),
      ...seg(),
      layer.W1.chunks[wc],
      ...(swiglu ? [layer.W3!.chunks[wc]] : []),
      this.chunk('dXperm', ac),
    ]);
    this.free(step, 'Xperm', 'dA', 'dB', 'tileOffsets');

    step.phase('router-grad');
    this.alloc(step, 'workspace', L.probs, 'routerGrad');
    this.alloc(step, 'output', L.tokenRows, 'dX');
    await encodeRouterBackward(
      step.enc,
      { ...routerShape(this.c), dgParts: 1, auxLoss: this.c.auxLoss },
      {
        X: layer.X.chunks[0],
        Wr: layer.Wr.chunks[0],
        probs: this.chunk('routerProbs'),
        tokenExperts: this.chunk('topExperts'),
        gates: this.chunk('gates'),
        pairRows: this.chunk('pairRows'),
        dgPartial: this.chunk('dg'),
        expertOffsets: this.chunk('bins'),
        dz: this.chunk('routerGrad'),
        dWr: layer.dWr.chunks[0],
        dX: this.chunk('dX'),
      },
    );
    this.free(step, 'routerGrad', 'routerProbs', 'topExperts', 'gates', 'dg', 'pairRows');

    step.phase('input-grad');
    if (k > 1) {
      this.alloc(step, 'workspace', L.pairRowsD, 'scatteredGrad');
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

  async readRouting(step: StepContext) {
    const experts = await readTensorU32(step.kernels.allocator, this.get('topExperts'));
    const gates = await readTensor(step.kernels.allocator, this.get('gates'));
    return { experts, gates, kept: new Uint8Array(experts.length).fill(1) };
  }

  async summary(step: StepContext): Promise<RoutingSummary> {
    const E = this.c.experts;
    if (!this.loads) {
      let bins: Uint32Array;
      if (this.t.bins) bins = await readU32(step, this.chunk('bins'), 0, E + 1);
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
    step.free(...Object.values(this.t));
    this.t = {};
    this.dropBinsCopy(step);
  }
}
