/**
 * The caching allocator's free lists (docs/design.md#memory, "allocated and reserved"): a freed
 * GPU buffer is kept, keyed by its exact size and usage, and handed out again for the next
 * request of that key instead of creating a buffer. This is PyTorch's CUDACachingAllocator idea
 * (c10/cuda/CUDACachingAllocator.cpp keeps freed blocks in pools and reuses them) without its
 * block splitting: a WebGPU binding covers a whole buffer, and every kernel here binds whole
 * buffers, so a larger buffer cannot stand in for a smaller one. Exact keys suffice because a
 * step is deterministic: the same strategy, config and routing ask for the same sizes in the same
 * order every step, so from the second step on every request finds its buffer.
 */

/** `caching` (default): freed buffers are kept for reuse; `fresh`: every buffer is created and destroyed (the behaviour before issue 27). */
export const ALLOCATOR_MODES = ['caching', 'fresh'] as const;
export type AllocatorMode = (typeof ALLOCATOR_MODES)[number];

export interface AllocatorPolicy {
  mode: AllocatorMode;
  /**
   * Fill every buffer handed out with POISON_WORD before its first use (tests, and
   * MOEBLAZE_POISON_POOL=1): a kernel that relies on WebGPU's zero-filled new buffers, or on what
   * a buffer's previous user left, then reads NaN instead of passing by luck.
   */
  poison: boolean;
}

export const DEFAULT_ALLOCATOR_POLICY: AllocatorPolicy = { mode: 'caching', poison: false };

/** The policy the environment asks for by default: MOEBLAZE_POISON_POOL=1 poisons. */
export function policyFromEnv(mode: AllocatorMode = 'caching', env: NodeJS.ProcessEnv = process.env): AllocatorPolicy {
  return { mode, poison: env.MOEBLAZE_POISON_POOL === '1' };
}

/**
 * A quiet NaN in both storage widths: as f32 (exponent all ones, mantissa ≠ 0) and as each of
 * its two f16 halves (0x7fff); read as u32 it is an index far out of any range.
 */
export const POISON_WORD = 0x7fff7fff;

interface PooledBuffer {
  buffer: GPUBuffer;
  bytes: number;
  /** Whether its last user counted in live bytes (readback staging does not): reserved follows the same rule. */
  counted: boolean;
}

const keyOf = (bytes: number, usage: number) => `${bytes}|${usage}`;

/** Free buffers by exact (size, usage), newest last. */
export class BufferPool {
  private readonly free = new Map<string, PooledBuffer[]>();
  private freeCountedBytes = 0;
  private freeBytesAll = 0;

  /** Bytes of free buffers whose last user was counted (the part of reserved beyond live bytes). */
  get countedBytes(): number {
    return this.freeCountedBytes;
  }

  /** Bytes of every free buffer, staging copies included. */
  get bytes(): number {
    return this.freeBytesAll;
  }

  get size(): number {
    let n = 0;
    for (const list of this.free.values()) n += list.length;
    return n;
  }

  /** A free buffer of exactly this size and usage, or null. */
  take(bytes: number, usage: number): PooledBuffer | null {
    const list = this.free.get(keyOf(bytes, usage));
    const entry = list?.pop() ?? null;
    if (!entry) return null;
    if (list!.length === 0) this.free.delete(keyOf(bytes, usage));
    this.account(entry, -1);
    return entry;
  }

  put(buffer: GPUBuffer, bytes: number, counted: boolean): void {
    const key = keyOf(bytes, buffer.usage);
    const list = this.free.get(key) ?? [];
    list.push({ buffer, bytes, counted });
    this.free.set(key, list);
    this.account(list[list.length - 1], 1);
  }

  /**
   * Destroys free buffers, largest first, until at least `bytes` of counted ones are gone (all of
   * them with Infinity): what PyTorch does with its cached blocks before it reports out of memory.
   * Returns the counted bytes released.
   */
  release(bytes = Infinity): number {
    const entries = [...this.free.values()].flat().sort((a, b) => b.bytes - a.bytes);
    let released = 0;
    for (const entry of entries) {
      if (released >= bytes) break;
      if (bytes !== Infinity && !entry.counted) continue;
      const key = keyOf(entry.bytes, entry.buffer.usage);
      const list = this.free.get(key)!;
      list.splice(list.indexOf(entry), 1);
      if (list.length === 0) this.free.delete(key);
      this.account(entry, -1);
      entry.buffer.destroy();
      if (entry.counted) released += entry.bytes;
    }
    return released;
  }

  private account(entry: PooledBuffer, sign: 1 | -1): void {
    this.freeBytesAll += sign * entry.bytes;
    if (entry.counted) this.freeCountedBytes += sign * entry.bytes;
  }
}

/**
 * Fills buffers with POISON_WORD through queue.writeBuffer. That write runs before any later
 * submit, and every earlier use of a reused buffer was submitted before it was freed
 * (StepContext.free flushes first; in fresh mode a destroyed buffer in a later submit would be a
 * validation error), so the poison lands between the buffer's old life and its new one. Buffers
 * the queue cannot write (no COPY_DST) and mappable staging, which a copy overwrites, are left.
 */
export class Poisoner {
  private words: Uint32Array | null = null;

  fill(device: GPUDevice, buffer: GPUBuffer, size: number): void {
    if (!(buffer.usage & GPUBufferUsage.COPY_DST) || buffer.usage & (GPUBufferUsage.MAP_READ | GPUBufferUsage.MAP_WRITE)) return;
    const pieceWords = Math.min(size / 4, 4 << 20);
    if (!this.words || this.words.length < pieceWords) this.words = new Uint32Array(pieceWords).fill(POISON_WORD);
    for (let at = 0; at < size; at += pieceWords * 4) device.queue.writeBuffer(buffer, at, this.words.buffer, 0, Math.min(pieceWords * 4, size - at));
  }
}
