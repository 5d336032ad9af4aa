/** The allocator's vocabulary (src/gpu/allocator.ts): buffer tags, tracked buffers, the memory record, limits. */

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
export function counted(tag: BufferTag): boolean {
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
  /**
   * Refuse allocations that would take live bytes above this (--memory-limit); reserved bytes are
   * kept under it too, by releasing free pooled buffers first (as PyTorch does before it fails).
   */
  memoryLimit?: number;
}

/** Host work the allocator did, as running counts: StepEncoder reads them around GPU-idle gaps (docs/design.md#time). */
export interface AllocatorActivity {
  /** GPU buffers created (device.createBuffer). */
  created: number;
  /** Readback staging buffers handed out: each is a host wait for the GPU. */
  readbacks: number;
  /** Bytes of pooled buffers destroyed to keep reserved bytes under --memory-limit. */
  releasedForLimit: number;
}
