import { OutOfMemoryError } from '../errors.js';
import { formatBytes } from '../units.js';
import { BufferPool, DEFAULT_ALLOCATOR_POLICY, Poisoner, type AllocatorPolicy } from './buffer-pool.js';
import { allocationBytes, chunkBaseName, counted, type AllocatorActivity, type AllocatorLimits, type BufferTag, type MemoryEvent, type PeakComposition, type TrackedBuffer } from './allocator-types.js';

export { ALLOCATOR_MODES, DEFAULT_ALLOCATOR_POLICY, POISON_WORD, policyFromEnv, type AllocatorMode, type AllocatorPolicy } from './buffer-pool.js';

export { allocationBytes, BUFFER_TAGS, chunkBaseName, type AllocatorActivity, type AllocatorLimits, type BufferTag, type MemoryEvent, type PeakComposition, type TrackedBuffer } from './allocator-types.js';

/**
 * The one place GPU buffers come from. Every buffer carries a tag and a name so that peaks can
 * be explained, not just reported; the figures of docs/design.md#memory are derived from this record.
 * Live bytes ("allocated") count the buffers handed out and not freed, whatever the policy; in
 * caching mode (the default, buffer-pool.ts) a freed buffer stays on the device for reuse, and
 * "reserved" counts those too, as torch.cuda.memory_reserved does.
 */
export class GpuAllocator {
  private nextId = 1;
  private readonly liveBuffers = new Map<number, TrackedBuffer>();
  private liveBytes = 0;
  private peak: PeakComposition = { bytes: 0, byTag: {}, byName: {} };
  private reservedPeakBytes = 0;
  private readonly events: MemoryEvent[] = [];
  private pendingScopes: Promise<void>[] = [];
  private seq = 0;
  private pause: { bytes: number; hold: (live: number) => Promise<void>; due: boolean } | null = null;
  private readonly pool = new BufferPool();
  /** Buffers whose creation the driver refused: never pooled, never handed out again. */
  private readonly failed = new WeakSet<GPUBuffer>();
  private readonly counts: AllocatorActivity = { created: 0, readbacks: 0, releasedForLimit: 0 };
  private readonly poisoner = new Poisoner();
  policy: AllocatorPolicy;

  constructor(
    readonly device: GPUDevice,
    readonly limits: AllocatorLimits,
    policy: AllocatorPolicy = DEFAULT_ALLOCATOR_POLICY,
  ) {
    this.policy = { ...policy };
  }

  get live(): number {
    return this.liveBytes;
  }

  /** Live bytes plus the free buffers the pool holds for reuse (readback staging left out, as in live). */
  get reserved(): number {
    return this.liveBytes + this.pool.countedBytes;
  }

  /** The most bytes reserved since construction or the last resetPeak(). */
  get reservedPeak(): number {
    return this.reservedPeakBytes;
  }

  /** Free buffers the pool holds, and their bytes (staging copies included). */
  get pooled(): { buffers: number; bytes: number } {
    return { buffers: this.pool.size, bytes: this.pool.bytes };
  }

  /** Running counts of buffer creations and readbacks (a copy). */
  get activity(): AllocatorActivity {
    return { ...this.counts };
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
    this.reservedPeakBytes = this.reserved;
  }

  mark(label: string): void {
    this.events.push({ seq: this.seq++, kind: 'mark', name: label, bytes: 0, live: this.liveBytes, byTag: this.snapshot().byTag });
  }

