import { usefulFlops, type LayerConfig } from '../config.js';
import { summaryFromLoads } from '../plan/routing.js';
import { OutOfMemoryError } from '../errors.js';
import type { GpuContext } from '../gpu/runtime.js';
import { GpuTimer } from '../gpu/timer.js';
import { MoELayer, seededInputs } from '../layer.js';
import { toFloat64, toleranceFor } from '../reference/index.js';
import { sampleUntilStable, summarize, type SamplingPolicy } from '../measure/stats.js';
import { findStrategy } from '../registry.js';
import { tableFigures } from '../strategy/buffer-table.js';
import type { RoutingSummary } from '../strategy/contract.js';
import { referenceOffThread } from '../reference/full.js';
import { compareRun, expectedFrom, runTensors, stepAndReadBack, type TensorCheck } from '../verify/verify.js';
import { fullReferenceFits, sampledCheck } from '../verify/sampled.js';
import { caseConfig, type SweepCase } from './cases.js';
import type { BenchCase, StepSplit, TimeStats } from './schema.js';
import type { GapCause, StepTiming } from '../gpu/timer.js';
import { formatBytes } from '../units.js';
import { fragmentLabel } from '../../kernels/gemm/engines/fragment.js';

export interface CaseOptions {
  sampling: SamplingPolicy;
  layers: number;
  memoryLimit: number | null;
  gemmCeilingTflops: number | null;
  /** 'auto': the full float64 reference where it fits (fullReferenceFits), else the sampled one; 'sampled': always sampled. */
  check?: 'auto' | 'sampled';
  /** Creates the step timer; tests substitute a double (a slower clock, say). */
  makeTimer?: (layer: MoELayer) => StepTimer | null;
  /**
   * Time the case step by step alternately with this strategy's layer of the same config (the
   * reference, REFERENCE_STRATEGY), and record the paired ratios (time.vsReference): load that
   * comes and goes during the sweep slows both sides of a pair alike (docs/design.md#gate-verdicts).
   */
  pairWith?: string | null;
}

/** What the sampler needs of a timer: GpuTimer, or a test double of it. */
export type StepTimer = Pick<GpuTimer, 'writes' | 'read' | 'destroy'>;

function stats(samples: number[]): TimeStats {
  const s = summarize(samples);
  return { median: s.median, p10: s.p10, p90: s.p90, noise: s.noise, n: s.n, samples };
}

/** Medians of the timed steps' busy and idle times, and of the idle time per cause (zero where a step had none). */
export function stepSplit(timings: readonly StepTiming[]): StepSplit {
  const median = (xs: number[]) => summarize(xs).median;
  const causes = [...new Set(timings.flatMap((t) => Object.keys(t.idleByCause) as GapCause[]))];
  const busySamples = timings.map((t) => t.busyMs);
  const idleSamples = timings.map((t) => t.idleMs);
  return {
    busyMs: median(busySamples),
    idleMs: median(idleSamples),
    idleByCause: Object.fromEntries(causes.map((c) => [c, median(timings.map((t) => t.idleByCause[c] ?? 0))])),
    busySamples,
    idleSamples,
  };
}

/** Routing as a strategy would see it with every expert equally loaded: for refusing ahead of time. */
export function uniformRouting(c: LayerConfig, dropless: boolean): RoutingSummary {
  const R = c.tokens * c.topK;
  const loads = Array.from({ length: c.experts }, (_, e) => Math.floor(R / c.experts) + (e < R % c.experts ? 1 : 0));
  return summaryFromLoads(c, dropless, loads);
}

