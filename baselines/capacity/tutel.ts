import { decodeGather, encodeScatter, gateGradFromOutput } from './dispatch-kernels.js';
import { grid } from '../../kernels/program.js';
import { capacityOf, type LayerConfig } from '../../src/config.js';
import { chunkRowRange } from '../../src/gpu/tensor.js';
import type { LayerTensors, StepContext, Strategy } from '../../src/strategy/contract.js';
import { unsupportedCapacity } from './runner.js';
import { commonBuffers, withPersistent, type CapacityStepTable } from './table.js';
import { CapacityRunner } from './experts.js';
import { capacityRows, tutelWork } from './work.js';

/**
 * Tutel's fast dispatcher (tutel/impls/fast_dispatch.py): capacity C = k·⌊cf·⌈T/E⌉⌋ (cf = 0:
 * the busiest expert's load, read back mid-step), locations by per-slot cumsum (slot 0 first),
 * overflow dropped; the encode zero-fills [E,C,d] and scatters token rows into it, the batched
 * experts run densely over all C slots of every expert, and the decode gathers gate-weighted rows
 * back per token. Everything the experts produce is saved for backward: Tutel has no recompute,
 * so --checkpoint does not apply and is ignored.
 * dtype: the dispatcher upcasts to f32 unless the input is f16; with f16 input every [E,C,·]
 * tensor, O and dX stay f16 (sums in f32); gates and the dg partial sums stay f32.
 */
const PHASES = ['router', 'metadata', 'encode', 'up', 'down', 'decode', 'decode-grad', 'router-grad', 'down-grad', 'act-grad', 'up-grad', 'encode-grad'];

export function tutelStepTable(c: LayerConfig, C: number, chunkBytes: number): CapacityStepTable {
  const buffers = commonBuffers(c, C, chunkBytes, { dispatch: 'encode', combine: 'decode', combineGrad: 'decode-grad', dispatchGrad: 'encode-grad', slotsUntil: 'encode-grad' });
  return { phases: PHASES, forwardEnd: 'decode', buffers };
}

class TutelRunner extends CapacityRunner {
  constructor(c: LayerConfig) {
    super(c, tutelStepTable, 'tutel');
  }

  private rowChunks(name: string) {
    const layout = this.get(name).layout;
    return Array.from({ length: layout.chunkCount }, (_, i) => {
      const r = chunkRowRange(layout, i);
      return { i, rowBegin: r.start, rowEnd: r.start + r.count };
    });
  }

  /** dst = zeros, then each kept pair's row of src (times its gate when gated) into its slot. */
  private async encode(step: StepContext, src: LayerTensors['X'], dst: string, gated: boolean) {
    const { tokens: T, hidden: d, topK: k } = this.c;
    for (const chunk of this.get(dst).chunks) step.enc.clear(chunk);
    for (const r of this.rowChunks(dst)) {
      if (r.rowEnd === r.rowBegin) continue;
      await step.enc.dispatch({
        source: encodeScatter(this.c.dtype),
        params: { pairs: T * k, k, cols: d, rowBegin: r.rowBegin, rowEnd: r.rowEnd, gated: gated ? 1 : 0 },
        buffers: { slots: this.chunk('slots'), gates: this.chunk('gates'), src: src.chunks[0], dst: this.chunk(dst, r.i) },
        workgroups: grid(T * k),
      });
    }
  }

  /** dst[t] (+)= Σ_s (g_s·) src[slot_s], chunk by chunk of src. */
  private async decode(step: StepContext, src: string, dst: string, gated: boolean, accumulate: boolean) {
    const { tokens: T, hidden: d, topK: k } = this.c;
    for (const r of this.rowChunks(src)) {
      const add = accumulate || r.i > 0;
      // An empty first chunk still has to write the zeros of an all-dropped output.
      if (r.rowEnd === r.rowBegin && add) continue;
      await step.enc.dispatch({
        source: decodeGather(this.c.dtype),
        params: { tokens: T, k, cols: d, rowBegin: r.rowBegin, rowEnd: r.rowEnd, gated: gated ? 1 : 0, accumulate: add ? 1 : 0 },
        // Ungated (dX) runs after the gates are gone; any read-only buffer fills the unread binding.
        buffers: { slots: this.chunk('slots'), gates: gated ? this.chunk('gates') : this.chunk('slots'), src: this.chunk(src, r.i), dst: this.chunk(dst) },
        workgroups: grid(T),
      });
    }
  }

  protected async dispatchForward(step: StepContext, layer: LayerTensors) {
    this.enter(step, 'encode');
    this.alloc(step, 'dispatched');
    await this.encode(step, layer.X, 'dispatched', false);
  }

  protected async combineForward(step: StepContext) {
    this.enter(step, 'decode');
    this.alloc(step, 'O');
    await this.decode(step, 'y', 'O', true, false);
  }

  protected async combineBackward(step: StepContext, layer: LayerTensors) {
    const { tokens: T, hidden: d, topK: k } = this.c;
    this.enter(step, 'decode-grad');
    this.alloc(step, 'dY');
    await this.encode(step, layer.dO, 'dY', true);
    // dg = ⟨dO_t, y[slot]⟩ from the saved expert output, as Tutel's decode backward computes it.
    this.alloc(step, 'dgPartial');
    for (const r of this.rowChunks('y')) {
      if (r.rowEnd === r.rowBegin) continue;
      await step.enc.dispatch({
        source: gateGradFromOutput(this.c.dtype),
        params: { pairs: T * k, k, cols: d, rowBegin: r.rowBegin, rowEnd: r.rowEnd },
        buffers: { slots: this.chunk('slots'), dO: layer.dO.chunks[0], y: this.chunk('y', r.i), dgPartial: this.chunk('dgPartial') },
        workgroups: grid(T * k),
      });
    }
  }

  protected async dispatchBackward(step: StepContext) {
    this.enter(step, 'encode-grad');
    await this.decode(step, 'dDispatched', 'dX', false, true);
  }
}

export const tutel: Strategy = {
  id: 'tutel',
  // Okabe–Ito palette (src/render/bench-format.ts says why).
  style: { color: '#E69F00', marker: 'square' },
  title: 'Tutel fast dispatcher: capacity C, cumsum locations, zero-padded [E,C,d] encode/decode; saves everything (--checkpoint ignored)',
  dropless: false,
  unsupported: unsupportedCapacity,
  bufferTable: (c, routing, limits) => withPersistent(tutelStepTable(c, capacityOf(c, routing.expertLoads), limits.chunkBytes), c, limits),
  work: tutelWork,
  expertRows: capacityRows,
  create: (c) => new TutelRunner(c),
};
