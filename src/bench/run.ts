import { REFERENCE_STRATEGY } from '../registry.js';
import { watchLoad } from '../measure/load.js';
import { plantNote } from '../gpu/planted-slowdown.js';
import { join } from 'node:path';
import { measureCeilings } from '../measure/ceilings.js';
import { UsageError } from '../errors.js';
import { GpuAllocator } from '../gpu/allocator.js';
import type { DType, GemmEngine } from '../config.js';
import type { GpuContext } from '../gpu/runtime.js';
import { gemmEngineFor, matrixFragment } from '../../kernels/gemm/engine-choice.js';
import { KernelContext } from '../../kernels/context.js';
import { writeFileAtomic } from '../fs.js';
import type { Provenance } from '../measure/provenance.js';
import type { SamplingPolicy } from '../measure/stats.js';
import { runCase, type CaseOptions } from './case.js';
import { caseConfig, caseLabel, configKey, type SweepCase, type SweepCases } from './cases.js';
import { BENCH_SCHEMA, type BenchCase, type BenchResults, type BenchSettings, type GpuSettings, type SavedSweep, type ShardRecord, type Testbed } from './schema.js';

export interface BenchOptions {
  preset: string | null;
  pass: 'forward' | 'train';
  layers: number;
  sampling: SamplingPolicy;
  memoryLimit: number | null;
  outDir: string;
  provenance: Provenance;
  /** The sweep the cases came from, saved in the settings so that --resume continues exactly it. */
  sweep?: SavedSweep;
  /** bench --shard: the slice `plan` holds, saved in the settings (--resume and merge read it). */
  shard?: ShardRecord;
  /** Results of an interrupted run of the same sweep: finished cases are kept byte for byte, not redone. */
  resume?: BenchResults;
  /** A case starts running (kept cases of a resumed run do not start). */
  onCaseStart?: (index: number, total: number, label: string) => void;
  onCaseDone?: (result: BenchCase) => void;
  /** Writes the report files (results.json is always written here). */
  writeReports?: (dir: string, results: BenchResults) => Promise<void>;
  makeTimer?: CaseOptions['makeTimer'];
  /** Which float64 check each case gets (CaseOptions.check). */
  check?: CaseOptions['check'];
  /** The GPU flags the device was opened with, saved so that --resume holds to them (sweep.ts). */
  gpu?: GpuSettings;
  /**
   * A fresh device for the next case. Dawn does not always hand back the memory of a
   * destroyed 80 GiB layer to the next one on the same device; a new device starts clean.
   */
  reopenDevice?: (old: GpuContext) => Promise<GpuContext>;
  /** Measure ceilings (default true); tests that only need cases skip them. */
  ceilings?: boolean;
}

const LARGE_CASE_BYTES = 4 * 2 ** 30;

export function isSoftwareAdapter(gpu: GpuContext): boolean {
  const a = gpu.adapter;
  return a.isFallbackAdapter || a.architecture === 'software' || /llvmpipe|lavapipe|swiftshader|warp/i.test(`${a.description} ${a.device}`);
}

/**
 * LP_NUM_THREADS as lavapipe reads it, where set: the CI gate runs lavapipe on the calling thread
 * (0) so that a busy machine cannot stretch the waits between its worker threads unevenly across
 * strategies (docs/design.md#gate-verdicts).
 */
export function softwareThreads(gpu: GpuContext, env: NodeJS.ProcessEnv = process.env): string[] {
  const threads = env.LP_NUM_THREADS?.trim();
  return threads && isSoftwareAdapter(gpu) ? [`LP_NUM_THREADS=${threads}`] : [];
}

export function testbedOf(gpu: GpuContext, provenance: Provenance): Testbed {
  const a = gpu.adapter;
  const dawnVersion = provenance.dawnVersion ?? 'unknown';
  return {
    vendor: a.vendor,
    architecture: a.architecture,
    device: a.device,
    description: a.description,
    backend: a.backend,
    dawnVersion,
    // A software adapter's thread count changes its times as much as another driver would.
    fingerprint: [a.vendor, a.architecture, a.device, a.backend, a.description, dawnVersion, ...softwareThreads(gpu)].join('|'),
  };
}

/**
 * A sweep where no case produced a result (every one an error or unsupported) measured nothing,
 * and must not exit 0: the sentence to print, or null. Out-of-memory rows are results.
 */
export function sweepFailure(results: BenchResults): string | null {
  if (results.cases.some((c) => c.status === 'ok' || c.status === 'oom' || c.status === 'mismatch')) return null;
  const errors = results.cases.filter((c) => c.status === 'error');
  const first = errors[0] ?? results.cases[0];
  return `no case of the sweep produced a result (${errors.length} error, ${results.cases.length - errors.length} unsupported), e.g. ${first?.config.impl}: ${first?.message ?? 'no message'}`;
}

