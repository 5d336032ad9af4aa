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
 * dX = [da‖db]·[W1‖W3]ᵀ: K runs over h (da, W1) then h more (db, W3) for SwiGLU. The scalar hooks
 * (every engine) and their 8-wide twins (with h a multiple of 8 a vector never straddles the two
 * halves, so one branch per vector picks its half), from one template. `row(m)`: where row m's da
 * starts (Tutel's and GShard's capacity buffers count rows from rowBegin).
 */
export function inputGradLoads(swiglu: boolean, row: (m: string) => string = ACT): { functions: string; vectorLoads: VectorLoads } {
  const hooks = (wide: boolean) => {
    const load = (buffer: string, index: string) => (wide ? `${buffer}8(${index})` : `f32(${buffer}[${index}])`);
    const [suffix, type] = wide ? ['8', 'mat2x4<f16>'] : ['', 'f32'];
    return `fn loadA${suffix}(t: Tile, m: u32, k: u32) -> ${type} {
  let l = ${row('m')};
  ${swiglu ? `if (k >= P.h) { return ${load('dB', 'l + k - P.h')}; }` : ''}
  return ${load('dA', 'l + k')};
}
fn loadB${suffix}(t: Tile, k: u32, n: u32) -> ${type} {
  let w = ${EXPERT_WEIGHTS} + n * P.h;
  ${swiglu ? `if (k >= P.h) { return ${load('W3', 'w + k - P.h')}; }` : ''}
  return ${load('W1', 'w + k')};
}`;
  };
  return { functions: hooks(false), vectorLoads: { when: ROWS_ALIGNED, functions: hooks(true) } };
}
