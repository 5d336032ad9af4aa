import type { Activation, DType } from '../../src/config.js';
import { ACTIVATION_WGSL, activationGrad, plainActivation } from '../../kernels/activation.js';
import { gemmSource, type GemmBinding } from '../../kernels/gemm/core.js';
import { REDUCE_TILE, reduceStore, SEGMENT_REDUCE_PARAMS, SEGMENT_ROWS_PARAMS, SEGMENT_TILE, segmentReduceTiling, segmentRowsTiling, TRANSPOSED_SEGMENT_TILE, type ReduceMode } from '../../kernels/gemm/tiling.js';
import { perDtype, type KernelSource } from '../../kernels/program.js';
import { inputGradLoads } from '../../kernels/gemm/segment-vectors.js';
import { plainLoads } from '../../kernels/gemm/plain-loads.js';

/**
 * MegaBlocks' expert MLP as instances of the shared GEMM core: every operand is a dense,
 * materialised [rows, ·] buffer in the permuted (sorted, optionally padded) row order, and the
 * segments are the expert bins. In the padded (sparse) layout the bins' padding rows are zeros
 * and are computed like any other row: the block-sparse kernels of stk compute them too.
 *
 * Tile shapes are zero-buffer's (SEGMENT_TILE over bins, REDUCE_TILE for weight gradients), so
 * the strategies differ in dispatch and memory, not in the matmul.
 *
 * Every [rows, ·] buffer is chunked on the same row boundaries, so one dispatch binds chunk c
 * of each and sees rows [rowChunkBase, …); weights are bound one expert chunk at a time
 * (experts [expertBase, …)). Extra params beyond the tiling's: d, h, expertBase, rowChunkBase.
 *
 * Every float operand is stored at the layer's dtype (bindings 'dt'), as MegaBlocks runs its MLP
 * in the input dtype; tiles accumulate in f32, and weight gradients summed over row chunks are
 * rounded once per chunk.
 */
const SHAPE_PARAMS = [
  { name: 'd', type: 'u32' },
  { name: 'h', type: 'u32' },
  { name: 'expertBase', type: 'u32' },
  { name: 'rowChunkBase', type: 'u32' },
] as const;

const read = (name: string, type: GemmBinding['type'] = 'dt'): GemmBinding => ({ name, type, access: 'read' });
/** An operand the matrix engine's vector hooks read 8 halves at a time (kernels/gemm/plain-loads.ts). */
const operand = (name: string): GemmBinding => ({ ...read(name), vector: true });
const write = (name: string): GemmBinding => ({ name, type: 'dt', access: 'read_write' });
const SEGMENTS = [read('offsets', 'u32'), read('tileOffsets', 'u32')];
const local = (row: string, width: string) => `(${row} - P.rowChunkBase) * P.${width}`;
const W_DH = '(t.seg - P.expertBase) * P.d * P.h';

/** u from the stored (rounded) tensors, as torch computes act(a) and then act(a)·b from the sdd outputs. */
function uOf(activation: Activation): string {
  return activation === 'swiglu' ? 'f32(s) * f32(b)' : `${plainActivation(activation).fn}(f32(a))`;
}

/** a = Xp·W1_e, b = Xp·W3_e, silu(a) and u = act(a)(·b): torch's sdd outputs and the activation's, kept for backward. */
export function upProjection(activation: Activation, dtype: DType): KernelSource {
  const swiglu = activation === 'swiglu';
  const loads = plainLoads({ A: ['Xp', `${local('m', 'd')} + k`], B: ['W1', `${W_DH} + k * P.h + n`], ...(swiglu && { B2: ['W3', `${W_DH} + k * P.h + n`] as const }) });
  return gemmSource({
    name: `mb-up-${activation}`,
    dtype,
    tile: SEGMENT_TILE,
    dual: swiglu,
    aContiguous: 'k',
    bContiguous: 'n',
    bindings: [operand('Xp'), ...SEGMENTS, operand('W1'), ...(swiglu ? [operand('W3')] : []), write('A'), ...(swiglu ? [write('B'), write('S')] : []), write('U')],
    params: [...SEGMENT_ROWS_PARAMS, ...SHAPE_PARAMS],
    vectorLoads: loads.vectorLoads,
    functions: `${ACTIVATION_WGSL}
${segmentRowsTiling('offsets', 'tileOffsets')}
${loads.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32${swiglu ? ', c2: f32' : ''}) {
  let l = ${local('m', 'h')} + n;
  let a = dt(c);
  A[l] = a;
  ${swiglu ? 'let b = dt(c2); B[l] = b; let s = dt(silu(f32(a))); S[l] = s;' : ''}
  U[l] = dt(${uOf(activation)});
}`,
  });
}

/** Y = u·W2_e (unweighted: the gates are applied in the scatter). */
const DOWN_LOADS = plainLoads({ A: ['U', `${local('m', 'h')} + k`], B: ['W2', `${W_DH} + k * P.d + n`] });
export const downProjection = perDtype((dtype) => gemmSource({
  name: 'mb-down',
  dtype,
  tile: SEGMENT_TILE,
  aContiguous: 'k',
  bContiguous: 'n',
  bindings: [operand('U'), ...SEGMENTS, operand('W2'), write('Y')],
  params: [...SEGMENT_ROWS_PARAMS, ...SHAPE_PARAMS],
  vectorLoads: DOWN_LOADS.vectorLoads,
  functions: `${segmentRowsTiling('offsets', 'tileOffsets')}
${DOWN_LOADS.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32) { Y[${local('m', 'd')} + n] = dt(c); }`,
}));

