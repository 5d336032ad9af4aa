import { usefulFlops, type LayerConfig } from '../config.js';
import { summaryFromLoads } from '../plan/routing.js';
import { OutOfMemoryError } from '../errors.js';
import type { GpuContext } from '../gpu/runtime.js';
import { GpuTimer } from '../gpu/timer.js';
import { MoELayer, seededInputs } from '../layer.js';
import { toFloat64, toleranceFor } from '../reference/index.js';
import type { LayerInputs } from '../rng.js';
import { sampleUntilStable, summarize, type SamplingPolicy } from '../stats.js';
import { findStrategy } from '../strategies/index.js';
import { tableFigures } from '../buffer-table.js';
import type { RoutingSummary } from '../strategy.js';
import { compareRun, referenceFor, type GpuRun } from '../verify.js';
import type { PlannedCase } from './plan.js';
import type { BenchCase, TimeStats } from './schema.js';
import { formatBytes } from '../units.js';

/** Strategies whose checked results anchor the checks of others at large shapes (they run first). */
const ANCHORS = ['zero-buffer', 'tutel'];

/** Reference checks cost O(T·k·d·h) on the CPU: beyond this, cases are checked against zero-buffer. */
const REFERENCE_LIMIT = 2e8;

export interface CaseOptions {
  sampling: SamplingPolicy;
  layers: number;
  memoryLimit: number | null;
  gemmCeilingTflops: number | null;
  /** Outputs of earlier cases with the same config, for checks of large shapes. */
  anchors: Map<string, { strategy: string; run: GpuRun; droppedPairs: number }>;
  anchorKey: string;
  /** Creates the step timer; tests substitute a double (a slower clock, say). */
  makeTimer?: (layer: MoELayer) => StepTimer | null;
}

/** What the sampler needs of a timer: GpuTimer, or a test double of it. */
export type StepTimer = Pick<GpuTimer, 'writes' | 'read' | 'destroy'>;

function stats(samples: number[]): TimeStats {
  const s = summarize(samples);
  return { median: s.median, p10: s.p10, p90: s.p90, noise: s.noise, n: s.n, samples };
}

/** Routing as a strategy would see it with every expert equally loaded: for refusing ahead of time. */
export function uniformRouting(c: LayerConfig, dropless: boolean): RoutingSummary {
  const R = c.tokens * c.topK;
  const loads = Array.from({ length: c.experts }, (_, e) => Math.floor(R / c.experts) + (e < R % c.experts ? 1 : 0));
  return summaryFromLoads(c, dropless, loads);
}

/** One step whose results are read back: all of them on small shapes, O and dX on large ones (dW1 can be 15 GB). */
async function runOnce(layer: MoELayer, everything: boolean): Promise<GpuRun & { summary: RoutingSummary }> {
  await layer.forward();
  const routing = await layer.readRouting();
  const summary = await layer.routingSummary();
  await layer.backward();
  const O = await layer.readOutput();
  const g = everything ? await layer.readGradients() : { dX: await layer.readInputGradient(), dWr: null, dW1: null, dW2: null, dW3: null };
  return { O, grads: { dX: g.dX, dWr: g.dWr, dW1: g.dW1, dW2: g.dW2, dW3: g.dW3 }, experts: routing.experts, droppedPairs: summary.droppedPairs, gemmFallbacks: [...layer.kernels.engineFallbacks], summary };
}

