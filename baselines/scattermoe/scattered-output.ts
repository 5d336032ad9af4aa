import type { GemmBinding } from '../../kernels/gemm/core.js';

/**
 * A scatter2scatter output stored in scattered (pair) order over several row chunks: Y of the
 * down projection, and the input gradient's rows in grouped_x's storage. Upstream's
 * `scatter2scatter` (`scattermoe/kernels/ops.py`) computes each block once and stores each of
 * its rows at `sorted_scattered_idxs[m]` of one output tensor. Here an [R,d] tensor beyond one
 * storage binding is chunks of `rowsPerChunk` rows (table.ts `layouts`), and a block's rows may
 * land in any of them, so a kernel binds `slots` consecutive chunks at once (NAME0 …
 * NAME{slots−1}) and its store picks the chunk from the scattered row (row / rowsPerChunk).
 * Where every chunk fits in the adapter's storage bindings (`maxStorageBuffersPerShaderStage`)
 * one dispatch per row and weight chunk stores them all and each tile is computed once; where
 * they do not, the chunks go in windows of `slots`, one dispatch per window (`outputWindows`),
 * and a tile is computed once per window: ⌈chunks / slots⌉ times, not once per chunk.
 */

/** The dispatch's window of output chunks: slot s binds chunk base + s; chunks [begin, end) are stored. */
export const OUTPUT_PARAMS = [
  { name: 'dstRowsPerChunk', type: 'u32' },
  { name: 'dstChunkBase', type: 'u32' },
  { name: 'dstChunkBegin', type: 'u32' },
  { name: 'dstChunkEnd', type: 'u32' },
] as const;

/** The binding name of output slot `slot`. */
export const slotName = (name: string, slot: number): string => `${name}${slot}`;

export function outputBindings(name: string, slots: number): GemmBinding[] {
  return Array.from({ length: slots }, (_, s) => ({ name: slotName(name, s), type: 'dt', access: 'read_write' }));
}

/**
 * How many output chunks one dispatch binds: all of them where the adapter's storage bindings
 * allow, else as many as fit beside the kernel's other bindings (`fixed`) and the 16-byte views
 * the matrix engine adds for its vector operands (kernels/gemm/engines/subgroup-matrix.ts; counted
 * whichever engine runs, so that one build serves both). At least one: a kernel that cannot bind
 * even that could not run before either, and the dispatch says so.
 */
export function outputSlots(fixed: readonly GemmBinding[], chunks: number, maxStorageBuffers: number): number {
  const used = fixed.length + fixed.filter((b) => b.vector).length;
  return Math.max(1, Math.min(chunks, maxStorageBuffers - used));
}

/**
 * WGSL statements of storeC: the value for sorted row m, column n, at its scattered row in the
 * chunk that holds it, if this dispatch's window stores that chunk. `width`: the output's columns.
 */
export function scatteredStore(name: string, slots: number, width: string, value: string): string {
  const cases = Array.from({ length: slots }, (_, s) => `case ${s}u: { ${slotName(name, s)}[i] = ${value}; }`);
  return `let p = sortedScatteredIdxs[m];
  let chunk = p / P.dstRowsPerChunk;
  if (chunk < P.dstChunkBegin || chunk >= P.dstChunkEnd) { return; }
  let i = (p - chunk * P.dstRowsPerChunk) * ${width} + n;
  switch chunk - P.dstChunkBase {
    ${cases.join('\n    ')}
    default: {}
  }`;
}

/** One dispatch's output chunks: slots bind chunks [base, base + slots), it stores chunks [begin, end). */
export interface OutputWindow {
  base: number;
  begin: number;
  end: number;
}

/**
 * The windows covering `chunks` output chunks, `slots` at a time, each chunk stored by exactly
 * one. The last window is slid back to end at the last chunk, so every slot binds a chunk of
 * its own (one buffer never twice as writable storage in one dispatch) and one kernel serves all.
 */
export function outputWindows(chunks: number, slots: number): OutputWindow[] {
  if (slots < 1 || slots > chunks) throw new Error(`outputWindows: ${slots} slots for ${chunks} chunks (1 to ${chunks} allowed)`);
  return Array.from({ length: Math.ceil(chunks / slots) }, (_, w) => {
    const begin = w * slots;
    return { base: Math.min(begin, chunks - slots), begin, end: Math.min(chunks, begin + slots) };
  });
}

/** The window's chunks by slot binding name, and its params. */
export function windowBindings<T>(name: string, chunks: readonly T[], rowsPerChunk: number, window: OutputWindow, slots: number) {
  const buffers = Object.fromEntries(Array.from({ length: slots }, (_, s) => [slotName(name, s), chunks[window.base + s]]));
  const params = { dstRowsPerChunk: rowsPerChunk, dstChunkBase: window.base, dstChunkBegin: window.begin, dstChunkEnd: window.end };
  return { buffers, params };
}
