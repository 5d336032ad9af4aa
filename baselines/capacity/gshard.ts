import { buildCombineWeights, buildDispatchMask, DISPATCH_WORKGROUP, gateGradFromCombine } from './dispatch-kernels.js';
import { einsumCombine, einsumCombineGradWeights, einsumCombineGradY, einsumDispatch, einsumDispatchGradX } from './gemm-kernels.js';
import { TILE_M, TILE_N } from '../../kernels/gemm/core.js';
import { tiles } from '../../kernels/gemm/tiling.js';
import { grid, type DispatchBuffers, type KernelSource } from '../../kernels/program.js';
import { capacityOf, type DType, type LayerConfig } from '../../src/config.js';
import { floatBytes } from '../../src/f16.js';
import { OutOfMemoryError } from '../../src/errors.js';
import { chunkLayout, chunkRowRange, type Tensor } from '../../src/gpu/tensor.js';
import type { LayerTensors, StepContext, Strategy } from '../../src/strategy/contract.js';
import { formatBytes } from '../../src/units.js';
import { checkGrid, unsupportedCapacity } from './runner.js';
import { commonBuffers, planTable, type CapacityPlan } from './table.js';
import { spec } from '../../src/strategy/buffer-table.js';
import { CapacityRunner } from './experts.js';
import { capacityRows, gshardWork } from './work.js';

/**
 * GShard / DeepSpeed's einsum dispatch: the same capacity, locations and drops as Tutel, but the
 * routing is materialised as dense [T, E, C] tensors, a dispatch mask (one byte an element) and
 * combine weights, and both ends are contractions through the shared GEMM core:
 *   dispatched[q] = Σ_t mask[t, q]·X[t]        (einsum "sec,sm->ecm", K = T)
 *   O[t]          = Σ_q combine[t, q]·y[q]     (einsum "sec,ecm->sm", K = E·C)
 * with q = e·C + c. Both cost T·E·C·d multiply-adds, quadratic in T (C grows with T); that, and
 * the [T,E,C] buffers, are GShard's real price and are not shortcut. Backward likewise: dy =
 * combineᵀ·dO, dcombine = dO·yᵀ (a dense [T,E,C] gradient, read at each pair's slot for dg), and
 * dX += mask·d(dispatched). The expert MLP and its saved tensors are Tutel's.
 * dtype: the combine weights come from the f32 gating cast with `type_as(input)`, so they (and
 * dcombine) are stored at the input's dtype, like the expert buffers; the mask stays one byte.
 */
const PHASES = ['router', 'metadata', 'masks', 'dispatch', 'up', 'down', 'combine', 'combine-grad', 'router-grad', 'down-grad', 'act-grad', 'up-grad', 'dispatch-grad'];

export function gshardPlan(c: LayerConfig, C: number, chunkBytes: number): CapacityPlan {
  const { tokens: T, experts: E } = c;
  const Q = E * C;
  const buffers = commonBuffers(c, C, chunkBytes, { dispatch: 'dispatch', combine: 'combine', combineGrad: 'combine-grad', dispatchGrad: 'dispatch-grad', slotsUntil: 'router-grad' });
  // Token rows of the mask are padded to whole u32 words so that chunks by token stay word-aligned.
  const mask = chunkLayout(T, Math.ceil(Q / 4), 4, chunkBytes);
  const dense = chunkLayout(T, Q, floatBytes(c.dtype), chunkBytes);
  buffers.push(
    spec('dispatchMask', 'routing-metadata', mask, [T, E, C], 'u8', 'masks', 'dispatch-grad'),
    spec('combineWeights', 'activations-saved', dense, [T, E, C], c.dtype, 'masks', 'combine-grad'),
    spec('dcombine', 'workspace', dense, [T, E, C], c.dtype, 'combine-grad', 'combine-grad'),
  );
  return { phases: PHASES, forwardEnd: 'combine', buffers };
}

interface Range {
  i: number;
  begin: number;
  end: number;
}

function ranges(tensor: Tensor): Range[] {
  return Array.from({ length: tensor.layout.chunkCount }, (_, i) => {
    const r = chunkRowRange(tensor.layout, i);
    return { i, begin: r.start, end: r.start + r.count };
  });
}

class GShardRunner extends CapacityRunner {
  constructor(c: LayerConfig) {
    super(c, gshardPlan, 'gshard');
  }

  /** One contraction chunk pair: rows m of the output, columns n, reduction k. */
  private async contract(step: StepContext, source: (dtype: DType) => KernelSource, m: [number, number], n: [number, number], k: [number, number], accumulate: boolean, buffers: DispatchBuffers) {
    const Q = this.c.experts * this.C;
    const kernel = source(this.c.dtype);
    await step.enc.dispatch({
      source: kernel,
      params: { mBegin: m[0], mEnd: m[1], nBegin: n[0], nEnd: n[1], kBegin: k[0], kEnd: k[1], d: this.c.hidden, slotCount: Q, rowWords: Math.ceil(Q / 4), accumulate: accumulate ? 1 : 0 },
      buffers,
      workgroups: [checkGrid(kernel.name, tiles(m[1] - m[0], TILE_M)), checkGrid(kernel.name, tiles(n[1] - n[0], TILE_N)), 1],
    });
  }

