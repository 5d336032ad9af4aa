import { findStrategy } from './strategies/index.js';
import { routerWork } from './strategy.js';
import type { LayerConfig } from './config.js';
import type { GpuContext } from './gpu/runtime.js';
import { GpuTimer, type PassTime } from './gpu/timer.js';
import { MoELayer } from './layer.js';
import type { MemoryEvent, BufferTag } from './gpu/allocator.js';
import type { StepMemory } from './memory-profiler.js';
import { usefulFlops } from './config.js';

export interface KernelRow {
  kernel: string;
  calls: number;
  ms: number;
  /** Share of the summed kernel time of the per-kernel step. */
  percent: number;
  /** From the strategy's declared work per kernel, when it declares it (null otherwise). */
  tflops: number | null;
  gbPerS: number | null;
}

export interface StrategyProfile {
  strategy: string;
  /** The step timed normally (one pass per phase): what bench reports. */
  stepMs: number;
  /** The step with a pass per kernel; the split adds some overhead. */
  perKernelStepMs: number;
  phases: PassTime[];
  kernels: KernelRow[];
  /** Kernel slices of the per-kernel step, for traces. */
  slices: PassTime[];
  usefulTflops: number;
  memory: Omit<StepMemory, 'timeline'> & { timeline: MemoryEvent[] };
  peakByTag: Partial<Record<BufferTag, number>>;
}

export interface ProfileResult {
  config: LayerConfig;
  timing: 'timestamp' | 'wall';
  note: string;
  strategies: StrategyProfile[];
}

export const PER_KERNEL_NOTE = 'per-kernel times come from a separate step that runs every kernel in a compute pass of its own; that split adds pass overhead, so they sum to more than the step time above';

/** One config, one or more strategies: per-kernel GPU time and the memory timeline of a step. */
export async function profileStrategies(gpu: GpuContext, config: LayerConfig, strategies: string[], onProgress?: (m: string) => void): Promise<ProfileResult> {
  if (!gpu.hasTimestamps) throw new Error('profile needs the timestamp-query feature for per-kernel times, which this adapter lacks');
  const out: StrategyProfile[] = [];
  for (const id of strategies) {
    const reason = findStrategy(id).unsupported(config);
    if (reason) {
      onProgress?.(`${id}: skipped (${reason})`);
      continue;
    }
    onProgress?.(`${id}: profiling`);
    const layer = await MoELayer.fromConfig(gpu, config, { dispatch: id });
    const timer = new GpuTimer(layer.allocator);
    try {
      await layer.randomizeOnGpu();
      await layer.forward();
      const routing = await layer.routingSummary();
      const kept = routing.keptPairs;
      // The router is shared, so its kernels' work is known for every strategy.
      const work = { ...routerWork(config), ...(findStrategy(id).kernelWork?.(config, routing, { chunkBytes: layer.chunkBytes }) ?? {}) };
      await layer.backward();
      await layer.step({ timer }); // warm-up: pipelines compiled, caches hot
      const phased = await layer.step({ timer });
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
        const w = work[row.kernel];
        if (w && row.ms > 0) {
          row.tflops = w.flops > 0 ? w.flops / (row.ms * 1e-3) / 1e12 : null;
          row.gbPerS = w.bytes / (row.ms * 1e-3) / 1e9;
        }
      }
      const stepMs = phased.timing!.totalMs;
      out.push({
        strategy: id,
        stepMs,
        perKernelStepMs: split.timing!.totalMs,
        phases: phased.timing!.passes,
        kernels: [...byKernel.values()].sort((a, b) => b.ms - a.ms),
        slices: split.timing!.passes,
        usefulTflops: usefulFlops(config, kept, 'train') / (stepMs * 1e-3) / 1e12,
        memory: split.memory,
        peakByTag: split.memory.peakByTag,
      });
    } finally {
      timer.destroy();
      layer.destroy();
    }
  }
  return { config, timing: 'timestamp', note: PER_KERNEL_NOTE, strategies: out };
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
