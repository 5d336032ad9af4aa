import type { VectorLoads } from './spec.js';

/**
 * 8-wide hooks (spec.ts, VectorLoads) that every segment strategy's expert GEMMs share: their
 * activations are [rows, h] chunks from rowChunkBase and their weights [E, d, h] chunks from
 * expertBase, so the same index arithmetic serves zero-buffer and MegaBlocks; what differs (a
 * gather, a recomputation) stays in each strategy's own hooks.
 */

/** Every contiguous row of the operands is a multiple of 8 halves: each vector is 16-byte aligned. */
export const ROWS_ALIGNED = 'P.d % 8u == 0u && P.h % 8u == 0u';
/** Element offset of expert t.seg's weight matrix in its chunk. */
export const EXPERT_WEIGHTS = '(t.seg - P.expertBase) * P.d * P.h';
/** Element offset of row m's hidden-size row in an activation chunk ([R,h] rows from rowChunkBase). */
export const ACT = (m: string) => `(${m} - P.rowChunkBase) * P.h`;

/**
 * dX = [da‖db]·[W1‖W3]ᵀ: with h a multiple of 8 a vector never straddles the two halves, so one
 * branch per vector picks its half. `row(m)`: where row m's da starts (Tutel's and GShard's
 * capacity buffers count rows from rowBegin).
 */
export function inputGradVectors(swiglu: boolean, row: (m: string) => string = ACT): VectorLoads {
  return {
    when: ROWS_ALIGNED,
    functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> {
  let l = ${row('m')};
  ${swiglu ? 'if (k >= P.h) { return dB8(l + k - P.h); }' : ''}
  return dA8(l + k);
}
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> {
  let w = ${EXPERT_WEIGHTS} + n * P.h;
  ${swiglu ? 'if (k >= P.h) { return W38(w + k - P.h); }' : ''}
  return W18(w + k);
}`,
  };
}
