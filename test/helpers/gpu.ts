import { GpuAllocator } from '../../src/gpu/allocator.js';
import { openGpu, type GpuContext } from '../../src/gpu/runtime.js';
import { KernelContext } from '../../kernels/context.js';

let shared: Promise<GpuContext> | undefined;

/**
 * One device per test file: opening Dawn on lavapipe costs ~0.3 s and tests share nothing else.
 * Its layers poison every buffer they are handed (src/gpu/buffer-pool.ts): every strategy test
 * then also checks that no kernel relies on zero-filled or leftover buffer contents (issue 27).
 */
export function testGpu(): Promise<GpuContext> {
  shared ??= openGpu({ poisonPool: true });
  return shared;
}

export async function testKernels(limits: { maxBindingBytes?: number } = {}): Promise<KernelContext> {
  const gpu = await testGpu();
  const allocator = new GpuAllocator(gpu.device, { maxBufferBytes: gpu.maxBufferBytes, maxBindingBytes: limits.maxBindingBytes ?? gpu.maxBindingBytes });
  return new KernelContext(allocator);
}

/** Deterministic uniform(-1, 1) data for kernel tests (never zeros). */
export function randomArray(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 0xffffffff) * 2 - 1;
  }
  return out;
}

/** Relative L2 error of got [M,N] against the float64 product a [M,K] · b [K,N]; Infinity on NaN. */
export function productError(got: Float32Array, a: Float32Array, b: Float32Array, M: number, N: number, K: number): number {
  let err = 0;
  let norm = 0;
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let ref = 0;
      for (let k = 0; k < K; k++) ref += a[m * K + k] * b[k * N + n];
      if (!Number.isFinite(got[m * N + n])) return Infinity;
      err += (got[m * N + n] - ref) ** 2;
      norm += ref ** 2;
    }
  return Math.sqrt(err / Math.max(norm, 1e-300));
}
