import { metadataSizes } from '../../kernels/routing/metadata.js';
import type { LayerConfig } from '../../src/config.js';
import { floatBytes } from '../../src/f16.js';
import { chunkLayout, type ChunkLayout } from '../../src/gpu/tensor.js';
import { spec, type BufferSpec, type BufferTable } from '../../src/strategy/buffer-table.js';
import { persistentSpecs, type TableLimits } from '../../src/strategy/contract.js';

/**
 * The buffer tables of the capacity strategies (Tutel, GShard): the padded [E, C, ·] layouts and
 * the buffers both keep (router, routing metadata, the expert MLP over the slots and its
 * gradients); each strategy adds its own dispatch and combine buffers and phases.
 *
 * A capacity strategy's phases and step buffers: its buffer table without the persistent part.
 */
export interface CapacityStepTable {
  phases: string[];
  forwardEnd: string;
  /** The step buffers, each with its layout and lifetime (the table's step part). */
  buffers: BufferSpec[];
}

export type StepTableFor = (c: LayerConfig, capacity: number, chunkBytes: number) => CapacityStepTable;

/** The whole buffer table: the step part with the layer's persistent tensors. */
export function withPersistent(step: CapacityStepTable, c: LayerConfig, limits: TableLimits): BufferTable {
  return {
    phases: step.phases,
    forwardEnd: step.forwardEnd,
    persistent: persistentSpecs(c, limits),
    step: step.buffers,
  };
}

/**
 * The [E·C, d] and [E·C, h] tensors share one row chunking (that of the wider), so a GEMM between
 * them pairs chunk i with chunk i. Chunks hold whole experts when one expert fits a binding.
 */
export function expertRowLayouts(c: LayerConfig, C: number, chunkBytes: number): { d: ChunkLayout; h: ChunkLayout } {
  const rows = c.experts * C;
  const wide = Math.max(c.hidden, c.ffn);
  const f = floatBytes(c.dtype);
  const granularity = C > 0 && C * wide * f <= chunkBytes ? C : 1;
  const base = chunkLayout(rows, wide, f, chunkBytes, granularity);
  const withCols = (cols: number): ChunkLayout => ({ ...base, cols });
  return { d: withCols(c.hidden), h: withCols(c.ffn) };
}

/** Phases that differ between the strategies: where X enters the [E,C] grid and where O leaves it. */
export interface VariantPhases {
  dispatch: string;
  combine: string;
  combineGrad: string;
  dispatchGrad: string;
  /** Last phase that reads the slots map. */
  slotsUntil: string;
}

/**
 * Buffers both strategies have: router, routing metadata, the expert MLP over [E,C,·] and its
 * gradients. Router state (probabilities, gates, the dg partial sums and the router's gradient)
 * stays f32 and the metadata u32 at any dtype; every other float buffer is at the layer's dtype.
 */
export function commonBuffers(c: LayerConfig, C: number, chunkBytes: number, p: VariantPhases): BufferSpec[] {
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
  const whole = (rows: number, cols = 1) => chunkLayout(rows, cols, 4, Infinity);
  const f = c.dtype;
  const tokenRows = chunkLayout(T, d, floatBytes(f), Infinity);
  const m = metadataSizes(T, E, k);
  const x = expertRowLayouts(c, C, chunkBytes);
  const swiglu = c.activation === 'swiglu';
  const list: BufferSpec[] = [];
  const add = (name: string, tag: BufferSpec['tag'], layout: ChunkLayout, shape: number[], dtype: BufferSpec['dtype'], from: string, to: string) =>
    list.push(spec(name, tag, layout, shape, dtype, from, to));
  add('routerProbs', 'activations-saved', whole(T, E), [T, E], 'f32', 'router', 'router-grad');
  add('tokenExperts', 'routing-metadata', whole(T, k), [T, k], 'u32', 'router', 'router-grad');
  add('gates', 'routing-metadata', whole(T, k), [T, k], 'f32', 'router', 'router-grad');
  // The shared atomic-free builder gives Tutel's locations; its by-products die with the phase.
  add('blockCounts', 'workspace', whole(m.blockCounts), [m.blockCounts], 'u32', 'metadata', 'metadata');
  add('expertTokenIndices', 'workspace', whole(T * k), [T * k], 'u32', 'metadata', 'metadata');
  add('expertSlotOffsets', 'workspace', whole(m.expertSlotOffsets), [m.expertSlotOffsets], 'u32', 'metadata', 'metadata');
  add('expertTileOffsets', 'workspace', whole(m.expertTileOffsets), [m.expertTileOffsets], 'u32', 'metadata', 'metadata');
  add('slotTileOffsets', 'workspace', whole(m.slotTileOffsets), [m.slotTileOffsets], 'u32', 'metadata', 'metadata');
  add('slots', 'routing-metadata', whole(T, k), [T, k], 'u32', 'metadata', p.slotsUntil);
  add('expertOffsets', 'routing-metadata', whole(E + 1), [E + 1], 'u32', 'metadata', 'router-grad');
  add('dispatched', 'activations-saved', x.d, [E, C, d], f, p.dispatch, 'up-grad');
  add('a', 'activations-saved', x.h, [E, C, h], f, 'up', 'act-grad');
  if (swiglu) add('b', 'activations-saved', x.h, [E, C, h], f, 'up', 'act-grad');
  // silu(a): torch's mul saves both factors of silu(a) * b (Tutel's llama_ffn.py, DeepSpeed's
  // expert module; fidelity/tutel.json, fidelity/gshard.json).
  if (swiglu) add('siluA', 'activations-saved', x.h, [E, C, h], f, 'up', 'act-grad');
  add('u', 'activations-saved', x.h, [E, C, h], f, 'up', 'down-grad');
  add('y', 'activations-saved', x.d, [E, C, d], f, 'down', p.combineGrad);
  add('O', 'output', tokenRows, [T, d], f, p.combine, p.dispatchGrad);
  add('dY', 'workspace', x.d, [E, C, d], f, p.combineGrad, 'down-grad');
  add('dgPartial', 'workspace', whole(E * C), [E * C], 'f32', p.combineGrad, 'router-grad');
  add('routerGrad', 'workspace', whole(T, E), [T, E], 'f32', 'router-grad', 'router-grad');
  add('dX', 'output', tokenRows, [T, d], f, 'router-grad', p.dispatchGrad);
  add('dU', 'workspace', x.h, [E, C, h], f, 'down-grad', 'act-grad');
  add('da', 'workspace', x.h, [E, C, h], f, 'act-grad', 'up-grad');
  if (swiglu) add('db', 'workspace', x.h, [E, C, h], f, 'act-grad', 'up-grad');
  add('dDispatched', 'workspace', x.d, [E, C, d], f, 'up-grad', p.dispatchGrad);
  return list;
}