/** The GEMM engine a case's layer will run, or null where its flags make it fail (the case reports that). */
function caseEngine(gpu: GpuContext, dtype: DType): GemmEngine | null {
  try {
    return gemmEngineFor(gpu, dtype);
  } catch {
    return null;
  }
}

/**
 * Cases timed pair by pair with the reference strategy's layer (CaseOptions.pairWith): every case
 * but the reference's own, where the reference ran ok in this sweep and both layers together stay
 * small (2 × its step peak ≤ PAIRED_MAX_BYTES): on large shapes the GPU's timestamps, not the
 * host's load, decide the time, and two layers might not fit.
 */
export const PAIRED_MAX_BYTES = 512 * 2 ** 20;

export function pairedReference(config: BenchCase['config'], done: readonly BenchCase[]): string | null {
  if (config.impl === REFERENCE_STRATEGY) return null;
  const key = configKey(config);
  const reference = done.find((c) => c.config.impl === REFERENCE_STRATEGY && c.status === 'ok' && configKey(c.config) === key);
  return reference?.memory && reference.memory.stepPeak <= PAIRED_MAX_BYTES ? REFERENCE_STRATEGY : null;
}

/**
 * How a case of this sweep runs: the sweep's sampling, layers, limit and check, the GEMM
 * ceiling of the engine the case really uses, and its pairing. Shared by the sweep and by
 * `bench --baseline`'s re-measure, so a re-measured case is timed and judged as it first was.
 */
export function caseOptions(device: GpuContext, sweepCase: SweepCase, results: BenchResults, options: Pick<BenchOptions, 'sampling' | 'layers' | 'memoryLimit' | 'check' | 'makeTimer'>): CaseOptions {
  const ceilings = results.ceilings;
  return {
    sampling: options.sampling,
    layers: options.layers,
    memoryLimit: options.memoryLimit,
    gemmCeilingTflops: (caseEngine(device, sweepCase.layer.dtype) === 'subgroup-matrix' ? ceilings?.gemmSubgroupMatrix?.tflops : ceilings?.gemm.tflops) ?? null,
    check: options.check,
    makeTimer: options.makeTimer,
    pairWith: pairedReference(caseConfig(sweepCase), results.cases),
  };
}

/** Memory and speed of every case against the reference strategy's case of the same config. */
export function addRelativeFigures(cases: BenchCase[]): void {
  const zero = new Map<string, BenchCase>();
  for (const c of cases) if (c.config.impl === REFERENCE_STRATEGY && c.status === 'ok') zero.set(configKey(c.config), c);
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a != null && b != null && b > 0 ? a / b : null);
  for (const c of cases) {
    const z = zero.get(configKey(c.config));
    if (c.status !== 'ok' || !z) continue;
    c.relative = {
      stepPeakVsReference: ratio(c.memory?.stepPeak, z.memory?.stepPeak),
      activationPeakVsReference: ratio(c.memory?.activationPeak, z.memory?.activationPeak),
      savedVsReference: ratio(c.memory?.savedForBackward, z.memory?.savedForBackward),
      stepTimeVsReference: ratio(c.time?.step.median, z.time?.step.median),
    };
  }
}

/**
 * The sweep: ceilings once, then every case in the sweep's order, each checked against float64 before
 * it is timed. results.json is rewritten atomically after each
 * case, so an interrupted run leaves a valid file that --resume continues, and the reports beside it.
 */
