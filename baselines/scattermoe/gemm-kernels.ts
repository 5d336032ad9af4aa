import type { Activation, DType } from '../../src/config.js';
import { ACTIVATION_WGSL, plainActivation } from '../../kernels/activation.js';
import { gemmSource, type GemmBinding } from '../../kernels/gemm/core.js';
import { REDUCE_TILE, reduceStore, SEGMENT_REDUCE_PARAMS, SEGMENT_ROWS_PARAMS, SEGMENT_TILE, segmentReduceTiling, segmentRowsTiling, TRANSPOSED_SEGMENT_TILE, type ReduceMode } from '../../kernels/gemm/tiling.js';
import type { KernelSource } from '../../kernels/program.js';
import { OUTPUT_PARAMS, outputBindings, outputSlots, scatteredStore } from './scattered-output.js';
import { plainLoads } from '../../kernels/gemm/plain-loads.js';
import { ROWS_ALIGNED } from '../../kernels/gemm/segment-vectors.js';

/**
 * ScatterMoE's grouped GEMMs (`scattermoe/kernels/ops.py` of v0.2.0, commit ec4a1a3) as
 * instances of the shared GEMM core.
 *
 * `scatter2scatter` walks the expert-sorted rows in blocks that never span two experts:
 * `padded_block_indices` pads each expert's row count up to whole blocks and lists every block's
 * first row, so a block belongs to the expert of its first row and its rows past that expert's
 * end are masked (`E_mask`). Here the same blocking through the shared segment tiling
 * (kernels/gemm/tiling.ts `segmentRowsTiling`, as zero-buffer and MegaBlocks tile): segment e is
 * expert e's rows [expertOffsets[e], expertOffsets[e+1]), its first tile is tileOffsets[e] (the
 * sort's per-expert tile offsets, which stand for upstream's block list), and a tile's rows stop
 * at its expert's end. One expert per tile, so one K loop and no row masks. Tile shapes are the
 * project's (64 rows, not Triton's 128), so strategies differ in dispatch and memory, not in the
 * matmul. Its input rows are either grouped (row m) or gathered from token rows
 * (sorted_scattered_idxs[m] / k), its output rows grouped (row m) or scattered (row
 * sorted_scattered_idxs[m]): x_grouped and y_grouped upstream, the loadA and storeC hooks here.
 *
 * `group_bwd_W` (groupXtY) reduces per expert over its rows: the shared per-segment reduction
 * over expert_offsets.
 *
 * Dispatches cover one row chunk of the grouped [R,·] tensors (rows [rowBegin, rowEnd), based at
 * rowChunkBase) and one weight chunk (experts [segBegin, segEnd), based at expertBase). A
 * scattered output beyond one binding (an [R,d] tensor over several row chunks) has its chunks
 * bound side by side and its store picks the chunk of each scattered row (scattered-output.ts),
 * so each tile is computed once, as upstream's, wherever the adapter's storage bindings hold all
 * the chunks. Float tensors are stored at the layer's dtype ('dt').
 */
const read = (name: string, type: GemmBinding['type'] = 'dt'): GemmBinding => ({ name, type, access: 'read' });
const write = (name: string): GemmBinding => ({ name, type: 'dt', access: 'read_write' });
/** An operand the matrix engine's vector hooks read 8 halves at a time (kernels/gemm/plain-loads.ts). */
const operand = (name: string): GemmBinding => ({ ...read(name), vector: true });
/** The blocking (expert segments and their first tiles), then the scatter's index list. */
const INDEX_BINDINGS = [read('expertOffsets', 'u32'), read('tileOffsets', 'u32'), read('sortedScatteredIdxs', 'u32')];

const SCATTER_PARAMS = [
  ...SEGMENT_ROWS_PARAMS,
  { name: 'rowChunkBase', type: 'u32' },
  { name: 'expertBase', type: 'u32' },
  { name: 'topK', type: 'u32' },
  { name: 'd', type: 'u32' },
  { name: 'h', type: 'u32' },
] as const;
/** A scattered output's kernels also take the window of its chunks they store. */
const SCATTERED_OUT_PARAMS = [...SCATTER_PARAMS, ...OUTPUT_PARAMS] as const;

