import { DISPATCH_WORKGROUP, gateGradFromCombine } from './dispatch-kernels.js';
import { addRows, castCombine, gatingSec, locationsOneHot, packNonzero } from './gshard-gating.js';
import { einsumCombine, einsumCombineGradWeights, einsumCombineGradY, einsumDispatch, einsumDispatchGradX } from './gemm-kernels.js';
import { grid, type DispatchBuffers, type KernelSource } from '../../kernels/program.js';
import { capacityOf, type DType, type LayerConfig } from '../../src/config.js';
import { floatBytes } from '../../src/f16.js';
import { OutOfMemoryError } from '../../src/errors.js';
import { chunkLayout, chunkRowRange, type Tensor } from '../../src/gpu/tensor.js';
import type { LayerTensors, StepContext, Strategy } from '../../src/strategy/contract.js';
import { formatBytes } from '../../src/units.js';
import { checkedGemmGrid, unsupportedCapacity } from './runner.js';
import { commonBuffers, withPersistent, type CapacityStepTable } from './table.js';
import { spec } from '../../src/strategy/buffer-table.js';
import { CapacityRunner } from './experts.js';
import { capacityRows, gshardWork } from './work.js';

/**
 * GShard / DeepSpeed's einsum dispatch (deepspeed/moe/sharded_moe.py): the same capacity, locations
 * and drops as Tutel, but the routing is materialised as dense [T, E, C] tensors and both ends are
 * contractions through the shared GEMM core:
 *   dispatched[q] = Σ_t mask[t, q]·X[t]        (einsum "sec,sm->ecm", K = T)
 *   O[t]          = Σ_q combine[t, q]·y[q]     (einsum "sec,ecm->sm", K = E·C)
 * with q = e·C + c. Both cost T·E·C·d multiply-adds, quadratic in T (C grows with T); that, and
 * the [T,E,C] buffers, are GShard's real price and are not shortcut. Backward likewise: dy =
 * combineᵀ·dO, dcombine = dO·yᵀ (a dense [T,E,C] gradient, read at each pair's slot for dg), and
 * dX += mask·d(dispatched). The expert MLP and its saved tensors are Tutel's.
 *
 * What the gating holds, as fidelity/gshard.json records it (tools/fidelity/capacity.py):
 * - gating (f32, whatever the input dtype): top2gating builds combine1_sec and combine2_sec and
 *   their sum combine_weights, three f32 [T,E,C] tensors live at once, then combine_weights.bool();
 *   top1gating and topkgating build combine_weights alone. The einsum 'se,sc->sec' saves the f32
 *   one-hot locations: locations1_sc (and locations2_sc) [T,C] for k ≤ 2, topkgating's
 *   locations_sc [T,E,C] for k > 2, until the gates' gradient.
 * - MOELayer.forward keeps combine_weights (f32) and dispatch_mask (bool) until it returns.
 * - dispatch_mask.type_as(input) [T,E,C] at the input's dtype is saved by the dispatch einsum;
 *   combine_weights.type_as(input) is made at the combine and saved by it.
 * Not modelled (docs/paper.md#counting): the all-to-all of one process (a copy of the dispatched
 * input and of the expert outputs), torch 1.13's einsum copies of its operands, the [T,E]
 * bookkeeping of the gating (one-hot masks, gates), and the backward's f32 gradient of the
 * combine weights.
 */
const PHASES = ['router', 'metadata', 'gating', 'masks', 'dispatch', 'up', 'down', 'combine', 'combine-grad', 'router-grad', 'down-grad', 'act-grad', 'up-grad', 'dispatch-grad'];

/** Token-row layouts of the dense [T, E·C] tensors, on one row chunking (that of the widest, f32). */
export function denseLayouts(c: LayerConfig, Q: number, chunkBytes: number) {
  const T = c.tokens;
  const rowsPerChunk = chunkLayout(T, Q, 4, chunkBytes).rowsPerChunk;
  const rows = (cols: number, bytes: number) => ({ rows: T, cols, elementBytes: bytes, rowsPerChunk, chunkCount: Math.max(1, Math.ceil(T / rowsPerChunk)) });
  return { f32: rows(Q, 4), dt: rows(Q, floatBytes(c.dtype)), packed: rows(Math.ceil(Q / 4), 4) };
}

