import { KernelContext } from '../../kernels/context.js';
import { gemmGrid, gemmSource, withEngine, type GemmKernelSource } from '../../kernels/gemm/core.js';
import { denseGemmSpec } from '../../kernels/gemm/dense.js';
import { TileRefusedError } from '../../kernels/gemm/spec.js';
import type { GemmEngine, GemmRequest, LayerConfig } from '../config.js';
import { EnvironmentError, UsageError } from '../errors.js';
import { roundToHalf } from '../f16.js';
import { GpuAllocator } from '../gpu/allocator.js';
import { readTensor } from '../gpu/readback.js';
import type { GpuContext } from '../gpu/runtime.js';
import { gemmEngineFor, matrixFragment, subgroupMatrixUnavailable } from '../../kernels/gemm/engine-choice.js';
import { allocateTensor, chunkLayout, freeTensor, uploadTensor } from '../gpu/tensor.js';
import { GpuTimer } from '../gpu/timer.js';
import { TILE_CLASSES, TUNING_FORMAT, tunedTile, type TileClass, type TunedTile, type TuningTable } from '../gpu/tuning.js';
import { Xoshiro128 } from '../rng.js';
import { sampleWarmed, timeKernel } from '../measure/ceilings.js';
import { summarize, type SamplingPolicy } from '../measure/stats.js';
import { isSoftwareAdapter } from '../bench/run.js';
import { classShapes, TUNE_CANDIDATES, type GemmShape } from './shapes.js';

export interface TunedCandidate extends TunedTile {
  class: TileClass;
  /** ok: timed and correct; skipped: the engine cannot build it here (workgroup memory, subgroup grid); wrong: its product failed the float64 check (never chosen). */
  status: 'ok' | 'skipped' | 'wrong';
  medianMs: number | null;
  tflops: number | null;
  /** Largest |C − C₆₄| / bound over the sampled outputs (≤ 1 passes), null where not run. */
  errorRatio: number | null;
  chosen: boolean;
  message?: string;
}

export interface TuneResult {
  adapter: string;
  engine: GemmEngine;
  shapes: Record<TileClass, GemmShape>;
  candidates: TunedCandidate[];
  table: TuningTable;
}

/** Outputs checked against float64 per candidate: the corners and a random sample (a wrong tile shows at edges first). */
const SAMPLED_OUTPUTS = 64;

/** The engine --gemm asks `tune` to measure: the matrix engine (auto), or its emulation; SIMT is refused before any GPU work. */
export function tuneRequest(request: GemmRequest | undefined): 'subgroup-matrix' | 'subgroup-matrix-emulated' {
  if (request === 'simt') throw new UsageError('--gemm simt: tune measures the subgroup-matrix engine (SIMT tiles are not tuned); use --gemm subgroup-matrix, or subgroup-matrix-emulated to check on a software adapter');
  return request === 'subgroup-matrix-emulated' ? request : 'subgroup-matrix';
}

/**
 * The engine `tune` measures on this device: the matrix engine, real or (--gemm
 * subgroup-matrix-emulated, for CI) emulated. Without matrix units the real one is an environment
 * error (exit 4), as bench's --gemm subgroup-matrix is.
 */
export function tuneEngine(gpu: GpuContext): GemmEngine {
  const request = tuneRequest(gpu.gemmRequest);
  const reason = request === 'subgroup-matrix' ? subgroupMatrixUnavailable(gpu) : null;
  if (reason) throw new EnvironmentError(`tune measures the subgroup-matrix engine: ${reason}; run it on an adapter with matrix units, or check it here with --gemm subgroup-matrix-emulated (its times say nothing of a GPU's)`);
  return gemmEngineFor({ ...gpu, gemmRequest: request }, 'f16');
}

/**
 * Times each candidate tile (TUNE_CANDIDATES) of each shape class on `gpu`'s matrix engine, at the
 * layer's representative shapes (classShapes), checks every product against float64 on sampled
 * outputs, and picks the fastest correct candidate per class: the table bench --tuning reads.
 */
