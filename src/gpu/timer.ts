import type { GpuAllocator, TrackedBuffer } from './allocator.js';

/**
 * What the host did between a pass and the one before it, which is where the GPU idles
 * (docs/design.md#time): read a buffer back (a mid-step sync), create buffers (and, for Dawn,
 * zero-fill them before first use), submit a new command buffer, or none of these (a pass switch
 * inside one command buffer, with any clears and copies recorded between the two passes).
 */
export const GAP_CAUSES = ['readback', 'allocation', 'submission', 'pass-boundary'] as const;
export type GapCause = (typeof GAP_CAUSES)[number];

/** One timed span of a step (a compute pass), as the GPU's timestamps saw it. */
export interface PassTiming {
  label: string;
  kernels: string[];
  /** What the host did since the pass before (StepEncoder); absent for the first pass. */
  gapBefore?: GapCause;
}

export interface PassTime {
  label: string;
  /** Start, relative to the first pass's start. */
  startMs: number;
  ms: number;
}

export interface StepTiming {
  /** First pass's start to last pass's end: gaps, flushes and host readbacks included. */
  totalMs: number;
  /** The sum of the passes' own times: the GPU busy with the step's kernels. */
  busyMs: number;
  /** totalMs − busyMs: the GPU idle between the step's passes. */
  idleMs: number;
  /** The idle time by what the host did in each gap (PassTiming.gapBefore). */
  idleByCause: Partial<Record<GapCause, number>>;
  /** The same span for the passes before and from `splitAt` (forward and backward). */
  forwardMs: number | null;
  backwardMs: number | null;
  passes: PassTime[];
}

/**
 * GPU timestamps around compute passes (Dawn created with unquantised timestamps). One query
 * pair per pass; the buffers are the profiler's own and tagged readback, outside the figures.
 */
export class GpuTimer {
  readonly querySet: GPUQuerySet;
  private readonly resolve: TrackedBuffer;

  constructor(
    private readonly allocator: GpuAllocator,
    readonly capacity = 1024,
  ) {
    this.querySet = allocator.device.createQuerySet({ type: 'timestamp', count: capacity });
    this.resolve = allocator.create('timestamps', 'readback', capacity * 8, GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, { bound: false });
  }

  get writes(): { querySet: GPUQuerySet; capacity: number } {
    return { querySet: this.querySet, capacity: this.capacity };
  }

  /** Reads the timestamps of `passes` (already submitted, in order). */
  async read(passes: readonly PassTiming[], splitAt: number | null = null): Promise<StepTiming> {
    if (passes.length * 2 > this.capacity) throw new Error(`the step used ${passes.length} passes; the timer holds ${this.capacity / 2}`);
    const device = this.allocator.device;
    const count = passes.length * 2;
    const staging = this.allocator.create('timestamps:map', 'readback', count * 8, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, { bound: false });
    try {
      const encoder = device.createCommandEncoder();
      encoder.resolveQuerySet(this.querySet, 0, count, this.resolve.buffer, 0);
      encoder.copyBufferToBuffer(this.resolve.buffer, 0, staging.buffer, 0, count * 8);
      device.queue.submit([encoder.finish()]);
      await staging.buffer.mapAsync(GPUMapMode.READ);
      const ticks = new BigInt64Array(staging.buffer.getMappedRange().slice(0));
      staging.buffer.unmap();
      const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
      const times = passes.map((p, i) => ({ label: p.label, startMs: ms(ticks[0], ticks[2 * i]), ms: ms(ticks[2 * i], ticks[2 * i + 1]) }));
      const split = splitAt !== null && splitAt > 0 && splitAt < passes.length ? splitAt : null;
      const totalMs = ms(ticks[0], ticks[count - 1]);
      return {
        totalMs,
        ...busyAndIdle(totalMs, times, passes),
        forwardMs: split === null ? (splitAt === passes.length ? ms(ticks[0], ticks[count - 1]) : null) : ms(ticks[0], ticks[2 * split - 1]),
        backwardMs: split === null ? null : ms(ticks[2 * split], ticks[count - 1]),
        passes: times,
      };
    } finally {
      this.allocator.free(staging);
    }
  }

  destroy(): void {
    this.querySet.destroy();
    this.allocator.free(this.resolve);
  }
}

/** Busy time (the passes' sum) and the idle rest of the span, each gap put down to its cause. */
export function busyAndIdle(totalMs: number, times: readonly PassTime[], passes: readonly PassTiming[]): Pick<StepTiming, 'busyMs' | 'idleMs' | 'idleByCause'> {
  const busyMs = times.reduce((a, p) => a + p.ms, 0);
  const idleByCause: Partial<Record<GapCause, number>> = {};
  for (let i = 1; i < times.length; i++) {
    const gap = times[i].startMs - (times[i - 1].startMs + times[i - 1].ms);
    if (gap <= 0) continue;
    const cause = passes[i]?.gapBefore ?? 'pass-boundary';
    idleByCause[cause] = (idleByCause[cause] ?? 0) + gap;
  }
  return { busyMs, idleMs: Math.max(0, totalMs - busyMs), idleByCause };
}