  /**
   * Hands out a buffer: a pooled one of exactly this size and usage when caching, else a new one.
   * Limits are checked here, synchronously; a driver-side out-of-memory is caught by an error
   * scope and reported by the next settle().
   */
  create(name: string, tag: BufferTag, bytes: number, usage: GPUBufferUsageFlags, options: { bound?: boolean } = { bound: true }): TrackedBuffer {
    const size = allocationBytes(bytes);
    const bound = options.bound ?? true;
    if (size > this.limits.maxBufferBytes) {
      throw new OutOfMemoryError(`buffer "${name}" needs ${formatBytes(size)} (${size} B), more than the adapter's maxBufferSize ${formatBytes(this.limits.maxBufferBytes)}`, size, name, 'max-buffer-size');
    }
    if (bound && size > this.limits.maxBindingBytes) {
      throw new OutOfMemoryError(
        `buffer "${name}" needs ${formatBytes(size)} (${size} B), more than the adapter's maxStorageBufferBindingSize ${formatBytes(this.limits.maxBindingBytes)}; it must be chunked`,
        size,
        name,
        'max-binding-size',
      );
    }
    const limit = this.limits.memoryLimit;
    if (limit !== undefined && this.liveBytes + size > limit) {
      throw new OutOfMemoryError(
        `buffer "${name}" (${formatBytes(size)}) would take live memory to ${formatBytes(this.liveBytes + size)}, above the memory limit ${formatBytes(limit)}`,
        size,
        name,
        'memory-limit-live',
      );
    }
    let buffer = this.reuse(size, usage);
    if (!buffer) {
      // Reserved stays under the limit too: free pooled buffers go first (PyTorch's release of
      // cached blocks). Live bytes fit (checked above), so releasing enough always succeeds.
      if (limit !== undefined && counted(tag) && this.reserved + size > limit) this.counts.releasedForLimit += this.pool.release(this.reserved + size - limit);
      buffer = this.createBuffer(name, size, usage);
    }
    if (buffer.label !== name) buffer.label = name;
    // Poisoning by queue.writeBuffer is safe here: StepContext.free submits a buffer's work before it is freed.
    if (this.policy.poison) this.poisoner.fill(this.device, buffer, size);
    if (tag === 'readback') this.counts.readbacks++;
    const tracked: TrackedBuffer = { id: this.nextId++, name, tag, bytes: size, buffer };
    this.liveBuffers.set(tracked.id, tracked);
    this.liveBytes += counted(tag) ? size : 0;
    this.events.push({ seq: this.seq++, kind: 'alloc', name, tag, bytes: size, live: this.liveBytes });
    if (this.liveBytes > this.peak.bytes) this.peak = this.snapshot();
    if (this.reserved > this.reservedPeakBytes) this.reservedPeakBytes = this.reserved;
    if (this.pause && this.liveBytes >= this.pause.bytes) this.pause.due = true;
    return tracked;
  }

  private reuse(size: number, usage: number): GPUBuffer | null {
    if (this.policy.mode !== 'caching') return null;
    for (let entry = this.pool.take(size, usage); entry; entry = this.pool.take(size, usage)) {
      if (!this.failed.has(entry.buffer)) return entry.buffer;
      entry.buffer.destroy();
    }
    return null;
  }

  private createBuffer(name: string, size: number, usage: number): GPUBuffer {
    this.device.pushErrorScope('out-of-memory');
    const buffer = this.device.createBuffer({ label: name, size, usage });
    this.counts.created++;
    this.pendingScopes.push(
      this.device.popErrorScope().then((error) => {
        if (!error) return;
        this.failed.add(buffer);
        const held = this.pool.countedBytes;
        const pooled = held > 0 ? `; the caching allocator held ${formatBytes(held)} of free buffers (--allocator fresh would not)` : '';
        throw new OutOfMemoryError(`out of GPU memory allocating "${name}" (${formatBytes(size)}) with ${formatBytes(this.reserved)} reserved${pooled}: ${error.message}`, size, name, 'device');
      }),
    );
    return buffer;
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
    this.recycle(tracked);
    this.events.push({ seq: this.seq++, kind: 'free', name: tracked.name, tag: tracked.tag, bytes: tracked.bytes, live: this.liveBytes });
  }

  /**
   * Pools a freed buffer (caching) or destroys it (fresh; a buffer the driver refused; a staging
   * buffer still being mapped). WebGPU defers the real release of a destroyed buffer until
   * submitted work that uses it completes; a pooled one is reused in queue order after that work.
   */
  private recycle(tracked: TrackedBuffer): void {
    const buffer = tracked.buffer;
    if (this.policy.mode === 'caching' && !this.failed.has(buffer) && buffer.mapState !== 'pending') {
      if (buffer.mapState === 'mapped') buffer.unmap();
      this.pool.put(buffer, tracked.bytes, counted(tracked.tag));
      return;
    }
    buffer.destroy();
  }

  freeAll(): void {
    for (const b of [...this.liveBuffers.values()]) this.free(b);
  }

  /**
   * Destroys every free buffer the pool holds (the end of a layer or a command: dawn.node keeps
   * Node alive while GPU objects live), and returns their bytes. Live buffers are untouched.
   */
  releasePool(): number {
    const bytes = this.pool.bytes;
    this.pool.release();
    return bytes;
  }

  /**
   * Runs `work` with today's create-and-destroy behaviour and an empty pool (the driver check's
   * allocated-bytes comparisons: a pooled buffer would already be backed before the step), then
   * restores the policy; the pool is emptied again so nothing from `work` stays reserved.
   */
  async withFreshBuffers<T>(work: () => Promise<T>): Promise<T> {
    const mode = this.policy.mode;
    this.releasePool();
    this.policy.mode = 'fresh';
    try {
      return await work();
    } finally {
      this.policy.mode = mode;
      this.releasePool();
    }
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