export async function tuneTiles(gpu: GpuContext, config: LayerConfig, options: { sampling: SamplingPolicy; onProgress?: (line: string) => void }): Promise<TuneResult> {
  const engine = tuneEngine(gpu);
  const shapes = classShapes(config);
  const allocator = new GpuAllocator(gpu.device, { maxBufferBytes: gpu.maxBufferBytes, maxBindingBytes: gpu.maxBindingBytes }, gpu.allocatorPolicy);
  const fragment = matrixFragment(gpu);
  const kernels = new KernelContext(allocator, engine, { fragment });
  const timer = gpu.hasTimestamps ? new GpuTimer(allocator, 8) : null;
  const candidates: TunedCandidate[] = [];
  const software = isSoftwareAdapter(gpu);
  try {
    for (const cls of TILE_CLASSES) {
      const { M, N, K } = shapes[cls];
      const tensor = (name: string, rows: number, cols: number) => allocateTensor(allocator, `tune:${name}`, 'workspace', chunkLayout(rows, cols, 2, gpu.maxBindingBytes));
      const [A, B, C] = [tensor('A', M, K), tensor('B', K, N), tensor('C', M, N)];
      if ([A, B, C].some((t) => t.chunks.length !== 1)) throw new UsageError(`tune: a ${M}×${K}·${K}×${N} operand exceeds one storage binding of this adapter; use a smaller --tokens or shape`);
      // Non-zero f16 operands (some GPUs run faster on zeros), rounded as the GPU stores them.
      const rng = new Xoshiro128(0x7e11e + M + N + K);
      const a = roundToHalf(Float32Array.from({ length: M * K }, () => rng.uniform() * 2 - 1));
      const b = roundToHalf(Float32Array.from({ length: K * N }, () => rng.uniform() * 2 - 1));
      uploadTensor(gpu.device, A, a);
      uploadTensor(gpu.device, B, b);
      const checked = sampledOutputs(M, N, rng);
      for (const tile of TUNE_CANDIDATES) {
        const label = `${cls} ${M}×${N}×${K}: ${tile.m}×${tile.n} K${tile.k}${tile.grid ? ` grid ${tile.grid.join('×')}` : ''}`;
        options.onProgress?.(label);
        const subgroupMatrix = { tile: { m: tile.m, n: tile.n }, k: tile.k, stages: tile.stages, ...(tile.grid && { grid: tile.grid }) };
        const source = denseGemmSpec('f16', { name: `tune-${tile.m}x${tile.n}k${tile.k}${tile.grid ? `g${tile.grid.join('')}` : ''}`, tile: { m: tile.m, n: tile.n }, subgroupMatrix });
        const base = { class: cls, ...tile, medianMs: null, tflops: null, errorRatio: null, chosen: false };
        let built: GemmKernelSource;
        try {
          built = withEngine(gemmSource(source), engine, { workgroupBytes: gpu.device.limits.maxComputeWorkgroupStorageSize, fragment }) as GemmKernelSource;
        } catch (error) {
          if (!(error instanceof TileRefusedError)) throw error;
          candidates.push({ ...base, status: 'skipped', message: (error as Error).message.replace(/^GEMM "[^"]*": /, '') });
          continue;
        }
        const run = () => timeKernel(kernels, timer, (enc) => enc.dispatch({ source: built, params: { M, N, K }, buffers: { A: A.chunks[0], B: B.chunks[0], C: C.chunks[0] }, workgroups: gemmGrid({ M }, N) }));
        await run();
        const errorRatio = checkProduct(await readTensor(allocator, C), a, b, { M, N, K }, checked);
        if (!(errorRatio <= 1)) {
          candidates.push({ ...base, status: 'wrong', errorRatio, message: `its product is off the float64 reference (error ratio ${errorRatio})` });
          continue;
        }
        // On a GPU each candidate keeps the card busy a while first, as the GEMM ceilings do (clocks rise from idle).
        const samples = await sampleWarmed(run, options.sampling, software);
        const medianMs = summarize(samples).median;
        candidates.push({ ...base, status: 'ok', medianMs, tflops: (2 * M * N * K) / (medianMs * 1e-3) / 1e12, errorRatio });
      }
      [A, B, C].forEach((t) => freeTensor(allocator, t));
    }
  } finally {
    timer?.destroy();
    kernels.destroy();
    allocator.releasePool();
  }
  const classes: TuningTable['classes'] = {};
  for (const cls of TILE_CLASSES) {
    const best = candidates.filter((c) => c.class === cls && c.status === 'ok').sort((x, y) => x.medianMs! - y.medianMs!)[0];
    if (!best) continue;
    best.chosen = true;
    classes[cls] = tunedTile(best);
  }
  return { adapter: gpu.adapter.description, engine, shapes, candidates, table: { format: TUNING_FORMAT, adapter: gpu.adapter.description, classes } };
}

/** The four corners and random outputs of an M×N product, as flat indices. */
function sampledOutputs(M: number, N: number, rng: Xoshiro128): number[] {
  const corners = [0, N - 1, (M - 1) * N, M * N - 1];
  const random = Array.from({ length: SAMPLED_OUTPUTS }, () => Math.floor(rng.uniform() * M * N));
  return [...new Set([...corners, ...random])];
}

/**
 * The largest error over the sampled outputs, as a ratio of its bound: f16 products summed in f32
 * and stored as f16, so |C − C₆₄| ≤ 2⁻¹¹·|C₆₄| (the store) + K·2⁻²⁴·Σ|a·b| (the sums), doubled for
 * margin. NaN stays NaN (fails the `≤ 1` test).
 */
function checkProduct(got: Float32Array, a: Float32Array, b: Float32Array, { N, K }: GemmShape, samples: number[]): number {
  let worst = 0;
  for (const idx of samples) {
    const i = Math.floor(idx / N);
    const j = idx % N;
    let sum = 0;
    let abs = 0;
    for (let k = 0; k < K; k++) {
      const p = a[i * K + k] * b[k * N + j];
      sum += p;
      abs += Math.abs(p);
    }
    const bound = 2 * (2 ** -11 * Math.abs(sum) + K * 2 ** -24 * abs) + Number.MIN_VALUE;
    const ratio = Math.abs(got[idx] - sum) / bound;
    if (Number.isNaN(ratio)) return NaN;
    worst = Math.max(worst, ratio);
  }
  return worst;
}
