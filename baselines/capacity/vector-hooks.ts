import type { VectorLoads } from '../../kernels/gemm/core.js';
import { EXPERT_WEIGHTS as W, inputGradVectors, ROWS_ALIGNED } from '../../kernels/gemm/segment-vectors.js';

/**
 * Tutel's and GShard's expert GEMMs' 8-wide operand loads for the subgroup-matrix engine at f16
 * (kernels/gemm/spec.ts, VectorLoads), the path every strategy's expert GEMMs take: the scalar
 * hooks of gemm-kernels.ts once per 8 contiguous elements of the [E·C, ·] capacity buffers
 * (rows relative to the bound chunk's rowBegin) and the [E, d, h] weights.
 */
const ROW = (r: string, width: string) => `(${r} - P.rowBegin) * ${width}`;

/** a, b = x·W1_e, x·W3_e over the dispatched slots. */
export function upVectors(swiglu: boolean): VectorLoads {
  return {
    when: ROWS_ALIGNED,
    functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return dispatched8(${ROW('m', 'P.d')} + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W18(${W} + k * P.h + n); }
${swiglu ? `fn loadB28(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W38(${W} + k * P.h + n); }` : ''}`,
  };
}

/** Y = u·W2_e. */
export const DOWN_VECTORS: VectorLoads = {
  when: ROWS_ALIGNED,
  functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return U8(${ROW('m', 'P.h')} + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W28(${W} + k * P.d + n); }`,
};

/** dW2_e = uᵀ·dY: u read along h (the output's rows). */
export const DW2_VECTORS: VectorLoads = {
  when: ROWS_ALIGNED,
  functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return U8(${ROW('k', 'P.h')} + m); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return dY8(${ROW('k', 'P.d')} + n); }`,
};

/** dU = dY·W2_eᵀ: W2 read along d. */
export const HIDDEN_GRAD_VECTORS: VectorLoads = {
  when: ROWS_ALIGNED,
  functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return dY8(${ROW('m', 'P.d')} + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W28(${W} + n * P.d + k); }`,
};

/** dW1_e, dW3_e = xᵀ·da, xᵀ·db: x read along d. */
export function dW13Vectors(swiglu: boolean): VectorLoads {
  return {
    when: ROWS_ALIGNED,
    functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return dispatched8(${ROW('k', 'P.d')} + m); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return dA8(${ROW('k', 'P.h')} + n); }
${swiglu ? `fn loadB28(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return dB8(${ROW('k', 'P.h')} + n); }` : ''}`,
  };
}

/** d(dispatched) = [da‖db]·[W1_e‖W3_e]ᵀ: the segment strategies' hooks over capacity rows. */
export const dispatchedGradVectors = (swiglu: boolean): VectorLoads => inputGradVectors(swiglu, (m) => ROW(m, 'P.h'));