export async function runBench(gpu: GpuContext, sweep: SweepCases, options: BenchOptions): Promise<BenchResults> {
  const settings: BenchSettings = {
    preset: options.preset,
    pass: options.pass,
    layers: options.layers,
    sampling: options.sampling,
    memoryLimit: options.memoryLimit,
    allocator: gpu.allocatorPolicy.mode,
    timing: gpu.hasTimestamps ? 'timestamp' : 'wall',
    axes: sweep.axes,
    ...(options.sweep && { sweep: options.sweep }),
    ...(options.shard && { shard: options.shard }),
    check: options.check ?? 'auto',
    ...(options.gpu && { gpu: options.gpu }),
  };
  const resume = options.resume;
  const testbed = testbedOf(gpu, options.provenance);
  if (resume?.cases.length && resume.testbed.fingerprint !== testbed.fingerprint) {
    throw new UsageError(`--resume: the saved cases ran on ${resume.testbed.fingerprint}, this adapter is ${testbed.fingerprint}; resume on the same adapter, or start a new sweep`);
  }
  // The tile table changes every matrix-engine kernel: a resumed sweep keeps the one it started with.
  const savedTuning = resume?.provenance.tuning?.hash ?? null;
  const tuning = options.provenance.tuning?.hash ?? null;
  if (resume?.cases.length && savedTuning !== tuning) {
    const was = savedTuning ? `with the --tuning table ${savedTuning}` : 'without --tuning';
    throw new UsageError(`--resume: the saved cases ran ${was}, this run ${tuning ? `gives the table ${tuning}` : 'gives none'}; resume with the same --tuning file, or start a new sweep`);
  }
  const savedAllocator = resume?.settings.allocator ?? 'fresh';
  if (resume?.cases.length && savedAllocator !== settings.allocator) {
    throw new UsageError(`--resume: the saved cases ran with --allocator ${savedAllocator}, this run asks for ${settings.allocator}; resume with --allocator ${savedAllocator}, or start a new sweep`);
  }
  const results: BenchResults = {
    schema: BENCH_SCHEMA,
    // A resumed sweep keeps the provenance of the command line that defined it.
    provenance: resume?.provenance ?? options.provenance,
    testbed,
    // A file from before check and gpu were saved ran with what resumeSweep held this run to: recorded now.
    settings: resume ? { ...resume.settings, check: settings.check, ...(settings.gpu && { gpu: settings.gpu }), timing: settings.timing } : settings,
    ceilings: resume?.ceilings ?? null,
    cases: [],
    complete: false,
    notes: resume ? resume.notes.filter((n) => !n.startsWith('resumed')) : [...sweep.notes],
  };
  const plant = plantNote();
  if (plant && !results.notes.includes(plant)) results.notes.push(plant);
  if (!gpu.hasTimestamps && !results.notes.some((n) => n.startsWith('the adapter has no timestamp'))) results.notes.push('the adapter has no timestamp queries: times are wall clock around onSubmittedWorkDone()');
  const resultsPath = join(options.outDir, 'results.json');
  const save = () => writeFileAtomic(resultsPath, `${JSON.stringify(results, null, 2)}\n`);
  // At once, so that a run killed from here on can be resumed: the file records the sweep.
  await save();

  if (!results.ceilings && options.ceilings !== false) {
    const allocator = new GpuAllocator(gpu.device, { maxBufferBytes: gpu.maxBufferBytes, maxBindingBytes: gpu.maxBindingBytes }, gpu.allocatorPolicy);
    const kernels = new KernelContext(allocator);
    // The matrix-unit ceiling where some case of the sweep runs its GEMMs there.
    const usesMatrixUnits = sweep.cases.some((c) => caseEngine(gpu, c.layer.dtype) === 'subgroup-matrix');
    const matrixKernels = usesMatrixUnits ? new KernelContext(allocator, 'subgroup-matrix', { fragment: matrixFragment(gpu) }) : null;
    try {
      const software = isSoftwareAdapter(gpu);
      results.ceilings = await measureCeilings(kernels, { software, timestamps: gpu.hasTimestamps, sampling: { ...options.sampling, maxTimeMs: Math.min(options.sampling.maxTimeMs, 3000) }, subgroupMatrix: matrixKernels });
    } finally {
      kernels.destroy();
      matrixKernels?.destroy();
      allocator.releasePool();
    }
  }
  const previous = new Map((resume?.cases ?? []).map((c) => [c.key, c]));
  const load = watchLoad();
  const toRun = sweep.cases.filter((c) => !previous.has(c.key)).length;
  let device = gpu;
  let lastPeak = 0;
  let started = 0;
  for (const sweepCase of sweep.cases) {
    const done = previous.get(sweepCase.key);
    if (!done) options.onCaseStart?.(started++, toRun, caseLabel(caseConfig(sweepCase)));
    if (!done && options.reopenDevice && lastPeak > LARGE_CASE_BYTES) device = await options.reopenDevice(device);
    const result =
      done ??
      (await runCase(device, sweepCase, caseOptions(device, sweepCase, results, options)));
    results.cases.push(result);
    lastPeak = result.memory?.stepPeak ?? 0;
    // Zero-buffer runs first within a config, so each case is final when saved: a resumed run keeps it as it is.
    if (!done) addRelativeFigures([...results.cases.filter((c) => c.config.impl === REFERENCE_STRATEGY), result]);
    if (!done) options.onCaseDone?.(result);
    await save();
    // The reports follow each case too (marked incomplete): a sweep cut short still reads as one.
    if (!done) await options.writeReports?.(options.outDir, results);
  }
  if (previous.size) results.notes.push(`resumed: ${sweep.cases.length - toRun} case(s) kept from ${resume?.provenance.time}, ${toRun} run ${options.provenance.time}`);
  // The load of the session that ran the cases; a resumed sweep's cases come from two sessions.
  results.provenance = { ...results.provenance, load: previous.size ? null : load() };
  results.complete = true;
  await save();
  await options.writeReports?.(options.outDir, results);
  return results;
}
