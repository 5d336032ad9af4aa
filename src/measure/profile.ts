import { findStrategy } from '../registry.js';
import type { LayerConfig } from '../config.js';
import type { GpuContext } from '../gpu/runtime.js';
import { GpuTimer, type PassTime } from '../gpu/timer.js';
import { MoELayer } from '../layer.js';
import type { MemoryEvent, BufferTag } from '../gpu/allocator.js';
import type { StepMemory } from '../gpu/memory-profiler.js';
import { usefulFlops } from '../config.js';
import { DriverMemoryReader, driverDelta } from './driver-memory.js';
import { figures, type DriverProbe } from './driver-step.js';
import { checkAtPeak, settled, startDriverCheck, type DriverCheckReport } from './driver-check.js';
import type { GapCause } from '../gpu/timer.js';
import type { AllocatorMode } from '../gpu/allocator.js';
import { sampleUntilStable, summarize, type SamplingPolicy } from './stats.js';

export { DRIVER_TOLERANCE, type DriverFigures, type DriverProbe, type ReservedCheck, type StepPeakCheck } from './driver-step.js';
export { DRIVER_CHECK_NOTE, DRIVER_RESOLUTION_BYTES, type DriverCheckReport, type StrategyDriverCheck } from './driver-check.js';
import type { KernelWork, RoutingSummary } from '../strategy/contract.js';

export interface KernelRow {
  kernel: string;
  calls: number;
  ms: number;
  /** Share of the summed kernel time of the per-kernel step. */
  percent: number;
  /** Useful FLOPs over the time, from the strategy's work entries (Strategy.work); null where the kernel does none. */
  tflops: number | null;
  /** Its compulsory traffic over the time; null only for a kernel the strategy's work does not declare. */
  gbPerS: number | null;
}

export interface StrategyProfile {
  strategy: string;
  /** The median of the steps timed normally (one pass per phase): what bench reports. */
  stepMs: number;
  /** Those steps' spread: p10, p90, IQR/median and how many were timed (PROFILE_SAMPLING). */
  stepTime: { median: number; p10: number; p90: number; noise: number; n: number };
  /** The same step's forward and backward spans. */
  forwardMs: number | null;
  backwardMs: number | null;
  /** The phased step's passes summed (GPU busy) and the idle rest of stepMs, by cause (docs/design.md#time). */
  busyMs: number;
  idleMs: number;
  idleByCause: Partial<Record<GapCause, number>>;
  /** The step with a pass per kernel; the split adds some overhead. */
  perKernelStepMs: number;
  /** One entry per pass of the phased step, in order; `direction` tells a forward phase from its backward namesake. */
  phases: (PassTime & { direction: 'forward' | 'backward' })[];
  kernels: KernelRow[];
  /** The step's routing, and the strategy's work entries for it (Strategy.work), which the rows' rates divide. */
  routing: RoutingSummary;
  work: KernelWork[];
  /** Kernel slices of the per-kernel step, for traces. */
  slices: PassTime[];
  usefulTflops: number;
  memory: Omit<StepMemory, 'timeline'> & { timeline: MemoryEvent[] };
  peakByTag: Partial<Record<BufferTag, number>>;
}

export interface ProfileResult {
  config: LayerConfig;
  /** --allocator: how the layers' buffers were kept (the memory figures' reservedPeak depends on it). */
  allocator: AllocatorMode;
  timing: 'timestamp' | 'wall';
  note: string;
  strategies: StrategyProfile[];
  /** Present with --driver-check. */
  driverCheck?: DriverCheckReport;
}

export interface ProfileOptions {
  driverCheck?: boolean | DriverProbe;
  /** How the phased step is timed [default: PROFILE_SAMPLING]. */
  sampling?: SamplingPolicy;
}

/**
 * Profile times the phased step several times, as bench does, but on a shorter budget: one step
 * on a shared machine varied 3× between runs (issue 25). The phases shown are the median step's.
 */
export const PROFILE_SAMPLING: SamplingPolicy = { warmup: 1, minSamples: 5, maxSamples: 100, noiseTarget: 0.02, maxTimeMs: 3000 };

export const PER_KERNEL_NOTE = 'per-kernel times come from a separate step that runs every kernel in a compute pass of its own; that split adds pass overhead, so they sum to more than stepMs, the step timed with one pass per phase as bench times it';

/** Passes that start before the forward span ends are forward ones (the timer's split point). */
function withDirection(passes: readonly PassTime[], forwardMs: number | null): StrategyProfile['phases'] {
  return passes.map((p) => ({ ...p, direction: forwardMs !== null && p.startMs < forwardMs - 1e-9 ? 'forward' : 'backward' }));
}

