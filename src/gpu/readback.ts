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
