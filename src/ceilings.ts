import type { KernelContext } from '../kernels/context.js';
import { encodeDenseGemm } from '../kernels/gemm/dense.js';
import { encodeStreamCopy } from '../kernels/stream-copy.js';
import { GpuTimer } from './gpu/timer.js';
import { sampleUntilStable, summarize, type SamplingPolicy } from './stats.js';

export interface GemmCeiling {
  n: number;
  tflops: number;
  medianMs: number;
  samples: number[];
}

export interface Ceilings {
  /** The project's GEMM core on a dense square f32 product (the SIMT engine). */
  gemm: GemmCeiling;
  /**
   * The core's subgroup-matrix engine on a dense square product of f16 operands (f32 sums), where
   * the adapter runs it: the ceiling of every case whose GEMMs ran on it. Absent elsewhere.
   */
  gemmSubgroupMatrix?: GemmCeiling | null;
  /** A streaming vec4 copy: bytes read + bytes written per second. */
  bandwidth: { bytes: number; gbPerS: number; medianMs: number; samples: number[] };
}

/** Sizes that fill a real GPU but stay quick on a software one (8192³ for the matrix units, as the tensor-core targets are stated). */
export function ceilingSizes(software: boolean): { gemmN: number; copyBytes: number; subgroupMatrixN: number } {
  return software ? { gemmN: 256, copyBytes: 16 * 2 ** 20, subgroupMatrixN: 256 } : { gemmN: 4096, copyBytes: 1024 * 2 ** 20, subgroupMatrixN: 8192 };
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

const WARM_MS = 1000;

/**
 * The subgroup-matrix engine on a dense f16 N³ product through a context that runs it. Operands
 * are f16 bit patterns of values in ±[0.5, 1) (never zeros; some GPUs run faster on zeros).
 */
async function measureSubgroupMatrix(kernels: KernelContext, n: number, timer: GpuTimer | null, sampling: SamplingPolicy): Promise<GemmCeiling> {
  const a = kernels.allocator;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const buffers = ['A', 'B', 'C'].map((name) => a.create(`ceiling:f16${name}`, 'workspace', n * n * 2, usage));
  try {
    const halves = new Uint16Array(n * n).map((_, i) => ((i * 2654435761) % 1024) | (14 << 10) | ((i & 1) << 15));
    kernels.device.queue.writeBuffer(buffers[0].buffer, 0, halves);
    kernels.device.queue.writeBuffer(buffers[1].buffer, 0, halves);
    const run = () => timeKernel(kernels, timer, (enc) => encodeDenseGemm(enc, buffers[0], buffers[1], buffers[2], n, n, n, 'f16'));
    // The H100 ran this product at 38 → 27 → 12 ms over its first 20 calls (clocks rising from
    // idle): keep it busy for a second before sampling, or the ceiling reads 2× low.
    for (const end = performance.now() + WARM_MS; performance.now() < end; ) await run();
    const samples = await sampleUntilStable(run, sampling);
    const medianMs = summarize(samples).median;
    return { n, tflops: (2 * n ** 3) / (medianMs * 1e-3) / 1e12, medianMs, samples };
  } finally {
    buffers.forEach((b) => a.free(b));
  }
}

/**
 * Measures the ceilings in the same run as the benchmark (docs/design.md#ceilings); with
 * `subgroupMatrix` (a context whose engine is subgroup-matrix) that engine's too.
 */
export async function measureCeilings(kernels: KernelContext, options: { software: boolean; timestamps: boolean; sampling: SamplingPolicy; subgroupMatrix?: KernelContext | null }): Promise<Ceilings> {
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
      const gemmSubgroupMatrix = options.subgroupMatrix ? await measureSubgroupMatrix(options.subgroupMatrix, sizes.subgroupMatrixN, timer, options.sampling) : null;
      return {
        gemm: { n, tflops: (2 * n ** 3) / (gemmMs * 1e-3) / 1e12, medianMs: gemmMs, samples: gemmSamples },
        gemmSubgroupMatrix,
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
