import type { DType } from '../../src/config.js';
import type { TrackedBuffer } from '../../src/gpu/allocator.js';
import { perDtype, type StepEncoder } from '../program.js';
import { gemmGrid, gemmSource, LARGE_TILE, type GemmSpec, type SubgroupMatrixOptions, type TileShape } from './core.js';
import { DENSE_PARAMS, DENSE_ROWS_TILING } from './tiling.js';

/**
 * Plain row-major C[M,N] = A[M,K]·B[K,N] through the shared core: the GEMM ceiling (always f32)
 * and the training model's forward GEMMs (at the model's storage dtype). A, B and C share the
 * dtype; the tiles and the accumulation are f32 either way.
 */
export function denseGemmSpec(dtype: DType, variant: { name?: string; tile?: TileShape; subgroupMatrix?: SubgroupMatrixOptions; vectors?: boolean } = {}): GemmSpec {
  const vectors = variant.vectors ?? true;
  return {
    name: variant.name ?? 'dense-gemm',
    dtype,
    // Double-buffered workgroup tiles: 35.8 against 33.6 TFLOP/s single-buffered at 4096³ on the H200.
    tile: variant.tile ?? { ...LARGE_TILE, stages: 2 },
    aContiguous: 'k',
    bContiguous: 'n',
    ...(variant.subgroupMatrix && { subgroupMatrix: variant.subgroupMatrix }),
    bindings: [
      { name: 'A', type: 'dt', access: 'read', vector: vectors },
      { name: 'B', type: 'dt', access: 'read', vector: vectors },
      { name: 'C', type: 'dt', access: 'read_write' },
    ],
    params: DENSE_PARAMS,
    ...(vectors && {
      vectorLoads: {
        when: 'P.K % 8u == 0u && P.N % 8u == 0u',
        functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return A8(m * P.K + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return B8(k * P.N + n); }`,
      },
    }),
    functions: `${DENSE_ROWS_TILING}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(A[m * P.K + k]); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(B[k * P.N + n]); }
fn storeC(t: Tile, m: u32, n: u32, c: f32) { C[m * P.N + n] = dt(c); }`,
  };
}

/** The dense GEMM as the ceiling and the training model run it; `denseGemmSpec` gives tools/gemm-bench.mjs its variants. */
export const denseGemm = perDtype((dtype) => gemmSource(denseGemmSpec(dtype)));

/** The operands of a dense GEMM, by their binding names: C = A·B (or its transposed forms in kernels/train.ts). */
export type GemmOperands = {
  A: TrackedBuffer;
  B: TrackedBuffer;
  C: TrackedBuffer;
};

export async function encodeDenseGemm(enc: StepEncoder, b: GemmOperands, M: number, N: number, K: number, dtype: DType = 'f32'): Promise<void> {
  await enc.dispatch({ source: denseGemm(dtype), params: { M, N, K }, buffers: b, workgroups: gemmGrid({ M }, N) });
}
