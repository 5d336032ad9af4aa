import type { VectorLoads } from '../../kernels/gemm/core.js';
import { ACT, EXPERT_WEIGHTS as W, ROWS_ALIGNED } from '../../kernels/gemm/segment-vectors.js';

/**
 * MegaBlocks' expert GEMMs' 8-wide operand loads for the subgroup-matrix engine at f16
 * (kernels/gemm/spec.ts, VectorLoads): the same engine path zero-buffer's GEMMs take
 * (src/zero-buffer/vector-hooks.ts), so the strategies differ in dispatch, not in how tiles are
 * staged. Every operand is a materialised buffer in the permuted row order, so each hook is one
 * 16-byte load at the scalar hook's index; dXp's concatenated hooks are shared (segment-vectors.ts).
 */
const D = (m: string) => `(${m} - P.rowChunkBase) * P.d`;

/** a, b = Xp·W1, Xp·W3. */
export function upVectors(swiglu: boolean): VectorLoads {
  return {
    when: ROWS_ALIGNED,
    functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return Xp8(${D('m')} + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W18(${W} + k * P.h + n); }
${swiglu ? `fn loadB28(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W38(${W} + k * P.h + n); }` : ''}`,
  };
}

/** Y = u·W2. */
export const DOWN_VECTORS: VectorLoads = {
  when: ROWS_ALIGNED,
  functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return U8(${ACT('m')} + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W28(${W} + k * P.d + n); }`,
};

/** dW2 = uᵀ·dY: u read along h (the output's rows). */
export const DW2_VECTORS: VectorLoads = {
  when: ROWS_ALIGNED,
  functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return U8(${ACT('k')} + m); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return dY8(${D('k')} + n); }`,
};

/** dU = dY·W2ᵀ: W2 read along d. */
export const HIDDEN_GRAD_VECTORS: VectorLoads = {
  when: ROWS_ALIGNED,
  functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return dY8(${D('m')} + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W28(${W} + n * P.d + k); }`,
};

/** dW1, dW3 = Xpᵀ·da, Xpᵀ·db: Xp read along d (the output's rows). */
export function dW13Vectors(swiglu: boolean): VectorLoads {
  return {
    when: ROWS_ALIGNED,
    functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return Xp8(${D('k')} + m); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return dA8(${ACT('k')} + n); }
${swiglu ? `fn loadB28(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return dB8(${ACT('k')} + n); }` : ''}`,
  };
}
