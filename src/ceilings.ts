import type { KernelContext } from '../kernels/context.js';
import { encodeDenseGemm } from '../kernels/gemm/dense.js';
import { encodeStreamCopy } from '../kernels/stream-copy.js';
import { GpuTimer } from './gpu/timer.js';
import { sampleUntilStable, summarize, type SamplingPolicy } from './stats.js';

export interface Ceilings {
  /** The project's GEMM core on a dense square f32 product. */
  gemm: { n: number; tflops: number; medianMs: number; samples: number[] };
  /** A streaming vec4 copy: bytes read + bytes written per second. */
  bandwidth: { bytes: number; gbPerS: number; medianMs: number; samples: number[] };
}

/** Sizes that fill a real GPU but stay quick on a software one. */
export function ceilingSizes(software: boolean): { gemmN: number; copyBytes: number } {
  return software ? { gemmN: 256, copyBytes: 16 * 2 ** 20 } : { gemmN: 4096, copyBytes: 1024 * 2 ** 20 };
}

async function timeKernel(kernels: KernelContext, timer: GpuTimer | null, encode: (enc: ReturnType<KernelContext['encoder']>) => Promise<void>): Promise<number> {
  const enc = kernels.encoder(timer?.writes ?? null);
  const start = performance.now();
  await encode(enc);
  enc.flush();
  await kernels.device.queue.onSubmittedWorkDone();
  const wall = performance.now() - start;
  return timer ? (await timer.read(enc.passes)).totalMs : wall;
}

/** Measures both ceilings in the same run as the benchmark (docs/design.md#ceilings). */
export async function measureCeilings(kernels: KernelContext, options: { software: boolean; timestamps: boolean; sampling: SamplingPolicy }): Promise<Ceilings> {
  const a = kernels.allocator;
  const sizes = ceilingSizes(options.software);
  const n = sizes.gemmN;
  const copyBytes = Math.min(sizes.copyBytes, Math.floor(a.limits.maxBindingBytes / 16) * 16);
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const timer = options.timestamps ? new GpuTimer(a, 8) : null;
  const A = a.create('ceiling:A', 'workspace', n * n * 4, usage);
  const B = a.create('ceiling:B', 'workspace', n * n * 4, usage);
  const C = a.create('ceiling:C', 'workspace', n * n * 4, usage);
  try {
    // Non-zero operands: some GPUs run faster on zeros.
    const fill = new Float32Array(n * n).map((_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
    kernels.device.queue.writeBuffer(A.buffer, 0, fill);
    kernels.device.queue.writeBuffer(B.buffer, 0, fill);
    const gemmSamples = await sampleUntilStable(() => timeKernel(kernels, timer, (enc) => encodeDenseGemm(enc, A, B, C, n, n, n)), options.sampling);
    const gemmMs = summarize(gemmSamples).median;
    a.free(A);
    a.free(B);
    a.free(C);
    const src = a.create('ceiling:src', 'workspace', copyBytes, usage);
    const dst = a.create('ceiling:dst', 'workspace', copyBytes, usage);
    try {
      const copySamples = await sampleUntilStable(() => timeKernel(kernels, timer, (enc) => encodeStreamCopy(enc, src, dst, copyBytes / 16)), options.sampling);
      const copyMs = summarize(copySamples).median;
      return {
        gemm: { n, tflops: (2 * n ** 3) / (gemmMs * 1e-3) / 1e12, medianMs: gemmMs, samples: gemmSamples },
        bandwidth: { bytes: copyBytes, gbPerS: (2 * copyBytes) / (copyMs * 1e-3) / 1e9, medianMs: copyMs, samples: copySamples },
      };
    } finally {
      a.free(src);
      a.free(dst);
    }
  } finally {
    a.free(A);
    a.free(B);
    a.free(C);
    timer?.destroy();
  }
}