export async function runCase(gpu: GpuContext, planned: PlannedCase, options: CaseOptions): Promise<BenchCase> {
  const base: BenchCase = { key: planned.key, config: planned.config, status: 'ok' };
  const c = planned.layer;
  const strategy = findStrategy(planned.strategy);
  const reason = strategy.unsupported(c);
  if (reason) return { ...base, status: 'unsupported', message: reason };
  if (options.memoryLimit !== null) {
    const planned = tableFigures(strategy.bufferTable(c, uniformRouting(c, strategy.dropless), { chunkBytes: gpu.maxBindingBytes }));
    if (planned.stepPeak > options.memoryLimit) {
      return {
        ...base,
        status: 'oom',
        message: `planned step peak ${formatBytes(planned.stepPeak)} exceeds --memory-limit ${formatBytes(options.memoryLimit)}`,
        planned: { stepPeak: planned.stepPeak, activationPeak: planned.activationPeak },
      };
    }
  }
  let layer: MoELayer | null = null;
  try {
    layer = await MoELayer.fromConfig(gpu, c, { dispatch: planned.strategy, memoryLimit: options.memoryLimit ?? undefined });
    const small = c.tokens * c.topK * c.hidden * c.ffn <= REFERENCE_LIMIT;
    const inputs = small ? seededInputs(c) : null;
    if (inputs) layer.setInputs(inputs);
    else await layer.randomizeOnGpu();

    // Correctness before speed: a case whose results are wrong gets no speed figure.
    const run = await runOnce(layer, small);
    const check = checkCase(c, strategy.dropless, run, inputs, options);
    if (check.pass && !small && ANCHORS.includes(planned.strategy)) options.anchors.set(`${planned.strategy}|${options.anchorKey}`, { strategy: planned.strategy, run, droppedPairs: run.droppedPairs });
    const R = c.tokens * c.topK;
    const routing = { keptPairs: run.summary.keptPairs, droppedPairs: run.summary.droppedPairs, droppedPercent: (100 * run.summary.droppedPairs) / R, capacity: run.summary.capacity, expertLoads: run.summary.expertLoads };
    const gemm = { engine: layer.kernels.gemmEngine, fallbacks: [...layer.kernels.engineFallbacks] };
    if (!check.pass) return { ...base, status: 'mismatch', message: check.message, check: check.record, routing, gemm };

    const timer = options.makeTimer ? options.makeTimer(layer) : gpu.hasTimestamps ? new GpuTimer(layer.allocator) : null;
    const forward: number[] = [];
    const backward: number[] = [];
    let memory = null as Awaited<ReturnType<MoELayer['step']>>['memory'] | null;
    const samples = await sampleUntilStable(async () => {
      const r = await layer!.step({ timer: timer ?? undefined, pass: planned.config.pass });
      memory = r.memory;
      if (r.timing?.forwardMs != null) forward.push(r.timing.forwardMs);
      if (r.timing?.backwardMs != null) backward.push(r.timing.backwardMs);
      return r.timing ? r.timing.totalMs : r.wallMs;
    }, options.sampling);
    timer?.destroy();
    // The sampler's warm-up steps are timed too; keep only the sampled ones.
    const keep = (list: number[]) => (list.length >= samples.length ? list.slice(list.length - samples.length) : list);
    const step = stats(samples);
    const flops = usefulFlops(c, run.summary.keptPairs, planned.config.pass);
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
      },
      routing,
      gemm,
    };
  } catch (error) {
    if (error instanceof OutOfMemoryError) return { ...base, status: 'oom', message: error.message };
    return { ...base, status: 'error', message: (error as Error).message.split('\n')[0] };
  } finally {
    layer?.destroy();
    await gpu.device.queue.onSubmittedWorkDone();
  }
}

interface CheckOutcome {
  pass: boolean;
  against: 'reference' | 'zero-buffer' | 'tutel' | 'none';
  message?: string;
  record: NonNullable<BenchCase['check']>;
}

/**
 * Small shapes: the float64 reference (with the strategy's capacity rule). Large shapes: the
 * outputs of zero-buffer for dropless strategies, and of tutel for capacity strategies that
 * dropped pairs (their results differ from a dropless layer by design).
 */
function checkCase(c: LayerConfig, dropless: boolean, run: GpuRun, inputs: LayerInputs | null, options: CaseOptions): CheckOutcome {
  let tensors;
  let against: CheckOutcome['against'];
  if (inputs) {
    const { ref } = referenceFor(c, toFloat64(inputs), !dropless, run.experts);
    tensors = compareRun(run, ref, toleranceFor(c.dtype));
    against = 'reference';
  } else {
    const anchorStrategy = dropless || run.droppedPairs === 0 ? 'zero-buffer' : 'tutel';
    const anchor = options.anchors.get(`${anchorStrategy}|${options.anchorKey}`);
    if (!anchor) {
      const nan = [run.O, run.grads.dX].some((t) => t !== null && t.some((v) => !Number.isFinite(v)));
      return { pass: !nan, against: 'none', message: nan ? 'NaN in the outputs' : undefined, record: { against: 'none', maxRelError: null, note: nan ? 'NaN in the outputs' : `no ${anchorStrategy} case ran first at this shape` } };
    }
    tensors = compareRun(run, { O: anchor.run.O, dX: anchor.run.grads.dX, dWr: null, dW1: null, dW2: null, dW3: null }, toleranceFor(c.dtype));
    against = anchorStrategy;
  }
  const worst = Math.max(...tensors.map((t) => t.relError));
  const failed = tensors.filter((t) => !t.pass);
  return {
    pass: failed.length === 0,
    against,
    message: failed.length ? `${failed.map((t) => `${t.tensor} rel. error ${t.hasNaN ? 'NaN' : t.relError.toExponential(2)}`).join(', ')} against ${against}` : undefined,
    record: { against, maxRelError: worst },
  };
}
