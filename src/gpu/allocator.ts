import { OutOfMemoryError } from '../errors.js';
import { formatBytes } from '../units.js';

export const BUFFER_TAGS = [
  'weights',
  'gradients',
  'optimizer',
  'input',
  'activations-saved',
  'routing-metadata',
  'workspace',
  'output',
  'readback',
] as const;
export type BufferTag = (typeof BUFFER_TAGS)[number];

/** WebGPU copies and bindings work in 4-byte units; the allocator counts what it really asks for. */
export function allocationBytes(bytes: number): number {
  return Math.max(4, Math.ceil(bytes / 4) * 4);
}

/**
 * Readback staging buffers are the profiler's own host-visible copies, made outside the layer's
 * work; they appear in the timeline but not in live bytes or peaks.
 */
function counted(tag: BufferTag): boolean {
  return tag !== 'readback';
}

/** Chunks of one tensor are named "a[0]", "a[1]", …; composition reports them as "a". */
export function chunkBaseName(name: string): string {
  return name.replace(/\[\d+\]$/, '');
}

export interface TrackedBuffer {
  readonly id: number;
  readonly name: string;
  readonly tag: BufferTag;
  readonly bytes: number;
  readonly buffer: GPUBuffer;
}

export interface MemoryEvent {
  seq: number;
  kind: 'alloc' | 'free' | 'mark';
  name: string;
  tag?: BufferTag;
  bytes: number;
  /** Bytes live after the event. */
  live: number;
  /** Live bytes by tag at a mark. */
  byTag?: Partial<Record<BufferTag, number>>;
}

export interface PeakComposition {
  bytes: number;
  byTag: Partial<Record<BufferTag, number>>;
  byName: Record<string, number>;
}

export interface AllocatorLimits {
  maxBufferBytes: number;
  /** Largest storage binding; buffers that are bound whole may not exceed it. */
  maxBindingBytes: number;
  /** Refuse allocations that would take live bytes above this (--memory-limit). */
  memoryLimit?: number;
}

/**
 * The one place GPU buffers come from. Every buffer carries a tag and a name so that peaks can
 * be explained, not just reported; the figures of docs/design.md#memory are derived from this record.
 */
export class GpuAllocator {
  private nextId = 1;
  private readonly liveBuffers = new Map<number, TrackedBuffer>();
  private liveBytes = 0;
  private peak: PeakComposition = { bytes: 0, byTag: {}, byName: {} };
  private readonly events: MemoryEvent[] = [];
  private pendingScopes: Promise<void>[] = [];
  private seq = 0;
  private pause: { bytes: number; hold: (live: number) => Promise<void>; due: boolean } | null = null;

  constructor(
    readonly device: GPUDevice,
    readonly limits: AllocatorLimits,
  ) {}

  get live(): number {
    return this.liveBytes;
  }

  get timeline(): readonly MemoryEvent[] {
    return this.events;
  }

  /** The peak since construction or the last resetPeak(), with what was live at that moment. */
  get peakComposition(): PeakComposition {
    return this.peak;
  }

  liveByTag(): Partial<Record<BufferTag, number>> {
    const byTag: Partial<Record<BufferTag, number>> = {};
    for (const b of this.liveBuffers.values()) byTag[b.tag] = (byTag[b.tag] ?? 0) + b.bytes;
    return byTag;
  }

  liveBuffersList(): TrackedBuffer[] {
    return [...this.liveBuffers.values()];
  }

  /** Starts a new peak window at the current live bytes (for per-step figures). */
  resetPeak(): void {
    this.peak = this.snapshot();
  }

  mark(label: string): void {
    this.events.push({ seq: this.seq++, kind: 'mark', name: label, bytes: 0, live: this.liveBytes, byTag: this.snapshot().byTag });
  }