/** dW2_e (+)= uᵀ·dY over the bin's rows in this chunk (stored by the first chunk). */
const DW2_LOADS = plainLoads({ A: ['U', `${local('k', 'h')} + m`], B: ['dY', `${local('k', 'd')} + n`] });
export const weightGradW2 = (dtype: DType, mode: ReduceMode) => gemmSource({
  name: 'mb-dW2',
  dtype,
  tile: REDUCE_TILE,
  aContiguous: 'm',
  bContiguous: 'n',
  bindings: [operand('U'), operand('dY'), read('offsets', 'u32'), write('dW2')],
  params: [...SEGMENT_REDUCE_PARAMS, ...SHAPE_PARAMS],
  vectorLoads: DW2_LOADS.vectorLoads,
  functions: `${segmentReduceTiling('offsets', mode)}
${DW2_LOADS.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32) { let w = ${W_DH} + m * P.d + n; ${reduceStore('dW2', 'w', 'c', mode)} }`,
});

/** dU = dY·W2_eᵀ (the gradient of u, materialised as torch's sdd backward does). */
const DU_LOADS = plainLoads({ A: ['dY', `${local('m', 'd')} + k`], B: ['W2', `${W_DH} + n * P.d + k`] });
export const hiddenGrad = perDtype((dtype) => gemmSource({
  name: 'mb-dU',
  dtype,
  tile: TRANSPOSED_SEGMENT_TILE,
  aContiguous: 'k',
  bContiguous: 'k',
  bindings: [operand('dY'), ...SEGMENTS, operand('W2'), write('dU')],
  params: [...SEGMENT_ROWS_PARAMS, ...SHAPE_PARAMS],
  vectorLoads: DU_LOADS.vectorLoads,
  functions: `${segmentRowsTiling('offsets', 'tileOffsets')}
${DU_LOADS.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32) { dU[${local('m', 'h')} + n] = dt(c); }`,
}));

/** dW1_e (+)= Xpᵀ·da and dW3_e (+)= Xpᵀ·db (stored by the first chunk). */
export function weightGradW13(activation: Activation, dtype: DType, mode: ReduceMode): KernelSource {
  const swiglu = activation === 'swiglu';
  const loads = plainLoads({ A: ['Xp', `${local('k', 'd')} + m`], B: ['dA', `${local('k', 'h')} + n`], ...(swiglu && { B2: ['dB', `${local('k', 'h')} + n`] as const }) });
  return gemmSource({
    name: `mb-dW13-${swiglu ? 'swiglu' : 'plain'}`,
    dtype,
    tile: REDUCE_TILE,
    dual: swiglu,
    aContiguous: 'm',
    bContiguous: 'n',
    bindings: [operand('Xp'), operand('dA'), ...(swiglu ? [operand('dB')] : []), read('offsets', 'u32'), write('dW1'), ...(swiglu ? [write('dW3')] : [])],
    params: [...SEGMENT_REDUCE_PARAMS, ...SHAPE_PARAMS],
    vectorLoads: loads.vectorLoads,
    functions: `${segmentReduceTiling('offsets', mode)}
${loads.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32${swiglu ? ', c2: f32' : ''}) {
  let w = ${W_DH} + m * P.h + n;
  ${reduceStore('dW1', 'w', 'c', mode)}
  ${swiglu ? reduceStore('dW3', 'w', 'c2', mode) : ''}
}`,
  });
}

/** dXp = da·W1_eᵀ + db·W3_eᵀ, one GEMM over K = 2h for SwiGLU (the two halves concatenated). */
export function inputGrad(activation: Activation, dtype: DType): KernelSource {
  const swiglu = activation === 'swiglu';
  const loads = inputGradLoads(swiglu);
  return gemmSource({
    name: `mb-dXp-${swiglu ? 'swiglu' : 'plain'}`,
    dtype,
    tile: TRANSPOSED_SEGMENT_TILE,
    aContiguous: 'k',
    bContiguous: 'k',
    bindings: [operand('dA'), ...(swiglu ? [operand('dB')] : []), ...SEGMENTS, operand('W1'), ...(swiglu ? [operand('W3')] : []), write('dXp')],
    params: [...SEGMENT_ROWS_PARAMS, ...SHAPE_PARAMS],
    vectorLoads: loads.vectorLoads,
    functions: `${segmentRowsTiling('offsets', 'tileOffsets')}
${loads.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32) { dXp[${local('m', 'd')} + n] = dt(c); }`,
  });
}


/** The layer's expert kernels for its activation and storage dtype, built once per runner. */
export function megablocksGemms(activation: Activation, dtype: DType) {
  return {
    up: upProjection(activation, dtype),
    down: downProjection(dtype),
    dW2: { store: weightGradW2(dtype, 'store'), add: weightGradW2(dtype, 'add') },
    dU: hiddenGrad(dtype),
    actGrad: activationGrad(activation, dtype),
    dW13: { store: weightGradW13(activation, dtype, 'store'), add: weightGradW13(activation, dtype, 'add') },
    dXp: inputGrad(activation, dtype),
  };
}
