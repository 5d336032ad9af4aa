import type { BufferTag, GpuAllocator, TrackedBuffer } from './allocator.js';
import { allocationBytes } from './allocator.js';
import { toHalf } from '../f16.js';

/** Resolved at call time: the GPUBufferUsage global exists only once Dawn is loaded. */
export function storageUsage(): number {
  return GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
}

/**
 * How a [rows, cols] tensor is split into buffers that each fit one storage binding
 * (docs/design.md#large-tensors-are-chunked). Chunks hold whole groups of `rowGranularity` rows, so
 * that e.g. an expert's weight matrix never straddles two buffers.
 */
export interface ChunkLayout {
  rows: number;
  cols: number;
  elementBytes: number;
  rowsPerChunk: number;
  chunkCount: number;
}

export function chunkLayout(rows: number, cols: number, elementBytes: number, maxBindingBytes: number, rowGranularity = 1): ChunkLayout {
  const groupBytes = cols * elementBytes * rowGranularity;
  const groupsPerChunk = Math.max(1, Math.floor(maxBindingBytes / Math.max(groupBytes, 1)));
  const rowsPerChunk = Math.max(1, Math.min(rows, groupsPerChunk * rowGranularity));
  return { rows, cols, elementBytes, rowsPerChunk, chunkCount: Math.max(1, Math.ceil(rows / rowsPerChunk)) };
}

export function chunkRowRange(layout: ChunkLayout, chunk: number): { start: number; count: number } {
  const start = chunk * layout.rowsPerChunk;
  return { start, count: Math.max(0, Math.min(layout.rowsPerChunk, layout.rows - start)) };
}

/** Bytes each chunk of the layout occupies, as the allocator will count them. */
export function chunkBytes(layout: ChunkLayout): number[] {
  return Array.from({ length: layout.chunkCount }, (_, c) => allocationBytes(chunkRowRange(layout, c).count * layout.cols * layout.elementBytes));
}

export interface Tensor {
  readonly name: string;
  readonly tag: BufferTag;
  readonly layout: ChunkLayout;
  readonly chunks: TrackedBuffer[];
}

export function allocateTensor(allocator: GpuAllocator, name: string, tag: BufferTag, layout: ChunkLayout, extraUsage = 0): Tensor {
  const chunks = chunkBytes(layout).map((bytes, c) =>
    allocator.create(layout.chunkCount === 1 ? name : `${name}[${c}]`, tag, bytes, storageUsage() | extraUsage),
  );
  return { name, tag, layout, chunks };
}

export function freeTensor(allocator: GpuAllocator, tensor: Tensor | undefined): void {
  if (tensor) for (const chunk of tensor.chunks) allocator.free(chunk);
}

/** Writes host data (row-major, the whole tensor) into its chunks; f32 data for a 2-byte tensor is rounded to f16. */
export function uploadTensor(device: GPUDevice, tensor: Tensor, data: Float32Array | Uint32Array | Int32Array): void {
  const { layout } = tensor;
  const half = layout.elementBytes === 2;
  if (half && !(data instanceof Float32Array)) throw new Error(`${tensor.name}: an f16 tensor takes float data`);
  tensor.chunks.forEach((chunk, c) => {
    const { start, count } = chunkRowRange(layout, c);
    const from = start * layout.cols;
    const view = data.subarray(from, from + count * layout.cols);
    if (!view.length) return;
    if (half) {
      // writeBuffer moves whole 4-byte words: an odd count gets one padding half.
      const words = new Uint16Array(Math.ceil(view.length / 2) * 2);
      words.set(toHalf(view));
      device.queue.writeBuffer(chunk.buffer, 0, words.buffer, 0, words.byteLength);
    } else {
      device.queue.writeBuffer(chunk.buffer, 0, view.buffer, view.byteOffset, view.byteLength);
    }
  });
}
