import type { VectorLoads } from '../../kernels/gemm/core.js';
import { ROWS_ALIGNED } from '../../kernels/gemm/segment-vectors.js';

/**
 * ScatterMoE's GEMMs' 8-wide operand loads for the subgroup-matrix engine at f16
 * (kernels/gemm/spec.ts, VectorLoads), the path zero-buffer's and MegaBlocks' GEMMs take: the
 * scalar hooks of gemm-kernels.ts once per 8 contiguous elements, the scatter's row lookup once
 * per vector. `rowAt` is the scatter tiling's (gemm-kernels.ts).
 */
const W = (rowsByCols: string) => `(t.seg - P.expertBase) * ${rowsByCols}`;
const LOCAL = (row: string, width: string) => `(${row} - P.rowChunkBase) * ${width}`;

/** scatter2scatter(X, W1|W3): X rows gathered once per vector. */
export function upVectors(swiglu: boolean): VectorLoads {
  return {
    when: ROWS_ALIGNED,
    functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return X8((sortedScatteredIdxs[m] / P.topK) * P.d + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W18(${W('P.d * P.h')} + k * P.h + n); }
${swiglu ? `fn loadB28(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W38(${W('P.d * P.h')} + k * P.h + n); }` : ''}`,
  };
}

/** scatter2scatter(u, W2), grouped rows. */
export const DOWN_VECTORS: VectorLoads = {
  when: ROWS_ALIGNED,
  functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return U8(rowAt(m, P.h) + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W28(${W('P.h * P.d')} + k * P.d + n); }`,
};

/** dU = dY·W2ᵀ: W2 read along d. */
export const HIDDEN_GRAD_VECTORS: VectorLoads = {
  when: ROWS_ALIGNED,
  functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return dY8(rowAt(m, P.d) + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W28(${W('P.h * P.d')} + n * P.d + k); }`,
};

/** d_hidden·(W3‖W1)ᵀ: with h a multiple of 8 a vector never straddles the two halves. */
export function inputGradVectors(swiglu: boolean): VectorLoads {
  return {
    when: ROWS_ALIGNED,
    functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return dHidden8(rowAt(m, P.K) + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> {
  let w = ${W('P.d * P.h')} + n * P.h;
  ${swiglu ? 'if (k < P.h) { return W38(w + k); }\n  return W18(w + k - P.h);' : 'return W18(w + k);'}
}`,
  };
}

/** group_bwd_W for W2: u read along h (the output's rows). */
export const DW2_VECTORS: VectorLoads = {
  when: ROWS_ALIGNED,
  functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return U8(${LOCAL('k', 'P.h')} + m); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return dY8(${LOCAL('k', 'P.d')} + n); }`,
};

/** group_bwd_W for W1|W3: grouped_x read along d; d_hidden's halves [db | da]. */
export function dW13Vectors(swiglu: boolean): VectorLoads {
  const width = swiglu ? '2u * P.h' : 'P.h';
  return {
    when: ROWS_ALIGNED,
    functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return groupedX8(${LOCAL('k', 'P.d')} + m); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return dHidden8(${LOCAL('k', width)} + ${swiglu ? 'P.h + ' : ''}n); }
${swiglu ? `fn loadB28(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return dHidden8(${LOCAL('k', width)} + n); }` : ''}`,
  };
}
