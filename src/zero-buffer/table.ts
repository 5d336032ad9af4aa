import { dgParts, type RowTarget } from './expert-gemm.js';
import { metadataSizes } from '../../kernels/routing/metadata.js';
import { spec, type BufferSpec, type BufferTable } from '../strategy/buffer-table.js';
import type { LayerConfig } from '../config.js';
import { floatBytes } from '../f16.js';
import { chunkLayout, type ChunkLayout } from '../gpu/tensor.js';
import { persistentSpecs, type RoutingSummary, type TableLimits } from '../strategy/contract.js';

/**
 * What zero-buffer allocates in a step, phase by phase (its buffer table): the declaration that
 * tests hold the allocator to. The work of its kernels is in work.ts.
 */
export const PHASES = ['router', 'metadata', 'experts', 'recompute', 'expert-grads', 'router-grad', 'input-grad'];
export const FORWARD_END = 'experts';

/**
 * Below this many rows per (expert, slot) on average (T/E), slot passes would run mostly empty
 * 64-row tiles and read every weight k times; the combine and dX then go through a bounded block
 * of scratch rows instead (RowTarget 'rows'). With k = 1 the single slot pass is already expert-major.
 */
export const ROW_BLOCKS_BELOW = 256;

export function rowTarget(c: LayerConfig): RowTarget {
  return c.topK > 1 && c.tokens / c.experts < ROW_BLOCKS_BELOW ? 'rows' : 'tokens';
}

/** Scratch rows of the 'rows' target: at most T (never more than O itself) and one binding. */
export function scratchRows(c: LayerConfig, chunkBytes: number): number {
  const { tokens: T, hidden: d, topK: k } = c;
  return Math.max(1, Math.min(T * k, T, Math.floor(chunkBytes / (d * floatBytes(c.dtype)))));
}

export function layouts(c: LayerConfig, chunkBytes: number) {
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
  const R = T * k;
  const m = metadataSizes(T, E, k);
  const whole = (rows: number, cols: number) => chunkLayout(rows, cols, 4, Infinity);
  return {
    R,
    probs: whole(T, E),
    pairs: whole(T, k),
    blockCounts: whole(m.blockCounts, 1),
    rows: whole(R, 1),
    expertOffsets: whole(m.expertOffsets, 1),
    expertSlotOffsets: whole(m.expertSlotOffsets, 1),
    expertTileOffsets: whole(m.expertTileOffsets, 1),
    slotTileOffsets: whole(m.slotTileOffsets, 1),
    hidden: chunkLayout(R, h, floatBytes(c.dtype), chunkBytes),
    tokenRows: chunkLayout(T, d, floatBytes(c.dtype), Infinity),
    scratchRows: chunkLayout(scratchRows(c, chunkBytes), d, floatBytes(c.dtype), Infinity),
    dgPartial: whole(R, dgParts(h)),
  };
}

/** Routing does not change zero-buffer's buffers (dropless, no padding), so the runner plans without it. */
export function bufferTable(c: LayerConfig, _routing: RoutingSummary | null, limits: TableLimits): BufferTable {
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
  const L = layouts(c, limits.chunkBytes);
  const R = L.R;
  const step: BufferSpec[] = [];
  const add = (name: string, tag: BufferSpec['tag'], layout: ChunkLayout, shape: number[], dtype: BufferSpec['dtype'], from: string, to: string) =>
    step.push(spec(name, tag, layout, shape, dtype, from, to));
  const last = 'input-grad';
  add('routerProbs', 'activations-saved', L.probs, [T, E], 'f32', 'router', 'router-grad');
  add('tokenExperts', 'routing-metadata', L.pairs, [T, k], 'u32', 'router', 'router-grad');
  add('gates', 'routing-metadata', L.pairs, [T, k], 'f32', 'router', 'metadata');
  add('blockCounts', 'workspace', L.blockCounts, [metadataSizes(T, E, k).blockCounts], 'u32', 'metadata', 'metadata');
  add('expertTokenIndices', 'routing-metadata', L.rows, [R], 'u32', 'metadata', last);
  add('tokenSlotMap', 'routing-metadata', L.rows, [R], 'u32', 'metadata', last);
  add('rowGates', 'routing-metadata', L.rows, [R], 'f32', 'metadata', last);
  add('expertOffsets', 'routing-metadata', L.expertOffsets, [E + 1], 'u32', 'metadata', last);
  add('expertSlotOffsets', 'routing-metadata', L.expertSlotOffsets, [E * k + 1], 'u32', 'metadata', last);
  add('expertTileOffsets', 'routing-metadata', L.expertTileOffsets, [E + 1], 'u32', 'metadata', last);
  add('slotTileOffsets', 'routing-metadata', L.slotTileOffsets, [k * (E + 1)], 'u32', 'metadata', last);
  const swiglu = c.activation === 'swiglu';
  const f = c.dtype;
  if (c.checkpoint === 'full') {
    add('a', 'workspace', L.hidden, [R, h], f, 'experts', 'experts');
    if (swiglu) add('b', 'workspace', L.hidden, [R, h], f, 'experts', 'experts');
    add('a', 'workspace', L.hidden, [R, h], f, 'recompute', last);
    if (swiglu) add('b', 'workspace', L.hidden, [R, h], f, 'recompute', last);
  } else {
    add('a', 'activations-saved', L.hidden, [R, h], f, 'experts', last);
    if (swiglu) add('b', 'activations-saved', L.hidden, [R, h], f, 'experts', last);
    if (c.checkpoint === 'none') add('u', 'activations-saved', L.hidden, [R, h], f, 'experts', 'expert-grads');
  }
  add('O', 'output', L.tokenRows, [T, d], f, 'experts', last);
  const rows = rowTarget(c) === 'rows';
  if (rows) add('combineRows', 'workspace', L.scratchRows, [L.scratchRows.rows, d], f, 'experts', 'experts');
  // Router state and dg partial sums stay f32 at any dtype (the softmax and every reduction run in f32).
  add('dgPartial', 'workspace', L.dgPartial, [R, dgParts(h)], 'f32', 'expert-grads', 'router-grad');
  add('routerGrad', 'workspace', L.probs, [T, E], 'f32', 'router-grad', 'router-grad');
  add('dX', 'output', L.tokenRows, [T, d], f, 'router-grad', last);
  if (rows) add('inputGradRows', 'workspace', L.scratchRows, [L.scratchRows.rows, d], f, 'input-grad', 'input-grad');
  return { phases: PHASES, forwardEnd: FORWARD_END, persistent: persistentSpecs(c, limits), step };
}
