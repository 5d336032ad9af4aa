import type { GpuAllocator } from './allocator.js';
import { chunkLayout, chunkRowRange, storageUsage, type Tensor } from './tensor.js';
import type { KernelContext } from '../../kernels/context.js';
import { encodeGatherWords } from '../../kernels/gather-words.js';
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

/**
 * Scattered elements of a float tensor by flat row-major index, as f32, in the order given: one
 * gather dispatch per chunk (kernels/gather-words.ts) and one readback, where copy commands
 * would need one each (a DeepSeek-like layer's sampled columns are millions of elements).
 */
export async function readElements(kernels: KernelContext, tensor: Tensor, indices: ArrayLike<number>): Promise<Float32Array> {
  const { layout } = tensor;
  const eb = layout.elementBytes;
  const n = indices.length;
  if (n === 0) return new Float32Array(0);
  const chunkOf = new Uint32Array(n);
  const words = new Uint32Array(n);
  const high = new Uint8Array(n); // f16: the element is its word's upper half
  for (let p = 0; p < n; p++) {
    const index = indices[p];
    const row = Math.floor(index / layout.cols);
    if (!(index >= 0 && row < layout.rows)) throw new Error(`readElements: element ${index} is outside ${tensor.name} [${layout.rows}×${layout.cols}]`);
    const chunk = Math.floor(row / layout.rowsPerChunk);
    chunkOf[p] = chunk;
    const byte = (index - chunk * layout.rowsPerChunk * layout.cols) * eb;
    words[p] = Math.floor(byte / 4);
    high[p] = byte % 4 === 2 ? 1 : 0;
  }
  // Grouped by chunk (stable), so that each chunk's gather is one contiguous range.
  const order = Uint32Array.from({ length: n }, (_, p) => p).sort((a, b) => chunkOf[a] - chunkOf[b] || a - b);
  const a = kernels.allocator;
  const idx = a.create(`${tensor.name}:gather-indices`, 'readback', 4 * n, storageUsage());
  const out = a.create(`${tensor.name}:gathered`, 'readback', 4 * n, storageUsage());
  try {
    a.device.queue.writeBuffer(idx.buffer, 0, Uint32Array.from(order, (p) => words[p]));
    const enc = kernels.encoder();
    for (let from = 0; from < n; ) {
      let to = from;
      while (to < n && chunkOf[order[to]] === chunkOf[order[from]]) to++;
      await encodeGatherWords(enc, tensor.chunks[chunkOf[order[from]]].buffer, idx, out, from, to - from);
      from = to;
    }
    enc.flush();
    const gathered = await readTensorU32(a, { name: out.name, tag: 'readback', layout: chunkLayout(n, 1, 4, Infinity), chunks: [out] });
    const values = new Float32Array(n);
    if (eb === 4) {
      const asFloat = new Float32Array(gathered.buffer, gathered.byteOffset, n);
      order.forEach((p, i) => (values[p] = asFloat[i]));
    } else {
      // Little-endian: the lower half of a word is the element at its even half-index.
      const halves = Uint16Array.from(order, (p, i) => (high[p] ? gathered[i] >>> 16 : gathered[i] & 0xffff));
      const widened = fromHalf(halves);
      order.forEach((p, i) => (values[p] = widened[i]));
    }
    return values;
  } finally {
    a.free(idx);
    a.free(out);
  }
}
