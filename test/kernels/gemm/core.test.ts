import { afterAll, describe, expect, it } from 'vitest';
import { gemmSource, type TileShape } from '../../../kernels/gemm/core.js';
import { DENSE_PARAMS, DENSE_ROWS_TILING, tiles } from '../../../kernels/gemm/tiling.js';
import { readTensor } from '../../../src/gpu/readback.js';
import { allocateTensor, chunkLayout, uploadTensor } from '../../../src/gpu/tensor.js';
import { productError, randomArray, testGpu, testKernels } from '../../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

/** C = A·B and C2 = A·B2 (dual) through one tile configuration of the core. */
function dualGemm(tile: TileShape) {
  return gemmSource({
    name: `core-test-${tile.m}x${tile.n}k${tile.k ?? 8}s${tile.stages ?? 1}p${tile.pad ?? 4}`,
    tile,
    dual: true,
    aContiguous: 'k',
    bContiguous: 'n',
    bindings: [
      { name: 'A', type: 'f32', access: 'read' },
      { name: 'B', type: 'f32', access: 'read' },
      { name: 'B2', type: 'f32', access: 'read' },
      { name: 'C', type: 'f32', access: 'read_write' },
      { name: 'C2', type: 'f32', access: 'read_write' },
    ],
    params: DENSE_PARAMS,
    functions: `${DENSE_ROWS_TILING}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return A[m * P.K + k]; }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return B[k * P.N + n]; }
fn loadB2(t: Tile, k: u32, n: u32) -> f32 { return B2[k * P.N + n]; }
fn storeC(t: Tile, m: u32, n: u32, c: f32, c2: f32) { C[m * P.N + n] = c; C2[m * P.N + n] = c2; }`,
  });
}

const TILES: TileShape[] = [
  { m: 64, n: 64, k: 16, pad: 0 },
  { m: 64, n: 128, k: 8, stages: 2 },
  { m: 128, n: 64, k: 8, stages: 2, pad: 0 },
  { m: 64, n: 64, k: 16, stages: 2 },
  { m: 128, n: 64, k: 8 },
];

describe('GEMM core tile configurations (single and double-buffered workgroup tiles)', () => {
  for (const tile of TILES) {
    for (const [M, N, K] of [
      [67, 131, 45],
      [1, 3, 7],
      [130, 70, 8],
    ]) {
      it(`${tile.m}×${tile.n}, K step ${tile.k}, ${tile.stages ?? 1} stage(s), pad ${tile.pad ?? 4}: ${M}×${K}·${K}×${N} matches float64`, async () => {
        const ctx = await testKernels();
        const tensor = (name: string, rows: number, cols: number) => allocateTensor(ctx.allocator, name, 'workspace', chunkLayout(rows, cols, 4, Infinity));
        const a = randomArray(M * K, 3 + M);
        const b = randomArray(K * N, 5 + N);
        const b2 = randomArray(K * N, 11 + K);
        const [A, B, B2, C, C2] = [tensor('A', M, K), tensor('B', K, N), tensor('B2', K, N), tensor('C', M, N), tensor('C2', M, N)];
        uploadTensor(ctx.device, A, a);
        uploadTensor(ctx.device, B, b);
        uploadTensor(ctx.device, B2, b2);
        const enc = ctx.encoder();
        await enc.dispatch({ source: dualGemm(tile), params: { M, N, K }, buffers: { A: A.chunks[0], B: B.chunks[0], B2: B2.chunks[0], C: C.chunks[0], C2: C2.chunks[0] }, workgroups: [tiles(M, tile.m), tiles(N, tile.n), 1] });
        enc.flush();
        for (const [out, right] of [
          [C, b],
          [C2, b2],
        ] as const) {
          expect(productError(await readTensor(ctx.allocator, out), a, right, M, N, K)).toBeLessThan(1e-5);
        }
        ctx.allocator.freeAll();
      });
    }
  }
});
