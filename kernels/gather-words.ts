import { bindingPrelude, grid, LINEAR_WORKGROUP, type KernelSource, type StepEncoder } from './program.js';
import type { TrackedBuffer } from '../src/gpu/allocator.js';
import { fromHalf } from '../src/f16.js';
import { readTensorU32 } from '../src/gpu/readback.js';
import { chunkLayout, storageUsage, type Tensor } from '../src/gpu/tensor.js';
import type { KernelContext } from './context.js';

/**
 * dst[start + i] = src[idx[start + i]] for i < count, on 32-bit words: gathers scattered
 * elements of a tensor (the sampled check's weight-gradient columns, stride h) in one dispatch
 * instead of one copy command each. Word-wise, so it serves f32 and f16 storage alike (the
 * host picks the half).
 */
export const gatherWords: KernelSource = (() => {
  const bindings = [
    { name: 'src', type: 'u32', access: 'read' },
    { name: 'idx', type: 'u32', access: 'read' },
    { name: 'dst', type: 'u32', access: 'read_write' },
  ] as const;
  const params = [
    { name: 'start', type: 'u32' },
    { name: 'count', type: 'u32' },
  ] as const;
  const code = `${bindingPrelude({ bindings, params })}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (${LINEAR_WORKGROUP}) * 256u + li;
  if (i < P.count) { dst[P.start + i] = src[idx[P.start + i]]; }
}`;
  return { name: 'gather-words', code, bindings, params };
})();

export async function encodeGatherWords(enc: StepEncoder, b: { src: GPUBuffer; idx: TrackedBuffer; dst: TrackedBuffer }, start: number, count: number): Promise<void> {
  await enc.dispatch({ source: gatherWords, params: { start, count }, buffers: b, workgroups: grid(Math.ceil(count / 256)) });
}

/**
 * Scattered elements of a float tensor by flat row-major index, as f32, in the order given: one
 * gather dispatch per chunk (gatherWords above) and one readback, where copy commands
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
      await encodeGatherWords(enc, { src: tensor.chunks[chunkOf[order[from]]].buffer, idx, dst: out }, from, to - from);
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