  /** A [T,E,C] tensor is chunked by token rows; one row must fit a binding. */
  private checkRows(step: StepContext): void {
    // The widest row: the combine weights', or the word-padded mask's (at f16 with E·C ≤ 2).
    const Q = this.c.experts * this.C;
    const rowBytes = Math.max(Q * floatBytes(this.c.dtype), Math.ceil(Q / 4) * 4);
    if (rowBytes > step.chunkBytes) {
      throw new OutOfMemoryError(
        `gshard: one token's row of the [T,E,C] combine weights needs ${formatBytes(rowBytes)}, more than one storage binding holds (${formatBytes(step.chunkBytes)}); use a smaller capacity factor or fewer experts`,
        rowBytes,
        'combineWeights',
      );
    }
  }

  protected async dispatchForward(step: StepContext, layer: LayerTensors) {
    const { hidden: d, topK: k } = this.c;
    this.checkRows(step);
    this.enter(step, 'masks');
    const mask = this.alloc(step, 'dispatchMask');
    const combine = this.alloc(step, 'combineWeights');
    const Q = this.c.experts * this.C;
    for (const r of ranges(mask)) {
      const params = { tokenBegin: r.begin, tokenEnd: r.end, k, rowWords: Math.ceil(Q / 4) };
      await step.enc.dispatch({ source: buildDispatchMask, params, buffers: { slots: this.chunk('slots'), mask: mask.chunks[r.i] }, workgroups: grid(r.end - r.begin) });
    }
    for (const r of ranges(combine)) {
      const params = { tokenBegin: r.begin, tokenEnd: r.end, k, slotCount: Q };
      await step.enc.dispatch({ source: buildCombineWeights(this.c.dtype), params, buffers: { slots: this.chunk('slots'), gates: this.chunk('gates'), combine: combine.chunks[r.i] }, workgroups: grid(r.end - r.begin) });
    }

    this.enter(step, 'dispatch');
    const dispatched = this.alloc(step, 'dispatched');
    for (const out of ranges(dispatched)) {
      if (out.end === out.begin) continue;
      for (const kr of ranges(mask)) {
        await this.contract(step, einsumDispatch, [out.begin, out.end], [0, d], [kr.begin, kr.end], kr.i > 0, { mask: mask.chunks[kr.i], X: layer.X.chunks[0], dispatched: dispatched.chunks[out.i] });
      }
    }
  }

  protected async combineForward(step: StepContext) {
    const d = this.c.hidden;
    this.enter(step, 'combine');
    const O = this.alloc(step, 'O');
    const combine = this.get('combineWeights');
    const y = this.get('y');
    for (const out of ranges(combine)) {
      // The first K chunk overwrites, so an empty grid (C = 0) still writes O = 0.
      for (const kr of ranges(y)) {
        await this.contract(step, einsumCombine, [out.begin, out.end], [0, d], [kr.begin, kr.end], kr.i > 0, { combine: combine.chunks[out.i], Y: y.chunks[kr.i], O: O.chunks[0] });
      }
    }
  }

  protected async combineBackward(step: StepContext, layer: LayerTensors) {
    const { hidden: d, topK: k, tokens: T } = this.c;
    this.enter(step, 'combine-grad');
    const dY = this.alloc(step, 'dY');
    const combine = this.get('combineWeights');
    const y = this.get('y');
    for (const out of ranges(dY)) {
      if (out.end === out.begin) continue;
      for (const kr of ranges(combine)) {
        await this.contract(step, einsumCombineGradY, [out.begin, out.end], [0, d], [kr.begin, kr.end], kr.i > 0, { combine: combine.chunks[kr.i], dO: layer.dO.chunks[0], dY: dY.chunks[out.i] });
      }
    }
    const dcombine = this.alloc(step, 'dcombine');
    for (const out of ranges(dcombine)) {
      for (const nr of ranges(y)) {
        if (nr.end === nr.begin) continue;
        await this.contract(step, einsumCombineGradWeights, [out.begin, out.end], [nr.begin, nr.end], [0, d], false, { dO: layer.dO.chunks[0], Y: y.chunks[nr.i], dcombine: dcombine.chunks[out.i] });
      }
    }
    const dgPartial = this.alloc(step, 'dgPartial');
    for (const r of ranges(dcombine)) {
      await step.enc.dispatch({
        source: gateGradFromCombine(this.c.dtype),
        params: { pairs: T * k, k, slotCount: this.c.experts * this.C, tokenBegin: r.begin, tokenEnd: r.end },
        buffers: { slots: this.chunk('slots'), dcombine: dcombine.chunks[r.i], dgPartial: dgPartial.chunks[0] },
        workgroups: grid(Math.ceil((T * k) / DISPATCH_WORKGROUP)),
      });
    }
  }

  protected async dispatchBackward(step: StepContext) {
    const d = this.c.hidden;
    this.enter(step, 'dispatch-grad');
    const mask = this.get('dispatchMask');
    const dD = this.get('dDispatched');
    const dX = this.get('dX');
    for (const out of ranges(mask)) {
      for (const kr of ranges(dD)) {
        if (kr.end === kr.begin) continue;
        await this.contract(step, einsumDispatchGradX, [out.begin, out.end], [0, d], [kr.begin, kr.end], true, { mask: mask.chunks[out.i], dDispatched: dD.chunks[kr.i], dX: dX.chunks[0] });
      }
    }
  }
}

export const gshard: Strategy = {
  id: 'gshard',
  title: 'GShard einsum dispatch: dense [T,E,C] mask and combine weights, contractions over T and E·C; saves everything (--checkpoint ignored)',
  dropless: false,
  unsupported: unsupportedCapacity,
  bufferTable: (c, routing, limits) => planTable(gshardPlan(c, capacityOf(c, routing.expertLoads), limits.chunkBytes), c, limits),
  work: gshardWork,
  expertRows: capacityRows,
  create: (c) => new GShardRunner(c),
};
