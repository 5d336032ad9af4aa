import type { StepEncoder } from '../program.js';
import type { TrackedBuffer } from '../../src/gpu/allocator.js';
import { DENSE_PARAMS, DENSE_ROWS_TILING, gemmSource, LARGE_TILE, tiles } from './core.js';

/** Plain row-major C[M,N] = A[M,K]·B[K,N] through the shared core: the GEMM ceiling and a test of the core. */
export const denseGemm = gemmSource({
  name: 'dense-gemm',
  tile: LARGE_TILE,
  aContiguous: 'k',
  bContiguous: 'n',
  bindings: [
    { name: 'A', type: 'f32', access: 'read' },
    { name: 'B', type: 'f32', access: 'read' },
    { name: 'C', type: 'f32', access: 'read_write' },
  ],
  params: DENSE_PARAMS,
  functions: `${DENSE_ROWS_TILING}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return A[m * P.K + k]; }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return B[k * P.N + n]; }
fn storeC(t: Tile, m: u32, n: u32, c: f32) { C[m * P.N + n] = c; }`,
});

export async function encodeDenseGemm(enc: StepEncoder, a: TrackedBuffer, b: TrackedBuffer, c: TrackedBuffer, M: number, N: number, K: number): Promise<void> {
  await enc.dispatch({ source: denseGemm, params: { M, N, K }, buffers: [a, b, c], workgroups: [tiles(M, LARGE_TILE.m), tiles(N, LARGE_TILE.n), 1] });
}
