import type { GpuAllocator } from './allocator.js';
import { chunkRowRange, type Tensor } from './tensor.js';
import { fromHalf } from '../f16.js';

/** Copies a whole float tensor, chunk by chunk, into host memory as f32 (f16 tensors widened exactly). */
export async function readTensor(allocator: GpuAllocator, tensor: Tensor): Promise<Float32Array> {
  const bytes = await readTensorBytes(allocator, tensor);
  return tensor.layout.elementBytes === 2 ? fromHalf(new Uint16Array(bytes)) : new Float32Array(bytes);
}

export async function readTensorU32(allocator: GpuAllocator, tensor: Tensor): Promise<Uint32Array> {
  return new Uint32Array(await readTensorBytes(allocator, tensor));
}

async function readTensorBytes(allocator: GpuAllocator, tensor: Tensor): Promise<ArrayBuffer> {
  const { layout } = tensor;
  const total = layout.rows * layout.cols * layout.elementBytes;
  const out = new ArrayBuffer(total);
  const device = allocator.device;
  for (let c = 0; c < tensor.chunks.length; c++) {
    const { start, count } = chunkRowRange(layout, c);
    const bytes = count * layout.cols * layout.elementBytes;
    if (bytes === 0) continue;
    const padded = Math.ceil(bytes / 4) * 4;
    const staging = allocator.create(`${tensor.name}:readback`, 'readback', padded, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, { bound: false });
    try {
      const encoder = device.createCommandEncoder({ label: `readback ${tensor.name}` });
      encoder.copyBufferToBuffer(tensor.chunks[c].buffer, 0, staging.buffer, 0, padded);
      device.queue.submit([encoder.finish()]);
      await allocator.settle();
      await staging.buffer.mapAsync(GPUMapMode.READ);
      new Uint8Array(out, start * layout.cols * layout.elementBytes, bytes).set(new Uint8Array(staging.buffer.getMappedRange(), 0, bytes));
      staging.buffer.unmap();
    } finally {
      allocator.free(staging);
    }
  }
  return out;
}

/** A run of consecutive elements of a tensor, by flat row-major index; it stays within one row. */
export interface ElementRun {
  start: number;
  length: number;
}

/**
 * Copies only the given runs of a float tensor to the host (the sampled check reads a few rows
 * and columns of tensors that can be 15 GB), concatenated, as f32. Copies move whole 4-byte
 * words, so an f16 run is widened to the words around it and cut back on the host.
 */
export async function readRuns(allocator: GpuAllocator, tensor: Tensor, runs: ElementRun[]): Promise<Float32Array> {
  const { layout } = tensor;
  const eb = layout.elementBytes;
  const plan = runs.map((r) => {
    const row = Math.floor(r.start / layout.cols);
    const col = r.start - row * layout.cols;
    if (r.length < 0 || col + r.length > layout.cols || row >= layout.rows) throw new Error(`readRuns: run ${r.start}+${r.length} leaves its row of ${tensor.name} [${layout.rows}×${layout.cols}]`);
    const chunk = Math.floor(row / layout.rowsPerChunk);
    const begin = ((row - chunk * layout.rowsPerChunk) * layout.cols + col) * eb;
    const from = Math.floor(begin / 4) * 4;
    const to = Math.ceil((begin + r.length * eb) / 4) * 4;
    return { chunk, from, size: to - from, skip: begin - from, length: r.length };
  });
  const total = plan.reduce((sum, p) => sum + p.size, 0);
  const out = new Float32Array(runs.reduce((sum, r) => sum + r.length, 0));
  if (total === 0) return out;
  const staging = allocator.create(`${tensor.name}:sampled-readback`, 'readback', total, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, { bound: false });
  try {
    const encoder = allocator.device.createCommandEncoder({ label: `sampled readback ${tensor.name}` });
    let at = 0;
    for (const p of plan) {
      if (p.size) encoder.copyBufferToBuffer(tensor.chunks[p.chunk].buffer, p.from, staging.buffer, at, p.size);
      at += p.size;
    }
    allocator.device.queue.submit([encoder.finish()]);
    await allocator.settle();
    await staging.buffer.mapAsync(GPUMapMode.READ);
    const bytes = new Uint8Array(staging.buffer.getMappedRange(), 0, total).slice();
    staging.buffer.unmap();
    at = 0;
    let o = 0;
    for (const p of plan) {
      const view = bytes.subarray(at + p.skip, at + p.skip + p.length * eb);
      out.set(eb === 2 ? fromHalf(new Uint16Array(view.slice().buffer)) : new Float32Array(view.slice().buffer), o);
      o += p.length;
      at += p.size;
    }
    return out;
  } finally {
    allocator.free(staging);
  }
}