  /**
   * Creates a buffer. Limits are checked here, synchronously; a driver-side out-of-memory is
   * caught by an error scope and reported by the next settle().
   */
  create(name: string, tag: BufferTag, bytes: number, usage: GPUBufferUsageFlags, options: { bound?: boolean } = { bound: true }): TrackedBuffer {
    const size = allocationBytes(bytes);
    const bound = options.bound ?? true;
    if (size > this.limits.maxBufferBytes) {
      throw new OutOfMemoryError(`buffer "${name}" needs ${formatBytes(size)} (${size} B), more than the adapter's maxBufferSize ${formatBytes(this.limits.maxBufferBytes)}`, size, name);
    }
    if (bound && size > this.limits.maxBindingBytes) {
      throw new OutOfMemoryError(
        `buffer "${name}" needs ${formatBytes(size)} (${size} B), more than the adapter's maxStorageBufferBindingSize ${formatBytes(this.limits.maxBindingBytes)}; it must be chunked`,
        size,
        name,
      );
    }
    if (this.limits.memoryLimit !== undefined && this.liveBytes + size > this.limits.memoryLimit) {
      throw new OutOfMemoryError(
        `buffer "${name}" (${formatBytes(size)}) would take live memory to ${formatBytes(this.liveBytes + size)}, above the memory limit ${formatBytes(this.limits.memoryLimit)}`,
        size,
        name,
      );
    }
    this.device.pushErrorScope('out-of-memory');
    const buffer = this.device.createBuffer({ label: name, size, usage });
    this.pendingScopes.push(
      this.device.popErrorScope().then((error) => {
        if (error) throw new OutOfMemoryError(`out of GPU memory allocating "${name}" (${formatBytes(size)}): ${error.message}`, size, name);
      }),
    );
    const tracked: TrackedBuffer = { id: this.nextId++, name, tag, bytes: size, buffer };
    this.liveBuffers.set(tracked.id, tracked);
    this.liveBytes += counted(tag) ? size : 0;
    this.events.push({ seq: this.seq++, kind: 'alloc', name, tag, bytes: size, live: this.liveBytes });
    if (this.liveBytes > this.peak.bytes) this.peak = this.snapshot();
    if (this.pause && this.liveBytes >= this.pause.bytes) this.pause.due = true;
    return tracked;
  }

  /**
   * Pauses the step on the host once live bytes first reach `bytes` (the peak of an earlier step
   * of the same layer: steps are deterministic): the buffers the step holds there stay alive
   * while `hold` runs (the driver check reads nvidia-smi; Dawn backs a buffer with device memory
   * when it is created). create() is synchronous, so the pause happens at the step's next await
   * point: the next kernel dispatch (StepEncoder) or the end of the pass (MoELayer).
   */
  pauseWhenLive(bytes: number, hold: (live: number) => Promise<void>): void {
    this.pause = { bytes, hold, due: false };
  }

  /** Runs a due pause (see pauseWhenLive); free when none is due. */
  async pausePoint(): Promise<void> {
    const p = this.pause;
    if (!p?.due) return;
    this.pause = null;
    await p.hold(this.liveBytes);
  }

  /** Disarms a pause that never came due (a step that failed before its peak). */
  clearPause(): void {
    this.pause = null;
  }

  get pauseDue(): boolean {
    return this.pause?.due ?? false;
  }

  /** Throws the first out-of-memory error that the driver reported since the last call. */
  async settle(): Promise<void> {
    const scopes = this.pendingScopes;
    this.pendingScopes = [];
    const results = await Promise.allSettled(scopes);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
  }

  free(tracked: TrackedBuffer | undefined): void {
    if (!tracked || !this.liveBuffers.has(tracked.id)) return;
    this.liveBuffers.delete(tracked.id);
    this.liveBytes -= counted(tracked.tag) ? tracked.bytes : 0;
    // WebGPU defers the real release until submitted work that uses the buffer completes.
    tracked.buffer.destroy();
    this.events.push({ seq: this.seq++, kind: 'free', name: tracked.name, tag: tracked.tag, bytes: tracked.bytes, live: this.liveBytes });
  }

  freeAll(): void {
    for (const b of [...this.liveBuffers.values()]) this.free(b);
  }

  private snapshot(): PeakComposition {
    const byTag: Partial<Record<BufferTag, number>> = {};
    const byName: Record<string, number> = {};
    for (const b of this.liveBuffers.values()) {
      if (!counted(b.tag)) continue;
      byTag[b.tag] = (byTag[b.tag] ?? 0) + b.bytes;
      const base = chunkBaseName(b.name);
      byName[base] = (byName[base] ?? 0) + b.bytes;
    }
    return { bytes: this.liveBytes, byTag, byName };
  }
}