/** Tiles follow the expert-aligned blocks; helpers for the grouped and scattered rows. */
const SCATTER_TILING = `${segmentRowsTiling('expertOffsets', 'tileOffsets')}
fn rowAt(m: u32, width: u32) -> u32 { return (m - P.rowChunkBase) * width; }`;

/** The tile's expert's [rows × cols] weight matrix within the bound weight chunk. */
const W_OFFSET = (rowsByCols: string) => `(t.seg - P.expertBase) * ${rowsByCols}`;

/** u(r, j) of the activation, from the values as stored (torch applies it to the stored output). */
function activationStores(activation: Activation): string {
  if (activation === 'swiglu') {
    return `let b = dt(c2);
  let a = dt(c);
  let l = rowAt(m, 2u * P.h);
  Hidden[l + n] = b;
  Hidden[l + P.h + n] = a;
  let s = dt(silu(f32(a)));
  SiluA[rowAt(m, P.h) + n] = s;
  U[rowAt(m, P.h) + n] = dt(f32(s) * f32(b));`;
  }
  return `let a = dt(c);
  Hidden[rowAt(m, P.h) + n] = a;
  U[rowAt(m, P.h) + n] = dt(${plainActivation(activation).fn}(f32(a)));`;
}

/** experts: scatter2scatter(X, W1|W3, x_grouped=False, y_grouped=True), and the activation's tensors. */
export function upProjection(activation: Activation, dtype: DType): KernelSource {
  const swiglu = activation === 'swiglu';
  const weight = `${W_OFFSET('P.d * P.h')} + k * P.h + n`;
  // X rows gathered through the scatter's index list, once per vector on the vector path.
  const loads = plainLoads({ A: ['X', '(sortedScatteredIdxs[m] / P.topK) * P.d + k'], B: ['W1', weight], ...(swiglu && { B2: ['W3', weight] as const }) });
  return gemmSource({
    name: `smoe-up-${activation}`,
    dtype,
    tile: SEGMENT_TILE,
    dual: swiglu,
    aContiguous: 'k',
    bContiguous: 'n',
    bindings: [operand('X'), ...INDEX_BINDINGS, operand('W1'), ...(swiglu ? [operand('W3')] : []), write('Hidden'), ...(swiglu ? [write('SiluA')] : []), write('U')],
    params: SCATTER_PARAMS,
    vectorLoads: loads.vectorLoads,
    functions: `${ACTIVATION_WGSL}
${SCATTER_TILING}
${loads.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32${swiglu ? ', c2: f32' : ''}) {
  ${activationStores(activation)}
}`,
  });
}

const DOWN_LOADS = plainLoads({ A: ['U', 'rowAt(m, P.h) + k'], B: ['W2', `${W_OFFSET('P.h * P.d')} + k * P.d + n`] });
const DU_LOADS = plainLoads({ A: ['dY', 'rowAt(m, P.d) + k'], B: ['W2', `${W_OFFSET('P.h * P.d')} + n * P.d + k`] });
const DX_A_LOADS = plainLoads({ A: ['dHidden', 'rowAt(m, P.K) + k'] });
/** Element (k, n) of the input gradient's B, [W3 | W1]ᵀ for SwiGLU: `suffix` '8' reads the 8 halves from there (h a multiple of 8: a vector never straddles the halves). */
const concatenatedWeights = (swiglu: boolean, suffix: '' | '8') => {
  const load = (w: string, i: string) => (suffix ? `${w}8(${i})` : `f32(${w}[${i}])`);
  return `let w = ${W_OFFSET('P.d * P.h')} + n * P.h;
  ${swiglu ? `if (k < P.h) { return ${load('W3', 'w + k')}; }\n  return ${load('W1', 'w + k - P.h')};` : `return ${load('W1', 'w + k')};`}`;
};
const DOWN_BINDINGS = [operand('U'), ...INDEX_BINDINGS, operand('W2')];

