import { afterAll, describe, expect, it } from 'vitest';
import { gemmSource, withEngine, type GemmSpec, type SubgroupMatrixOptions, type TileShape } from '../../../kernels/gemm/core.js';
import { DENSE_PARAMS, DENSE_ROWS_TILING, tiles } from '../../../kernels/gemm/tiling.js';
import { KernelContext } from '../../../kernels/context.js';
import { fragmentLabel, type FragmentShape } from '../../../kernels/gemm/engines/fragment.js';
import { roundToHalf } from '../../../src/f16.js';
import { readTensor } from '../../../src/gpu/readback.js';
import { allocateTensor, chunkLayout, uploadTensor } from '../../../src/gpu/tensor.js';
import { randomArray, testGpu, testKernels } from '../../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

type Contiguity = { a: 'k' | 'm'; b: 'n' | 'k' };

/**
 * C = A·B (and C2 = A·B2 when dual) at f16 operands with f32 outputs, A and B stored with the
 * given contiguous index ([M,K] or [K,M]; [K,N] or [N,K]), through the emulated subgroup-matrix
 * engine: the staging, fragment offsets, column-major flags and band hand-off of the real one.
 */
function spec(tile: TileShape, c: Contiguity, dual: boolean, sm: SubgroupMatrixOptions): GemmSpec {
  const aIdx = c.a === 'k' ? 'm * P.K + k' : 'k * P.M + m';
  const bIdx = c.b === 'n' ? 'k * P.N + n' : 'n * P.K + k';
  return {
    name: `sm-test-${tile.m}x${tile.n}-${c.a}${c.b}-${dual}-${sm.k}-${sm.stages}-${sm.guards ?? 'edges'}${sm.grid ? `-g${sm.grid.join('')}` : ''}${sm.producers ? `-p${sm.producers}` : ''}`,
    dtype: 'f16',
    tile,
    dual,
    aContiguous: c.a,
    bContiguous: c.b,
    subgroupMatrix: sm,
    bindings: [
      { name: 'A', type: 'dt', access: 'read', vector: true },
      { name: 'B', type: 'dt', access: 'read', vector: true },
      { name: 'B2', type: 'dt', access: 'read', vector: true },
      { name: 'C', type: 'f32', access: 'read_write' },
      { name: 'C2', type: 'f32', access: 'read_write' },
    ],
    params: DENSE_PARAMS,
    // 8-wide hooks: the engine takes them where the contiguous row lengths are multiples of 8.
    vectorLoads: {
      when: `${c.a === 'k' ? 'P.K' : 'P.M'} % 8u == 0u && ${c.b === 'n' ? 'P.N' : 'P.K'} % 8u == 0u`,
      functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return A8(${aIdx}); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return B8(${bIdx}); }
fn loadB28(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return B28(${bIdx}); }`,
    },
    functions: `${DENSE_ROWS_TILING}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(A[${aIdx}]); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(B[${bIdx}]); }
fn loadB2(t: Tile, k: u32, n: u32) -> f32 { return f32(B2[${bIdx}]); }
fn storeC(t: Tile, m: u32, n: u32, c: f32${dual ? ', c2: f32' : ''}) { C[m * P.N + n] = c;${dual ? ' C2[m * P.N + n] = c2;' : ''} }`,
  };
}

/** Largest |got − ref| over Σ|terms| of the float64 product (f16-exact inputs: only f32 sums differ). */
function productError(got: Float32Array, a: Float32Array, b: Float32Array, M: number, N: number, K: number, c: Contiguity): number {
  let worst = 0;
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let ref = 0;
      let scale = 1e-30;
      for (let k = 0; k < K; k++) {
        const p = a[c.a === 'k' ? m * K + k : k * M + m] * b[c.b === 'n' ? k * N + n : n * K + k];
        ref += p;
        scale += Math.abs(p);
      }
      const g = got[m * N + n];
      if (!Number.isFinite(g)) return Infinity;
      worst = Math.max(worst, Math.abs(g - ref) / scale);
    }
  return worst;
}

const CASES: { tile: TileShape; c: Contiguity; dual: boolean; sm: SubgroupMatrixOptions }[] = [
  { tile: { m: 64, n: 64 }, c: { a: 'k', b: 'n' }, dual: false, sm: { k: 32, stages: 1 } },
  { tile: { m: 64, n: 128 }, c: { a: 'k', b: 'n' }, dual: true, sm: { k: 32, stages: 1 } },
  { tile: { m: 64, n: 128 }, c: { a: 'k', b: 'k' }, dual: false, sm: { k: 16, stages: 2 } },
  { tile: { m: 128, n: 128 }, c: { a: 'm', b: 'n' }, dual: false, sm: { k: 32, stages: 1 } },
  { tile: { m: 128, n: 128 }, c: { a: 'm', b: 'k' }, dual: false, sm: { k: 16, stages: 2 } },
  { tile: { m: 128, n: 64 }, c: { a: 'k', b: 'n' }, dual: false, sm: { k: 16, stages: 1 } },
  { tile: { m: 64, n: 64 }, c: { a: 'm', b: 'k' }, dual: true, sm: { k: 64, stages: 1 } },
  // The default range-tests edge tiles only (72×136 at K 48 has whole tiles beside edge ones); 'always' tests every tile.
  { tile: { m: 64, n: 64 }, c: { a: 'k', b: 'n' }, dual: false, sm: { k: 16, stages: 1, guards: 'always' } },
  { tile: { m: 64, n: 128 }, c: { a: 'm', b: 'k' }, dual: true, sm: { k: 16, stages: 1, guards: 'always' } },
  { tile: { m: 64, n: 64 }, c: { a: 'm', b: 'n' }, dual: false, sm: { k: 16, stages: 2, guards: 'always' } },
  // The other subgroup grid (tune's grid candidates): 2×4 where the built-in one is 4×2.
  { tile: { m: 128, n: 128 }, c: { a: 'k', b: 'n' }, dual: false, sm: { k: 16, stages: 1, grid: [2, 4] } },
];

/**
 * Runs C = A·B (C2 = A·B2) on the emulated engine with `fragment` (default: 16×16×16 over
 * subgroups of 32) and checks it against float64 on every output.
 */
async function checkProduct({ tile, c, dual, sm }: (typeof CASES)[number], M: number, N: number, K: number, fragment?: FragmentShape): Promise<void> {
  // A context on the emulated engine: one on SIMT would rebuild the kernel for SIMT at dispatch.
  const ctx = new KernelContext((await testKernels()).allocator, 'subgroup-matrix-emulated', { fragment });
  if (!(await testGpu()).hasF16) return; // lavapipe has shader-f16; an adapter without it cannot stage f16
  const tensor = (name: string, n: number, bytes: number) => allocateTensor(ctx.allocator, name, 'workspace', chunkLayout(1, n, bytes, Infinity));
  const a = roundToHalf(randomArray(M * K, 3 + M));
  const b = roundToHalf(randomArray(K * N, 5 + N));
  const b2 = roundToHalf(randomArray(K * N, 11 + K));
  const [A, B, B2] = [tensor('A', M * K, 2), tensor('B', K * N, 2), tensor('B2', K * N, 2)];
  const [C, C2] = [tensor('C', M * N, 4), tensor('C2', M * N, 4)];
  uploadTensor(ctx.device, A, a);
  uploadTensor(ctx.device, B, b);
  uploadTensor(ctx.device, B2, b2);
  const source = withEngine(gemmSource(spec(tile, c, dual, sm)), 'subgroup-matrix-emulated', { fragment });
  expect(source.code).toContain('emulatedMma');
  if (M === 72) expect(source.code).toContain('A_v8');
  expect(source.code.includes('wholeTile')).toBe(sm.guards !== 'always');
  if (fragment) expect(source.code).toContain(`of each ${fragment.m}×${fragment.n} fragment`);
  const enc = ctx.encoder();
  await enc.dispatch({ source, params: { M, N, K }, buffers: { A: A.chunks[0], B: B.chunks[0], B2: B2.chunks[0], C: C.chunks[0], C2: C2.chunks[0] }, workgroups: [tiles(M, tile.m), tiles(N, tile.n), 1] });
  enc.flush();
  expect(productError(await readTensor(ctx.allocator, C), a, b, M, N, K, c)).toBeLessThan(1e-5);
  if (dual) expect(productError(await readTensor(ctx.allocator, C2), a, b2, M, N, K, c)).toBeLessThan(1e-5);
  ctx.allocator.freeAll();
}

describe('subgroup-matrix engine, emulated (staging, fragment layout and hand-off checked against float64)', () => {
  for (const { tile, c, dual, sm } of CASES) {
    for (const [M, N, K] of [
      [67, 131, 45],
      [1, 3, 7],
      [130, 70, 16],
      [72, 136, 48],
    ]) {
      it(`${tile.m}×${tile.n} A ${c.a}-contiguous, B ${c.b}-contiguous${dual ? ', dual' : ''}, K step ${sm.k}, ${sm.stages} stage(s)${sm.guards ? `, guards ${sm.guards}` : ''}${sm.grid ? `, grid ${sm.grid.join('×')}` : ''}: ${M}×${K}·${K}×${N}`, async () => {
        await checkProduct({ tile, c, dual, sm }, M, N, K);
      });
    }
  }

  // tools/gemm-bench.mjs's measurement switches compute what they say: the first K step's
  // product once per step (K/16 times), or nothing.
  for (const diagnostic of ['stage-once', 'no-multiply', 'fragments-once'] as const) {
    it(`diagnostic ${diagnostic}: 64×64·64×64 at K step 16`, async () => {
      const ctx = new KernelContext((await testKernels()).allocator, 'subgroup-matrix-emulated');
      const [M, N, K] = [64, 64, 64];
      const tensor = (name: string, n: number, bytes: number) => allocateTensor(ctx.allocator, name, 'workspace', chunkLayout(1, n, bytes, Infinity));
      const a = roundToHalf(randomArray(M * K, 21));
      const b = roundToHalf(randomArray(K * N, 22));
      const [A, B, B2, C, C2] = [tensor('A', M * K, 2), tensor('B', K * N, 2), tensor('B2', K * N, 2), tensor('C', M * N, 4), tensor('C2', M * N, 4)];
      uploadTensor(ctx.device, A, a);
      uploadTensor(ctx.device, B, b);
      const source = withEngine(gemmSource(spec({ m: 64, n: 64 }, { a: 'k', b: 'n' }, false, { k: 16, stages: 1, diagnostic })), 'subgroup-matrix-emulated');
      const enc = ctx.encoder();
      await enc.dispatch({ source, params: { M, N, K }, buffers: { A: A.chunks[0], B: B.chunks[0], B2: B2.chunks[0], C: C.chunks[0], C2: C2.chunks[0] }, workgroups: [1, 1, 1] });
      enc.flush();
      const got = await readTensor(ctx.allocator, C);
      let worst = 0;
      for (let m = 0; m < M; m++)
        for (let n = 0; n < N; n++) {
          let first = 0;
          for (let k = 0; k < 16; k++) first += a[m * K + k] * b[k * N + n];
          const want = diagnostic === 'no-multiply' ? 0 : 4 * first;
          worst = Math.max(worst, Math.abs(got[m * N + n] - want));
        }
      expect(worst).toBeLessThan(1e-3);
      ctx.allocator.freeAll();
    });
  }

  // Other adapters' fragment shapes (engines/fragment.ts): the grid, offsets, loop counts and lane
  // ownership follow the shape, checked where a planted 16 would misplace rows or columns.
  const FRAGMENTS: FragmentShape[] = [
    { m: 8, n: 8, k: 8, subgroupSize: 32 },
    { m: 16, n: 8, k: 16, subgroupSize: 32 },
    { m: 8, n: 16, k: 16, subgroupSize: 16 },
    { m: 16, n: 16, k: 16, subgroupSize: 64 },
  ];
  // One case each (lavapipe compiles each emulated kernel for 6–20 s): between them, both
  // contiguities of A and B, the dual product, 8-wide hooks, edge tiles and 64/128-row tiles.
  const SHAPES: [number, number, number, number][] = [
    [1, 67, 131, 45],
    [6, 130, 70, 16],
    [3, 72, 136, 48],
    [4, 67, 131, 45],
  ];
  FRAGMENTS.forEach((fragment, f) => {
    const [i, M, N, K] = SHAPES[f];
    it(`fragment ${fragmentLabel(fragment)}: case ${i} (${CASES[i].tile.m}×${CASES[i].tile.n}${CASES[i].dual ? ', dual' : ''}), ${M}×${K}·${K}×${N}`, () => checkProduct(CASES[i], M, N, K, fragment));
  });

  // Warp specialization (SubgroupMatrixOptions.producers): odd, even, one and four K steps.
  const SPECIALIZED: (typeof CASES)[number][] = [
    { tile: { m: 128, n: 128 }, c: { a: 'k', b: 'n' }, dual: false, sm: { k: 16, producers: 4 } },
    { tile: { m: 64, n: 64 }, c: { a: 'm', b: 'k' }, dual: true, sm: { k: 16, producers: 4 } },
    { tile: { m: 64, n: 128 }, c: { a: 'k', b: 'k' }, dual: false, sm: { k: 16, producers: 4 } },
  ];
  for (const cs of SPECIALIZED)
    for (const [M, N, K] of [
      [67, 131, 45],
      [72, 136, 32],
      [130, 70, 64],
      [1, 3, 7],
    ])
      it(`${cs.sm.producers} producer subgroups, ${cs.tile.m}×${cs.tile.n} A ${cs.c.a}-contiguous, B ${cs.c.b}-contiguous${cs.dual ? ', dual' : ''}: ${M}×${K}·${K}×${N}`, () => checkProduct(cs, M, N, K));

  it('producer subgroups: the real engine multiplies only in the others, stages only in them, from constant buffers', () => {
    const code = withEngine(gemmSource(spec({ m: 128, n: 128 }, { a: 'k', b: 'n' }, false, { k: 32, producers: 4 })), 'subgroup-matrix', { workgroupBytes: 49152 }).code;
    expect(code).toContain('let producer = sg >= 4u;');
    expect(code).toMatch(/if \(!\(producer\)\) \{\n\s*const buf = 0u;\n\s*let a0_0 = subgroupMatrixLoad/);
    expect(code).toMatch(/let e = pi \+ 0u;/);
    expect(code).not.toMatch(/let e = li \+/);
    expect(code.match(/workgroupBarrier\(\)/g)!.length).toBe(5); // after the prologue, after each half step, and the hand-off loop's two
    expect(() => withEngine(gemmSource(spec({ m: 64, n: 64 }, { a: 'k', b: 'n' }, false, { producers: 8 })), 'subgroup-matrix')).toThrow(/8 producer subgroups of 8; allowed: 0 to 7/);
    // 6 producers are 192 threads: a 64×16 step does not split evenly over them.
    expect(() => withEngine(gemmSource(spec({ m: 64, n: 128 }, { a: 'k', b: 'n' }, false, { k: 16, producers: 6, grid: [1, 2] })), 'subgroup-matrix')).toThrow(/does not split into 4 halves for each of 192 threads/);
  });

  it("'fragments-once' loads the fragments in the first step only, into variables declared before the K loop", () => {
    const code = withEngine(gemmSource(spec({ m: 64, n: 64 }, { a: 'k', b: 'n' }, false, { k: 32, stages: 1, diagnostic: 'fragments-once' })), 'subgroup-matrix').code;
    expect(code).toMatch(/var a1_0: subgroup_matrix_left<f16, 16, 16>;[^]*for \(var kb = [^]*if \(kb == t\.kBegin\) \{\na0_0 = subgroupMatrixLoad/);
    expect(code).not.toContain('let a0_0');
    expect(code.match(/subgroupMatrixMultiplyAccumulate/g)).toHaveLength(2 * 2); // K 32: two k blocks of 2 accumulators (8 subgroups of 16×32 each)
  });

  it("the real engine declares the fragment's types in Dawn's order (left<T, K, M>, right<T, N, K>, result<T, N, M>)", () => {
    const code = withEngine(gemmSource(spec({ m: 64, n: 64 }, { a: 'k', b: 'n' }, false, {})), 'subgroup-matrix', { fragment: { m: 16, n: 8, k: 8, subgroupSize: 32 } }).code;
    expect(code).toContain('subgroupMatrixLoad<subgroup_matrix_left<f16, 8, 16>, row_major>');
    expect(code).toContain('subgroupMatrixLoad<subgroup_matrix_right<f16, 8, 8>, row_major>');
    expect(code).toContain(': subgroup_matrix_result<f32, 8, 16>;');
    expect(code).not.toMatch(/<f16, 16, 16>|<f32, 16, 16>/);
  });

  it('keeps f32 GEMMs and kernels that opt out (the router) on SIMT', () => {
    const base = spec({ m: 64, n: 64 }, { a: 'k', b: 'n' }, false, {});
    const f32 = gemmSource({ ...base, dtype: 'f32' });
    expect(withEngine(f32, 'subgroup-matrix')).toBe(f32);
    const router = gemmSource({ ...base, tensorCores: false });
    expect(withEngine(router, 'subgroup-matrix')).toBe(router);
    const real = withEngine(gemmSource(base), 'subgroup-matrix');
    expect(real.code).toContain('subgroupMatrixMultiplyAccumulate');
    expect(real.code).toContain('enable chromium_experimental_subgroup_matrix;');
  });
});
