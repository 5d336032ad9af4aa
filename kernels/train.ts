/**
 * Kernels of the small training model (src/train): the dense GEMMs around the MoE layer, all
 * through the shared core (kernels/gemm/core.ts), plus elementwise residual, MSE gradient and
 * Adam. Every kernel writes each output element from one thread in a fixed order: deterministic.
 *
 * Activations, weights and gradients are stored at the model's dtype (bindings of type `dt`);
 * every product, sum and the whole Adam update run in f32. At f16 the optimizer keeps f32 master
 * weights and f32 moments, and writes the f16 copy the next forward reads (mixed precision).
 */
import type { DType } from '../src/config.js';
import type { TrackedBuffer } from '../src/gpu/allocator.js';
import { gemmGrid, gemmSource, LARGE_TILE, type GemmBinding } from './gemm/core.js';
import { DENSE_PARAMS, DENSE_ROWS_TILING } from './gemm/tiling.js';
import { encodeDenseGemm, type GemmOperands } from './gemm/dense.js';
import { bindingPrelude, grid, LINEAR_WORKGROUP, perDtype, type KernelBinding, type KernelSource, type StepEncoder } from './program.js';

const GEMM_BINDINGS: readonly GemmBinding[] = [
  { name: 'A', type: 'dt', access: 'read' },
  { name: 'B', type: 'dt', access: 'read' },
  { name: 'C', type: 'dt', access: 'read_write' },
];

/** C[M,N] = Aᵀ·B with A [K,M], B [K,N] row-major (weight gradients: dW = Xᵀ·dY). */
export const gemmTN = perDtype((dtype) =>
  gemmSource({
    name: 'train-gemm-tn',
    dtype,
    tile: LARGE_TILE,
    aContiguous: 'm',
    bContiguous: 'n',
    bindings: GEMM_BINDINGS,
    params: DENSE_PARAMS,
    functions: `${DENSE_ROWS_TILING}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(A[k * P.M + m]); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(B[k * P.N + n]); }
fn storeC(t: Tile, m: u32, n: u32, c: f32) { C[m * P.N + n] = dt(c); }`,
  }),
);

/** C[M,N] = A·Bᵀ with A [M,K], B [N,K] row-major (input gradients: dX = dY·Wᵀ). */
export const gemmNT = perDtype((dtype) =>
  gemmSource({
    name: 'train-gemm-nt',
    dtype,
    tile: LARGE_TILE,
    aContiguous: 'k',
    bContiguous: 'k',
    bindings: GEMM_BINDINGS,
    params: DENSE_PARAMS,
    functions: `${DENSE_ROWS_TILING}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(A[m * P.K + k]); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(B[n * P.K + k]); }
fn storeC(t: Tile, m: u32, n: u32, c: f32) { C[m * P.N + n] = dt(c); }`,
  }),
);

/** C[M,N] = A[M,K]·B[K,N]. */
export async function encodeGemmNN(enc: StepEncoder, dtype: DType, b: GemmOperands, M: number, N: number, K: number): Promise<void> {
  await encodeDenseGemm(enc, b, M, N, K, dtype);
}

/** C[M,N] = A[K,M]ᵀ·B[K,N]. */
export async function encodeGemmTN(enc: StepEncoder, dtype: DType, b: GemmOperands, M: number, N: number, K: number): Promise<void> {
  await enc.dispatch({ source: gemmTN(dtype), params: { M, N, K }, buffers: b, workgroups: gemmGrid({ M }, N) });
}

/** C[M,N] = A[M,K]·B[N,K]ᵀ. */
export async function encodeGemmNT(enc: StepEncoder, dtype: DType, b: GemmOperands, M: number, N: number, K: number): Promise<void> {
  await enc.dispatch({ source: gemmNT(dtype), params: { M, N, K }, buffers: b, workgroups: gemmGrid({ M }, N) });
}

/** An elementwise kernel's operand: type 'dt' is stored at the kernel's dtype, 'f32' is f32 at any dtype. */
interface Operand extends KernelBinding {
  type: 'dt' | 'f32';
}

function elementwise(name: string, dtype: DType, bindings: readonly Operand[], params: KernelSource['params'], body: string): KernelSource {
  const code = `${bindingPrelude({ bindings, params }, dtype)}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (${LINEAR_WORKGROUP}) * 256u + li;
  if (i >= P.count) { return; }
  ${body}
}`;
  return { name, code, bindings, params };
}

const COUNT = [{ name: 'count', type: 'u32' }] as const;

/** out = a + b (the residual). */
export const addKernel = perDtype((dtype) =>
  elementwise(
    'train-add',
    dtype,
    [
      { name: 'a', access: 'read', type: 'dt' },
      { name: 'b', access: 'read', type: 'dt' },
      { name: 'out', access: 'read_write', type: 'dt' },
    ],
    COUNT,
    'out[i] = dt(f32(a[i]) + f32(b[i]));',
  ),
);