/** One config, one or more strategies: per-kernel GPU time and the memory timeline of a step. */
export async function profileStrategies(gpu: GpuContext, config: LayerConfig, strategies: string[], onProgress?: (m: string) => void, options: ProfileOptions = {}): Promise<ProfileResult> {
  if (!gpu.hasTimestamps) throw new Error('profile needs the timestamp-query feature for per-kernel times, which this adapter lacks');
  const out: StrategyProfile[] = [];
  const driver = options.driverCheck ? await startDriverCheck(gpu, options.driverCheck === true ? new DriverMemoryReader() : options.driverCheck) : null;
  for (const id of strategies) {
    const reason = findStrategy(id).unsupported(config);
    if (reason) {
      onProgress?.(`${id}: skipped (${reason})`);
      continue;
    }
    onProgress?.(`${id}: profiling`);
    const persistentBefore = driver?.probe ? await settled(gpu, driver.probe).catch(() => null) : null;
    const layer = await MoELayer.fromConfig(gpu, config, { impl: id });
    const persistentBytes = layer.allocator.live;
    const timer = new GpuTimer(layer.allocator);
    try {
      await layer.randomizeOnGpu();
      // Read now, before any step buffer exists: randomizeOnGpu has written every persistent byte.
      const persistentAfter = driver?.probe && persistentBefore ? await settled(gpu, driver.probe).catch(() => null) : null;
      await layer.forward();
      const routing = await layer.routingSummary();
      const kept = routing.keptPairs;
      const entries = layer.strategy.work(config, routing, { chunkBytes: layer.chunkBytes });
      const work = workByKernel(entries);
      await layer.backward();
      const phasedSteps: Awaited<ReturnType<MoELayer['step']>>[] = [];
      const samples = await sampleUntilStable(async () => {
        const r = await layer.step({ timer });
        phasedSteps.push(r);
        return r.timing!.totalMs;
      }, options.sampling ?? PROFILE_SAMPLING);
      const time = summarize(samples);
      // The phase breakdown of the timed step closest to the median (warm-up steps excluded).
      const timed = phasedSteps.slice(phasedSteps.length - samples.length);
      const phased = timed.reduce((a, b) => (Math.abs(b.timing!.totalMs - time.median) < Math.abs(a.timing!.totalMs - time.median) ? b : a));
      const split = await layer.step({ timer, perKernel: true });
      const byKernel = new Map<string, KernelRow>();
      const total = split.timing!.passes.reduce((a, p) => a + p.ms, 0);
      for (const p of split.timing!.passes) {
        const row = byKernel.get(p.label) ?? { kernel: p.label, calls: 0, ms: 0, percent: 0, tflops: null, gbPerS: null };
        row.calls++;
        row.ms += p.ms;
        byKernel.set(p.label, row);
      }
      for (const row of byKernel.values()) {
        row.percent = (100 * row.ms) / total;
        const w = work.get(row.kernel);
        if (w && row.ms > 0) {
          row.tflops = w.flops > 0 ? w.flops / (row.ms * 1e-3) / 1e12 : null;
          row.gbPerS = w.bytes / (row.ms * 1e-3) / 1e9;
        }
      }
      const stepMs = time.median;
      out.push({
        strategy: id,
        stepMs,
        stepTime: { median: time.median, p10: time.p10, p90: time.p90, noise: time.noise, n: time.n },
        forwardMs: phased.timing!.forwardMs,
        backwardMs: phased.timing!.backwardMs,
        busyMs: phased.timing!.busyMs,
        idleMs: phased.timing!.idleMs,
        idleByCause: phased.timing!.idleByCause,
        perKernelStepMs: split.timing!.totalMs,
        phases: withDirection(phased.timing!.passes, phased.timing!.forwardMs),
        kernels: [...byKernel.values()].sort((a, b) => b.ms - a.ms),
        routing,
        work: entries,
        slices: split.timing!.passes,
        usefulTflops: usefulFlops(config, kept, 'train') / (stepMs * 1e-3) / 1e12,
        memory: split.memory,
        peakByTag: split.memory.peakByTag,
      });
      if (driver?.probe) {
        onProgress?.(`${id}: driver cross-check`);
        const persistent = persistentBefore && persistentAfter ? figures(persistentBytes, driverDelta(persistentBefore, persistentAfter, gpu.adapter).bytes) : null;
        driver.report.strategies.push(await checkAtPeak(layer, routing, driver.probe, persistent, persistentBefore));
      }
    } finally {
      timer.destroy();
      layer.destroy();
    }
  }
  return { config, allocator: gpu.allocatorPolicy.mode, timing: 'timestamp', note: PER_KERNEL_NOTE, strategies: out, ...(driver && { driverCheck: driver.report }) };
}

/** A strategy's work entries summed by kernel name (a kernel may run in several phases), as profile times them. */
export function workByKernel(work: readonly KernelWork[]): Map<string, { flops: number; bytes: number }> {
  const byKernel = new Map<string, { flops: number; bytes: number }>();
  for (const w of work) {
    const sum = byKernel.get(w.kernel) ?? { flops: 0, bytes: 0 };
    sum.flops += w.flops;
    sum.bytes += w.bytes;
    byKernel.set(w.kernel, sum);
  }
  return byKernel;
}

/**
 * Chrome / Perfetto trace (JSON object format): kernel slices on one GPU track per strategy and
 * the allocator's live bytes as a counter track. Memory events have no GPU time; they are laid
 * out on their own µs axis in event order, which is what the counter shows.
 */
export function chromeTrace(result: ProfileResult): object {
  const events: object[] = [];
  result.strategies.forEach((s, pid) => {
    events.push({ name: 'process_name', ph: 'M', pid, tid: 0, args: { name: `${s.strategy} (GPU)` } });
    events.push({ name: 'thread_name', ph: 'M', pid, tid: 1, args: { name: 'kernels' } });
    for (const slice of s.slices) events.push({ name: slice.label, cat: 'kernel', ph: 'X', pid, tid: 1, ts: slice.startMs * 1000, dur: slice.ms * 1000 });
    const span = s.perKernelStepMs * 1000;
    const steps = s.memory.timeline.length || 1;
    s.memory.timeline.forEach((e, i) => {
      events.push({ name: 'live bytes', ph: 'C', pid, tid: 0, ts: (i / steps) * span, args: { bytes: e.live } });
      if (e.kind === 'mark') events.push({ name: e.name, ph: 'i', s: 'p', pid, tid: 0, ts: (i / steps) * span });
    });
  });
  return { traceEvents: events, displayTimeUnit: 'ms', otherData: { tool: 'moeblaze profile', note: result.note } };
}