/**
 * output_experts: scatter2scatter(u, W2, x_grouped=True, y_grouped=False) into the scattered rows
 * of Y, `slots` of Y's chunks bound as Y0, Y1, … (scattered-output.ts).
 */
export function downProjection(dtype: DType, slots = 1): KernelSource {
  return gemmSource({
    name: 'smoe-down',
    dtype,
    tile: SEGMENT_TILE,
    aContiguous: 'k',
    bContiguous: 'n',
    bindings: [...DOWN_BINDINGS, ...outputBindings('Y', slots)],
    params: SCATTERED_OUT_PARAMS,
    vectorLoads: DOWN_LOADS.vectorLoads,
    functions: `${SCATTER_TILING}
${DOWN_LOADS.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32) {
  ${scatteredStore('Y', slots, 'P.d', 'dt(c)')}
}`,
  });
}

/** dU = dY·W2ᵀ: scatter2scatter(grouped g·dO, W2ᵀ, x_grouped=True, y_grouped=True). */
export function hiddenGrad(dtype: DType): KernelSource {
  return gemmSource({
    name: 'smoe-dU',
    dtype,
    tile: TRANSPOSED_SEGMENT_TILE,
    aContiguous: 'k',
    bContiguous: 'k',
    bindings: [operand('dY'), ...INDEX_BINDINGS, operand('W2'), write('dU')],
    params: SCATTER_PARAMS,
    vectorLoads: DU_LOADS.vectorLoads,
    functions: `${SCATTER_TILING}
${DU_LOADS.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32) { dU[rowAt(m, P.h) + n] = dt(c); }`,
  });
}

const inputGradBindings = (swiglu: boolean) => [operand('dHidden'), ...INDEX_BINDINGS, operand('W1'), ...(swiglu ? [operand('W3')] : [])];

/**
 * The input gradient's rows: scatter2scatter(d_hidden, (W1|W3)ᵀ, x_grouped=True, y_grouped=False)
 * into the scattered rows of grouped_x's buffer, `slots` of its chunks bound as dXRows0, dXRows1, ….
 * SwiGLU's K is 2h, d_hidden's halves [db | da] against W3 then W1.
 */
export function inputGrad(activation: Activation, dtype: DType, slots = 1): KernelSource {
  const swiglu = activation === 'swiglu';
  return gemmSource({
    name: `smoe-dX-${swiglu ? 'swiglu' : 'plain'}`,
    dtype,
    tile: TRANSPOSED_SEGMENT_TILE,
    aContiguous: 'k',
    bContiguous: 'k',
    bindings: [...inputGradBindings(swiglu), ...outputBindings('dXRows', slots)],
    params: SCATTERED_OUT_PARAMS,
    // d_hidden is a plain load; W's K runs over [W3 | W1], one branch per element or vector.
    vectorLoads: { when: ROWS_ALIGNED, functions: `${DX_A_LOADS.vectors}
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> {
  ${concatenatedWeights(swiglu, '8')}
}` },
    functions: `${SCATTER_TILING}
${DX_A_LOADS.functions}
fn loadB(t: Tile, k: u32, n: u32) -> f32 {
  ${concatenatedWeights(swiglu, '')}
}
fn storeC(t: Tile, m: u32, n: u32, c: f32) {
  ${scatteredStore('dXRows', slots, 'P.d', 'dt(c)')}
}`,
  });
}

const REDUCE_PARAMS = [...SEGMENT_REDUCE_PARAMS, { name: 'd', type: 'u32' }, { name: 'h', type: 'u32' }, { name: 'expertBase', type: 'u32' }, { name: 'rowChunkBase', type: 'u32' }] as const;
const LOCAL = (row: string, width: string) => `(${row} - P.rowChunkBase) * ${width}`;
const DW2_LOADS = plainLoads({ A: ['U', `${LOCAL('k', 'P.h')} + m`], B: ['dY', `${LOCAL('k', 'P.d')} + n`] });

