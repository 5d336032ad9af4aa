import type { GpuAllocator, TrackedBuffer } from './allocator.js';

/** One timed span of a step (a compute pass), as the GPU's timestamps saw it. */
export interface PassTiming {
  label: string;
  kernels: string[];
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
      return {
        totalMs: ms(ticks[0], ticks[count - 1]),
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
