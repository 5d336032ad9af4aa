import type { KernelContext } from '../../kernels/context.js';
import { encodeDenseGemm } from '../../kernels/gemm/dense.js';
import { encodeStreamCopy } from '../../kernels/stream-copy.js';
import type { DType } from '../config.js';
import { floatBytes, toHalf } from '../f16.js';
import { GpuTimer } from '../gpu/timer.js';
import { sampleSteadyCeiling, sampleUntilStable, summarize, type SamplingPolicy } from './stats.js';

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

/** One timed submission of what `encode` records: GPU time from timestamps where the adapter has them, else wall time to completion. */
export async function timeKernel(kernels: KernelContext, timer: GpuTimer | null, encode: (enc: ReturnType<KernelContext['encoder']>) => Promise<void>): Promise<number> {
  const enc = kernels.encoder(timer?.writes ?? null);
  const start = performance.now();
  await encode(enc);
  enc.flush();
  await kernels.device.queue.onSubmittedWorkDone();
  const wall = performance.now() - start;
  return timer ? (await timer.read(enc.passes)).totalMs : wall;
}

/**
 * The H100 ran the f16 8192³ product at 38 → 27 → 12 ms over its first 20 calls (clocks rising
 * from idle), and once sat at 41 ms for over a second before stepping down: on real GPUs each
 * GEMM ceiling keeps the card busy at least this long, then until it stops getting faster and its
 * samples agree (sampleSteadyCeiling), or it reads up to 2× low. Software adapters have no clocks.
 */
const WARM_MS = 1000;
const WARM_MAX_MS = 8000;

/** Samples of `run` as a ceiling is sampled: on a GPU busy at least WARM_MS first, then until steady; software adapters have no clocks. */
export function sampleWarmed(run: () => Promise<number>, sampling: SamplingPolicy, software: boolean): Promise<number[]> {
  return software ? sampleUntilStable(run, sampling) : sampleSteadyCeiling(run, sampling, { minMs: WARM_MS, maxMs: WARM_MAX_MS });
}

/**
 * One GEMM ceiling: a dense N³ product at `dtype` through `kernels` (whose engine is the one
 * measured), on non-zero operands (some GPUs run faster on zeros).
 */
async function measureGemm(kernels: KernelContext, n: number, dtype: DType, timer: GpuTimer | null, sampling: SamplingPolicy, software: boolean): Promise<GemmCeiling> {
  const a = kernels.allocator;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const prefix = dtype === 'f32' ? 'ceiling:' : `ceiling:${dtype}`;
  const buffers = ['A', 'B', 'C'].map((name) => a.create(`${prefix}${name}`, 'workspace', n * n * floatBytes(dtype), usage));
  try {
    const values = new Float32Array(n * n).map((_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
    const data: ArrayBufferView<ArrayBuffer> = dtype === 'f16' ? (toHalf(values) as Uint16Array<ArrayBuffer>) : values;
    kernels.device.queue.writeBuffer(buffers[0].buffer, 0, data);
    kernels.device.queue.writeBuffer(buffers[1].buffer, 0, data);
    const run = () => timeKernel(kernels, timer, (enc) => encodeDenseGemm(enc, { A: buffers[0], B: buffers[1], C: buffers[2] }, n, n, n, dtype));
    const samples = await sampleWarmed(run, sampling, software);
    const medianMs = summarize(samples).median;
    return { n, tflops: (2 * n ** 3) / (medianMs * 1e-3) / 1e12, medianMs, samples };
  } finally {
    buffers.forEach((b) => a.free(b));
  }
}

/**
 * Measures the ceilings in the same run as the benchmark (docs/design.md#ceilings): the SIMT
 * core at f32, the copy bandwidth, and with `subgroupMatrix` (a context whose engine is
 * subgroup-matrix) that engine at f16.
 */
export async function measureCeilings(kernels: KernelContext, options: { software: boolean; timestamps: boolean; sampling: SamplingPolicy; subgroupMatrix?: KernelContext | null }): Promise<Ceilings> {
  const a = kernels.allocator;
  const sizes = ceilingSizes(options.software);
  const copyBytes = Math.min(sizes.copyBytes, Math.floor(a.limits.maxBindingBytes / 16) * 16);
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const timer = options.timestamps ? new GpuTimer(a, 8) : null;
  try {
    const gemm = await measureGemm(kernels, sizes.gemmN, 'f32', timer, options.sampling, options.software);
    const src = a.create('ceiling:src', 'workspace', copyBytes, usage);
    const dst = a.create('ceiling:dst', 'workspace', copyBytes, usage);
    try {
      const copySamples = await sampleUntilStable(() => timeKernel(kernels, timer, (enc) => encodeStreamCopy(enc, { src, dst }, copyBytes / 16)), options.sampling);
      const copyMs = summarize(copySamples).median;
      const gemmSubgroupMatrix = options.subgroupMatrix ? await measureGemm(options.subgroupMatrix, sizes.subgroupMatrixN, 'f16', timer, options.sampling, options.software) : null;
      return {
        gemm,
        gemmSubgroupMatrix,
        bandwidth: { bytes: copyBytes, gbPerS: (2 * copyBytes) / (copyMs * 1e-3) / 1e9, medianMs: copyMs, samples: copySamples },
      };
    } finally {
      a.free(src);
      a.free(dst);
    }
  } finally {
    timer?.destroy();
  }
}
