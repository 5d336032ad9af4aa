import { GpuAllocator } from '../../src/gpu/allocator.js';
import { openGpu, type GpuContext } from '../../src/gpu/runtime.js';
import { KernelContext } from '../../kernels/context.js';

let shared: Promise<GpuContext> | undefined;

/** One device per test file: opening Dawn on lavapipe costs ~0.3 s and tests share nothing else. */
export function testGpu(): Promise<GpuContext> {
  shared ??= openGpu();
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