export async function runCase(gpu: GpuContext, sweepCase: SweepCase, options: CaseOptions): Promise<BenchCase> {
  const base: BenchCase = { key: sweepCase.key, config: caseConfig(sweepCase), status: 'ok' };
  const c = sweepCase.layer;
  const strategy = findStrategy(sweepCase.impl);
  const reason = strategy.unsupported(c);
  if (reason) return { ...base, status: 'unsupported', message: reason };
  if (options.memoryLimit !== null) {
    const planned = tableFigures(strategy.bufferTable(c, uniformRouting(c, strategy.dropless), { chunkBytes: gpu.maxBindingBytes }));
    if (planned.stepPeak > options.memoryLimit) {
      return {
        ...base,
        status: 'oom',
        message: `planned step peak ${formatBytes(planned.stepPeak)} exceeds --memory-limit ${formatBytes(options.memoryLimit)}`,
        oomLimit: 'planned',
        planned: { stepPeak: planned.stepPeak, activationPeak: planned.activationPeak },
      };
    }
  }
  let layer: MoELayer | null = null;
  let reference: MoELayer | null = null;
  try {
    layer = await MoELayer.fromConfig(gpu, c, { impl: sweepCase.impl, memoryLimit: options.memoryLimit ?? undefined });
    const hostInputs = fullReferenceFits(c);
    const inputs = hostInputs ? seededInputs(c) : null;
    if (inputs) layer.setInputs(inputs);
    else await layer.randomizeOnGpu();

    // Correctness before speed: a case whose results are wrong gets no speed figure.
    const check = await checkCase(layer, strategy.dropless, inputs, hostInputs && options.check !== 'sampled');
    const R = c.tokens * c.topK;
    const routing = { keptPairs: check.summary.keptPairs, droppedPairs: check.summary.droppedPairs, droppedPercent: (100 * check.summary.droppedPairs) / R, capacity: check.summary.capacity, expertLoads: check.summary.expertLoads };
    const { gemmEngine, engineFallbacks, fragment } = layer.kernels;
    const gemm = { engine: gemmEngine, fallbacks: [...engineFallbacks], ...(gemmEngine !== 'simt' && { fragment: fragmentLabel(fragment) }) };
    if (!check.pass) return { ...base, status: 'mismatch', message: check.message, check: check.record, routing, gemm };

    const makeTimer = (l: MoELayer) => (options.makeTimer ? options.makeTimer(l) : gpu.hasTimestamps ? new GpuTimer(l.allocator) : null);
    const timer = makeTimer(layer);
    if (options.pairWith) {
      reference = await MoELayer.fromConfig(gpu, c, { impl: options.pairWith });
      if (inputs) reference.setInputs(inputs);
      else await reference.randomizeOnGpu();
    }
    const referenceTimer = reference ? makeTimer(reference) : null;
    const forward: number[] = [];
    const backward: number[] = [];
    const timings: StepTiming[] = [];
    const created: number[] = [];
    const ratios: number[] = [];
    let memory = null as Awaited<ReturnType<MoELayer['step']>>['memory'] | null;
    const timeStep = async (l: MoELayer, t: StepTimer | null) => {
      const r = await l.step({ timer: t ?? undefined, pass: sweepCase.pass });
      return { r, ms: r.timing ? r.timing.totalMs : r.wallMs };
    };
    let pair = 0;
    const samples = await sampleUntilStable(async () => {
      // Pairs alternate which side goes first, so neither always runs on a warmer machine.
      const referenceFirst = reference !== null && pair++ % 2 === 1;
      const before = referenceFirst ? (await timeStep(reference!, referenceTimer)).ms : null;
      const { r, ms } = await timeStep(layer!, timer);
      const after = reference !== null && !referenceFirst ? (await timeStep(reference, referenceTimer)).ms : null;
      const referenceMs = before ?? after;
      if (referenceMs !== null) ratios.push(ms / referenceMs);
      memory = r.memory;
      created.push(r.memory.buffersCreated);
      if (r.timing) timings.push(r.timing);
      if (r.timing?.forwardMs != null) forward.push(r.timing.forwardMs);
      if (r.timing?.backwardMs != null) backward.push(r.timing.backwardMs);
      return ms;
    }, options.sampling);
    timer?.destroy();
    referenceTimer?.destroy();
    // The sampler's warm-up steps are timed too; keep only the sampled ones.
    const keep = <T>(list: T[]) => (list.length >= samples.length ? list.slice(list.length - samples.length) : list);
    const step = stats(samples);
    const flops = usefulFlops(c, check.summary.keptPairs, sweepCase.pass);
    const tflops = flops / (step.median * 1e-3) / 1e12;
    const m = memory!;
    // Everything at the peak beyond what forward saved: the same definition `plan` uses.
    const transient = m.savedForBackward === null ? null : m.activationPeak - m.savedForBackward;
    return {
      ...base,
      check: check.record,
      time: {
        source: timer ? 'timestamp' : 'wall',
        step,
        forward: forward.length ? stats(keep(forward)) : null,
        backward: backward.length ? stats(keep(backward)) : null,
        // Only where each timed step has its GPU timestamps (a timer double may give none).
        ...(timings.length >= samples.length && { split: stepSplit(keep(timings)) }),
        ...(options.pairWith && ratios.length ? { vsReference: { impl: options.pairWith, ratio: stats(keep(ratios)) } } : {}),
      },
      throughput: {
        tokensPerS: c.tokens / (step.median * 1e-3),
        usefulTflops: tflops,
        gemmFraction: options.gemmCeilingTflops ? tflops / options.gemmCeilingTflops : null,
      },
      memory: {
        baseline: m.baseline,
        stepPeak: m.stepPeak,
        activationPeak: m.activationPeak,
        savedForBackward: m.savedForBackward,
        backwardTransient: transient,
        modelEstimate: m.savedForBackward === null || transient === null ? null : options.layers * m.savedForBackward + transient,
        peakByTag: m.peakByTag,
        peakByName: m.peakByName,
        reservedPeak: m.reservedPeak,
      },
      buffers: { allocator: layer.allocator.policy.mode, createdPerStep: keep(created), releasedForLimit: layer.allocator.activity.releasedForLimit },
      routing,
      gemm,
    };
  } catch (error) {
    if (error instanceof OutOfMemoryError) return { ...base, status: 'oom', message: error.message, oomLimit: error.limit };
    return { ...base, status: 'error', message: (error as Error).message.split('\n')[0] };
  } finally {
    layer?.destroy();
    reference?.destroy();
    await gpu.device.queue.onSubmittedWorkDone();
  }
}