export function gshardStepTable(c: LayerConfig, C: number, chunkBytes: number): CapacityStepTable {
  const { tokens: T, experts: E, topK: k } = c;
  const Q = E * C;
  const buffers = commonBuffers(c, C, chunkBytes, { dispatch: 'dispatch', combine: 'combine', combineGrad: 'combine-grad', dispatchGrad: 'dispatch-grad', slotsUntil: 'router-grad' });
  const L = denseLayouts(c, Q, chunkBytes);
  if (k === 2) buffers.push(spec('combine1Sec', 'workspace', L.f32, [T, E, C], 'f32', 'gating', 'gating'), spec('combine2Sec', 'workspace', L.f32, [T, E, C], 'f32', 'gating', 'gating'));
  if (k > 2) buffers.push(spec('locationsSc', 'activations-saved', L.f32, [T, E, C], 'f32', 'gating', 'router-grad'));
  for (let s = 0; s < Math.min(k, 2) && k <= 2; s++) buffers.push(spec(`locations${s + 1}Sc`, 'activations-saved', chunkLayout(T, C, 4, chunkBytes), [T, C], 'f32', 'gating', 'router-grad'));
  // At f32, combine_weights.type_as(input) is combine_weights itself: one f32 tensor from the
  // gating to the combine's backward. At 16 bits the cast is a new tensor made at the combine.
  if (c.dtype === 'f32') buffers.push(spec('combineWeights', 'activations-saved', L.f32, [T, E, C], 'f32', 'gating', 'combine-grad'));
  else buffers.push(spec('combineF32', 'workspace', L.f32, [T, E, C], 'f32', 'gating', 'combine'), spec('combineWeights', 'activations-saved', L.dt, [T, E, C], c.dtype, 'combine', 'combine-grad'));
  buffers.push(
    spec('dispatchBool', 'workspace', L.packed, [T, E, C], 'u8', 'gating', 'combine'),
    spec('dispatchMask', 'routing-metadata', L.dt, [T, E, C], c.dtype, 'masks', 'dispatch-grad'),
    spec('dcombine', 'workspace', L.dt, [T, E, C], c.dtype, 'combine-grad', 'combine-grad'),
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
    super(c, gshardStepTable, 'gshard');
  }

  /** One contraction chunk pair: rows m of the output, columns n, reduction k. */
  private async contract(step: StepContext, source: (dtype: DType) => KernelSource, m: [number, number], n: [number, number], k: [number, number], accumulate: boolean, buffers: DispatchBuffers) {
    const Q = this.c.experts * this.C;
    const kernel = source(this.c.dtype);
    await step.enc.dispatch({
      source: kernel,
      params: { mBegin: m[0], mEnd: m[1], nBegin: n[0], nEnd: n[1], kBegin: k[0], kEnd: k[1], d: this.c.hidden, slotCount: Q, accumulate: accumulate ? 1 : 0 },
      buffers,
      workgroups: checkedGemmGrid(kernel.name, { M: m[1] - m[0] }, n[1] - n[0]),
    });
  }

  /** A [T,E,C] tensor is chunked by token rows; one row must fit a binding. */
  private checkRows(step: StepContext): void {
    // The widest row: the f32 gating tensors' (the word-padded bool mask's is never wider).
    const Q = this.c.experts * this.C;
    const rowBytes = Math.max(Q * 4, Math.ceil(Q / 4) * 4);
    if (rowBytes > step.chunkBytes) {
      throw new OutOfMemoryError(
        `gshard: one token's row of the f32 [T,E,C] gating tensors needs ${formatBytes(rowBytes)}, more than one storage binding holds (${formatBytes(step.chunkBytes)}); use a smaller capacity factor or fewer experts`,
        rowBytes,
        'combineWeights',
        'max-binding-size',
      );
    }
  }

  protected async dispatchForward(step: StepContext, layer: LayerTensors) {
    const { topK: k, experts: E, hidden: d } = this.c;
    this.checkRows(step);
    const Q = E * this.C;
    this.enter(step, 'gating');
    const f32 = this.gatingF32;
    const names = [f32, 'dispatchBool', ...(k === 2 ? ['combine1Sec', 'combine2Sec'] : []), ...(k > 2 ? ['locationsSc'] : k === 2 ? ['locations1Sc', 'locations2Sc'] : ['locations1Sc'])];
    for (const name of names) this.alloc(step, name);
    const rows = ranges(this.get(f32));
    const route = { slots: this.chunk('slots'), gates: this.chunk('gates') };
    const sec = async (out: string, pairs: [number, number]) => {
      for (const r of rows) await step.enc.dispatch({ source: gatingSec, params: { tokenBegin: r.begin, tokenEnd: r.end, k, slotCount: Q, sBegin: pairs[0], sEnd: pairs[1] }, buffers: { ...route, out: this.chunk(out, r.i) }, workgroups: grid(r.end - r.begin) });
    };
    const perExpert = k > 2 ? 1 : 0;
    for (let s = 0; s < (perExpert ? 1 : k); s++) {
      const name = perExpert ? 'locationsSc' : `locations${s + 1}Sc`;
      for (const r of ranges(this.get(name))) {
        const params = { tokenBegin: r.begin, tokenEnd: r.end, k, C: this.C, pair: s, perExpert, experts: E };
        await step.enc.dispatch({ source: locationsOneHot, params, buffers: { slots: this.chunk('slots'), tokenExperts: this.chunk('tokenExperts'), out: this.chunk(name, r.i) }, workgroups: grid(r.end - r.begin) });
      }
    }
    if (k === 2) {
      await sec('combine1Sec', [0, 1]);
      await sec('combine2Sec', [1, 2]);
      for (const r of rows) {
        const count = (r.end - r.begin) * Q;
        if (count > 0) await step.enc.dispatch({ source: addRows, params: { count }, buffers: { a: this.chunk('combine1Sec', r.i), b: this.chunk('combine2Sec', r.i), c: this.chunk(f32, r.i) }, workgroups: grid(Math.ceil(count / DISPATCH_WORKGROUP)) });
      }
    } else await sec(f32, [0, k]);
    for (const r of Q > 0 ? rows : []) {
      await step.enc.dispatch({ source: packNonzero, params: { tokenBegin: r.begin, tokenEnd: r.end, slotCount: Q, rowWords: Math.ceil(Q / 4) }, buffers: { src: this.chunk(f32, r.i), mask: this.chunk('dispatchBool', r.i) }, workgroups: grid(r.end - r.begin) });
    }

    this.enter(step, 'masks');
    const mask = this.alloc(step, 'dispatchMask');
    await this.typeAs(step, 'dispatchMask', 1);

    this.enter(step, 'dispatch');
    const dispatched = this.alloc(step, 'dispatched');
    for (const out of ranges(dispatched)) {
      if (out.end === out.begin) continue;
      for (const kr of ranges(mask)) {
        await this.contract(step, einsumDispatch, [out.begin, out.end], [0, d], [kr.begin, kr.end], kr.i > 0, { mask: mask.chunks[kr.i], X: layer.X.chunks[0], dispatched: dispatched.chunks[out.i] });
      }
    }
  }

  /** The gating's f32 combine weights: the saved combineWeights themselves at f32, a transient at 16 bits. */
  private get gatingF32(): string {
    return this.c.dtype === 'f32' ? 'combineWeights' : 'combineF32';
  }

  /** `name` = the f32 combine weights cast to the layer's dtype: values (mode 0) or where nonzero (mode 1). */
  private async typeAs(step: StepContext, name: string, mode: number) {
    const Q = this.c.experts * this.C;
    for (const r of ranges(this.get(name))) {
      const count = (r.end - r.begin) * Q;
      if (count > 0) await step.enc.dispatch({ source: castCombine(this.c.dtype), params: { count, mode }, buffers: { src: this.chunk(this.gatingF32, r.i), dst: this.chunk(name, r.i) }, workgroups: grid(Math.ceil(count / DISPATCH_WORKGROUP)) });
    }
  }

  protected async combineForward(step: StepContext) {
    const d = this.c.hidden;
    this.enter(step, 'combine');
    const O = this.alloc(step, 'O');
    if (this.c.dtype !== 'f32') {
      this.alloc(step, 'combineWeights');
      await this.typeAs(step, 'combineWeights', 0);
    }
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
  // Okabe–Ito palette (src/render/bench-format.ts says why).
  style: { color: '#CC79A7', marker: 'triangle' },
  title: 'GShard einsum dispatch: dense [T,E,C] mask and combine weights, contractions over T and E·C; saves everything (--checkpoint ignored)',
  dropless: false,
  unsupported: unsupportedCapacity,
  bufferTable: (c, routing, limits) => withPersistent(gshardStepTable(c, capacityOf(c, routing.expertLoads), limits.chunkBytes), c, limits),
  work: gshardWork,
  expertRows: capacityRows,
  create: (c) => new GShardRunner(c),
};