/** group_bwd_W for W2: dW2_e (+)= uᵀ·dY over the expert's grouped rows in this chunk. */
export function weightGradW2(dtype: DType, mode: ReduceMode): KernelSource {
  return gemmSource({
    name: 'smoe-dW2',
    dtype,
    tile: REDUCE_TILE,
    aContiguous: 'm',
    bContiguous: 'n',
    bindings: [operand('U'), operand('dY'), read('expertOffsets', 'u32'), write('dW2')],
    params: REDUCE_PARAMS,
    vectorLoads: DW2_LOADS.vectorLoads,
    functions: `${segmentReduceTiling('expertOffsets', mode)}
${DW2_LOADS.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32) { let w = (t.seg - P.expertBase) * P.h * P.d + m * P.d + n; ${reduceStore('dW2', 'w', 'c', mode)} }`,
  });
}

/** group_bwd_W for W1|W3: dW1_e (+)= grouped_xᵀ·da and dW3_e (+)= grouped_xᵀ·db. */
export function weightGradW13(activation: Activation, dtype: DType, mode: ReduceMode): KernelSource {
  const swiglu = activation === 'swiglu';
  const width = swiglu ? '2u * P.h' : 'P.h';
  // d_hidden's halves are [db | da]: dW1 takes the second, dW3 the first.
  const loads = plainLoads({ A: ['groupedX', `${LOCAL('k', 'P.d')} + m`], B: ['dHidden', `${LOCAL('k', width)} + ${swiglu ? 'P.h + ' : ''}n`], ...(swiglu && { B2: ['dHidden', `${LOCAL('k', width)} + n`] as const }) });
  return gemmSource({
    name: `smoe-dW13-${swiglu ? 'swiglu' : 'plain'}`,
    dtype,
    tile: REDUCE_TILE,
    dual: swiglu,
    aContiguous: 'm',
    bContiguous: 'n',
    bindings: [operand('groupedX'), operand('dHidden'), read('expertOffsets', 'u32'), write('dW1'), ...(swiglu ? [write('dW3')] : [])],
    params: REDUCE_PARAMS,
    vectorLoads: loads.vectorLoads,
    functions: `${segmentReduceTiling('expertOffsets', mode)}
${loads.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32${swiglu ? ', c2: f32' : ''}) {
  let w = (t.seg - P.expertBase) * P.d * P.h + m * P.h + n;
  ${reduceStore('dW1', 'w', 'c', mode)}
  ${swiglu ? reduceStore('dW3', 'w', 'c2', mode) : ''}
}`,
  });
}

/** The scattered outputs' row chunks (Y's and grouped_x's, table.ts `layouts`) and the adapter's storage bindings. */
export interface ScatteredOutputs {
  chunks: number;
  maxStorageBuffers: number;
}

/**
 * Every GEMM of one layer, built once per runner and chunking; `slots`: how many chunks of the
 * scattered outputs the down projection and the input gradient bind per dispatch.
 */
export function scatterMoEGemms(activation: Activation, dtype: DType, outputs: ScatteredOutputs) {
  const slots = {
    down: outputSlots(DOWN_BINDINGS, outputs.chunks, outputs.maxStorageBuffers),
    dX: outputSlots(inputGradBindings(activation === 'swiglu'), outputs.chunks, outputs.maxStorageBuffers),
  };
  return {
    up: upProjection(activation, dtype),
    down: downProjection(dtype, slots.down),
    dW2: { store: weightGradW2(dtype, 'store'), add: weightGradW2(dtype, 'add') },
    dU: hiddenGrad(dtype),
    dW13: { store: weightGradW13(activation, dtype, 'store'), add: weightGradW13(activation, dtype, 'add') },
    dX: inputGrad(activation, dtype, slots.dX),
    slots,
  };
}