/**
 * dY = scale·(y − target): the gradient of scale/2·Σ(y − target)². The target stays f32 at any
 * dtype: it is the label the loss is computed against, not an activation of the model.
 */
export const mseGradKernel = perDtype((dtype) =>
  elementwise(
    'train-mse-grad',
    dtype,
    [
      { name: 'y', access: 'read', type: 'dt' },
      { name: 'tgt', access: 'read', type: 'f32' },
      { name: 'dY', access: 'read_write', type: 'dt' },
    ],
    [...COUNT, { name: 'scale', type: 'f32' }],
    'dY[i] = dt(P.scale * (f32(y[i]) - tgt[i]));',
  ),
);

const ADAM_PARAMS = [
  ...COUNT,
  // First element of this dispatch in the weight/gradient chunk and in the optimizer-state chunk.
  { name: 'paramOffset', type: 'u32' },
  { name: 'stateOffset', type: 'u32' },
  // 1/S for a loss scaled by S (a power of two, so the unscaling is exact).
  { name: 'gradScale', type: 'f32' },
  { name: 'lr', type: 'f32' },
  { name: 'beta1', type: 'f32' },
  { name: 'beta2', type: 'f32' },
  { name: 'eps', type: 'f32' },
  { name: 'bc1', type: 'f32' },
  { name: 'bc2', type: 'f32' },
] as const;

/**
 * Adam with bias correction (bc1 = 1 − β1^t, bc2 = 1 − β2^t, computed on the host). At f32 the
 * weight is its own master; at f16 the f32 master is updated and the f16 weight rewritten from it.
 */
export const adamKernel = perDtype((dtype) => {
  const master = dtype !== 'f32';
  const operands: Operand[] = [
    { name: 'w', access: 'read_write', type: 'dt' },
    { name: 'g', access: 'read', type: 'dt' },
    { name: 'm', access: 'read_write', type: 'f32' },
    { name: 'v', access: 'read_write', type: 'f32' },
  ];
  if (master) operands.push({ name: 'master', access: 'read_write', type: 'f32' });
  const p = master ? 'master[s]' : 'w[j]';
  return elementwise(
    'train-adam',
    dtype,
    operands,
    ADAM_PARAMS,
    `let j = P.paramOffset + i;
  let s = P.stateOffset + i;
  let gi = f32(g[j]) * P.gradScale;
  let mi = P.beta1 * m[s] + (1.0 - P.beta1) * gi;
  let vi = P.beta2 * v[s] + (1.0 - P.beta2) * gi * gi;
  m[s] = mi;
  v[s] = vi;
  let pi = ${p} - P.lr * (mi / P.bc1) / (sqrt(vi / P.bc2) + P.eps);
  ${master ? 'master[s] = pi;\n  w[j] = dt(pi);' : 'w[j] = pi;'}`,
  );
});

function groups(count: number): [number, number] {
  return grid(Math.ceil(count / 256));
}

/** out = a + b. */
export async function encodeAdd(enc: StepEncoder, dtype: DType, b: { a: TrackedBuffer; b: TrackedBuffer; out: TrackedBuffer }, count: number): Promise<void> {
  await enc.dispatch({ source: addKernel(dtype), params: { count }, buffers: b, workgroups: groups(count) });
}

/** dY = scale·(y − tgt): y and dY at `dtype`, the target tgt f32. */
export async function encodeMseGrad(enc: StepEncoder, dtype: DType, b: { y: TrackedBuffer; tgt: TrackedBuffer; dY: TrackedBuffer }, count: number, scale: number): Promise<void> {
  await enc.dispatch({ source: mseGradKernel(dtype), params: { count, scale }, buffers: b, workgroups: groups(count) });
}

export interface AdamParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** 1 − β1^t and 1 − β2^t for step t ≥ 1. */
  bc1: number;
  bc2: number;
  /** 1/S when the loss was scaled by S; 1 without loss scaling. */
  gradScale: number;
}

/** Buffers of one Adam dispatch: w and g at the dtype, m, v (and the f16 run's master) f32. */
export type AdamBuffers = {
  w: TrackedBuffer;
  g: TrackedBuffer;
  m: TrackedBuffer;
  v: TrackedBuffer;
  /** Required when dtype is not f32 (the kernel then declares it), absent at f32. */
  master?: TrackedBuffer;
};

/** Updates `count` parameters: elements [paramOffset, …) of w and g, [stateOffset, …) of the state. */
export async function encodeAdam(enc: StepEncoder, dtype: DType, b: AdamBuffers, count: number, paramOffset: number, stateOffset: number, a: AdamParams): Promise<void> {
  await enc.dispatch({ source: adamKernel(dtype), params: { count, paramOffset, stateOffset, ...a }, buffers: b, workgroups: groups(count) });
}