interface CheckOutcome {
  pass: boolean;
  message?: string;
  record: NonNullable<BenchCase['check']>;
  summary: RoutingSummary;
}

/**
 * Every case is checked against float64 before it is timed (issue 18): the full reference on
 * small shapes, the sampled one (src/verify/sampled.ts) on large ones, judged by the same compareRun.
 */
async function checkCase(layer: MoELayer, dropless: boolean, inputs: ReturnType<typeof seededInputs> | null, full: boolean): Promise<CheckOutcome> {
  const c = layer.config;
  const tolerance = toleranceFor(c.dtype);
  const started = performance.now();
  let tensors: TensorCheck[];
  let summary: RoutingSummary;
  let dropped: { gpu: number; reference: number };
  let sample: { tokens: number; units: number } | null = null;
  let forcedTokens: number[];
  if (full && inputs) {
    const run = await stepAndReadBack(layer);
    const { ref, forcedTokens: forced } = await referenceOffThread(c, toFloat64(inputs), !dropless, run.experts);
    forcedTokens = forced;
    tensors = compareRun(runTensors(run), expectedFrom(ref), tolerance);
    summary = run.summary;
    dropped = { gpu: run.droppedPairs, reference: ref.routing.dropped };
  } else {
    const s = await sampledCheck(layer, { inputs, tolerance, capacity: !dropless });
    tensors = s.tensors;
    summary = s.summary;
    sample = s.sample;
    dropped = s.droppedPairs;
    forcedTokens = s.forcedTokens;
  }
  const failed = tensors.filter((t) => !t.pass);
  const problems = failed.map((t) => `${t.tensor} ${t.hasNaN ? 'NaN' : `rel. error ${t.relError.toExponential(2)}, ${Math.max(t.errorRatio, t.maxErrorRatio).toFixed(2)}× its bound`}`);
  if (dropped.gpu !== dropped.reference) problems.push(`dropped ${dropped.gpu} pairs, the reference ${dropped.reference}`);
  const kind = sample ? 'sampled' : 'full';
  return {
    pass: problems.length === 0,
    message: problems.length ? `${problems.join(', ')} against the ${kind} float64 reference` : undefined,
    record: {
      against: 'reference',
      kind,
      sample,
      maxRelError: Math.max(0, ...tensors.map((t) => t.relError)),
      maxErrorRatio: Math.max(0, ...tensors.map((t) => Math.max(t.errorRatio, t.maxErrorRatio))),
      pass: problems.length === 0,
      forcedTokens,
      seconds: (performance.now() - started) / 1000,
    },
    summary,
  };
}
