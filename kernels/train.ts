/**
 * Kernels of the small training model (src/train): the dense GEMMs around the MoE layer, all
 * through the shared core (kernels/gemm/core.ts), plus elementwise residual, MSE gradient and
 * Adam. Every kernel writes each output element from one thread in a fixed order: deterministic.
 */
import type { TrackedBuffer } from '../src/gpu/allocator.js';
import { DENSE_PARAMS, DENSE_ROWS_TILING, gemmSource, LARGE_TILE, tiles } from './gemm/core.js';
import { encodeDenseGemm } from './gemm/dense.js';
import { bindingPrelude, grid, LINEAR_WORKGROUP, type KernelSource, type StepEncoder } from './program.js';

const GEMM_BINDINGS = [
  { name: 'A', type: 'f32', access: 'read' },
  { name: 'B', type: 'f32', access: 'read' },
  { name: 'C', type: 'f32', access: 'read_write' },
] as const;

/** C[M,N] = Aᵀ·B with A [K,M], B [K,N] row-major (weight gradients: dW = Xᵀ·dY). */
export const gemmTN = gemmSource({
  name: 'train-gemm-tn',
  tile: LARGE_TILE,
  aContiguous: 'm',
  bContiguous: 'n',
  bindings: GEMM_BINDINGS,
  params: DENSE_PARAMS,
  functions: `${DENSE_ROWS_TILING}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return A[k * P.M + m]; }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return B[k * P.N + n]; }
fn storeC(t: Tile, m: u32, n: u32, c: f32) { C[m * P.N + n] = c; }`,
});

/** C[M,N] = A·Bᵀ with A [M,K], B [N,K] row-major (input gradients: dX = dY·Wᵀ). */
export const gemmNT = gemmSource({
  name: 'train-gemm-nt',
  tile: LARGE_TILE,
  aContiguous: 'k',
  bContiguous: 'k',
  bindings: GEMM_BINDINGS,
  params: DENSE_PARAMS,
  functions: `${DENSE_ROWS_TILING}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return A[m * P.K + k]; }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return B[n * P.K + k]; }
fn storeC(t: Tile, m: u32, n: u32, c: f32) { C[m * P.N + n] = c; }`,
});

function gemmWorkgroups(M: number, N: number): [number, number, number] {
  return [tiles(M, LARGE_TILE.m), tiles(N, LARGE_TILE.n), 1];
}

/** C[M,N] = A[M,K]·B[K,N]. */
export async function encodeGemmNN(enc: StepEncoder, a: TrackedBuffer, b: TrackedBuffer, c: TrackedBuffer, M: number, N: number, K: number): Promise<void> {
  await encodeDenseGemm(enc, a, b, c, M, N, K);
}

/** C[M,N] = A[K,M]ᵀ·B[K,N]. */
export async function encodeGemmTN(enc: StepEncoder, a: TrackedBuffer, b: TrackedBuffer, c: TrackedBuffer, M: number, N: number, K: number): Promise<void> {
  await enc.dispatch({ source: gemmTN, params: { M, N, K }, buffers: [a, b, c], workgroups: gemmWorkgroups(M, N) });
}

/** C[M,N] = A[M,K]·B[N,K]ᵀ. */
export async function encodeGemmNT(enc: StepEncoder, a: TrackedBuffer, b: TrackedBuffer, c: TrackedBuffer, M: number, N: number, K: number): Promise<void> {
  await enc.dispatch({ source: gemmNT, params: { M, N, K }, buffers: [a, b, c], workgroups: gemmWorkgroups(M, N) });
}

function elementwise(name: string, bindings: readonly ('read' | 'read_write')[], names: string[], params: KernelSource['params'], body: string): KernelSource {
  const code = `${bindingPrelude({ bindings, params }, names, names.map(() => 'f32'))}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (${LINEAR_WORKGROUP}) * 256u + li;
  if (i >= P.count) { return; }
  ${body}
}`;
  return { name, code, bindings, params };
}

/** out = a + b (the residual). */
export const addKernel = elementwise('train-add', ['read', 'read', 'read_write'], ['a', 'b', 'out'], [{ name: 'count', type: 'u32' }], 'out[i] = a[i] + b[i];');

/** dY = scale·(y − target): the gradient of scale/2·Σ(y − target)². */
export const mseGradKernel = elementwise(
  'train-mse-grad',
  ['read', 'read', 'read_write'],
  ['y', 'tgt', 'dY'],
  [
    { name: 'count', type: 'u32' },
    { name: 'scale', type: 'f32' },
  ],
  'dY[i] = P.scale * (y[i] - tgt[i]);',
);

/** Adam with bias correction (bc1 = 1 − β1^t, bc2 = 1 − β2^t, computed on the host). */
export const adamKernel = elementwise(
  'train-adam',
  ['read_write', 'read', 'read_write', 'read_write'],
  ['p', 'g', 'm', 'v'],
  [
    { name: 'count', type: 'u32' },
    { name: 'lr', type: 'f32' },
    { name: 'beta1', type: 'f32' },
    { name: 'beta2', type: 'f32' },
    { name: 'eps', type: 'f32' },
    { name: 'bc1', type: 'f32' },
    { name: 'bc2', type: 'f32' },
  ],
  `let gi = g[i];
  let mi = P.beta1 * m[i] + (1.0 - P.beta1) * gi;
  let vi = P.beta2 * v[i] + (1.0 - P.beta2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  p[i] = p[i] - P.lr * (mi / P.bc1) / (sqrt(vi / P.bc2) + P.eps);`,
);

function groups(count: number): [number, number] {
  return grid(Math.ceil(count / 256));
}

export async function encodeAdd(enc: StepEncoder, a: TrackedBuffer, b: TrackedBuffer, out: TrackedBuffer, count: number): Promise<void> {
  await enc.dispatch({ source: addKernel, params: { count }, buffers: [a, b, out], workgroups: groups(count) });
}

export async function encodeMseGrad(enc: StepEncoder, y: TrackedBuffer, target: TrackedBuffer, dY: TrackedBuffer, count: number, scale: number): Promise<void> {
  await enc.dispatch({ source: mseGradKernel, params: { count, scale }, buffers: [y, target, dY], workgroups: groups(count) });
}

export interface AdamParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** 1 − β1^t and 1 − β2^t for step t ≥ 1. */
  bc1: number;
  bc2: number;
}

export async function encodeAdam(enc: StepEncoder, p: TrackedBuffer, g: TrackedBuffer, m: TrackedBuffer, v: TrackedBuffer, count: number, a: AdamParams): Promise<void> {
  await enc.dispatch({ source: adamKernel, params: { count, ...a }, buffers: [p, g, m, v], workgroups: groups(count) });
}
