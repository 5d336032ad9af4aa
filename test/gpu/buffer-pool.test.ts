import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutOfMemoryError } from '../../src/errors.js';
import { GpuAllocator, POISON_WORD, type AllocatorPolicy } from '../../src/gpu/allocator.js';
import { policyFromEnv } from '../../src/gpu/buffer-pool.js';
import { openGpu, type GpuContext } from '../../src/gpu/runtime.js';

let gpu: GpuContext;
const KiB = 1024;

beforeAll(async () => {
  gpu = await openGpu();
});

afterAll(() => gpu?.destroy());

function allocator(policy: Partial<AllocatorPolicy> = {}, memoryLimit?: number): GpuAllocator {
  return new GpuAllocator(gpu.device, { maxBufferBytes: gpu.maxBufferBytes, maxBindingBytes: gpu.maxBindingBytes, memoryLimit }, { mode: 'caching', poison: false, ...policy });
}

const storage = (): number => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

async function words(buffer: GPUBuffer, bytes: number): Promise<number[]> {
  const staging = gpu.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = gpu.device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, bytes);
  gpu.device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = [...new Uint32Array(staging.getMappedRange().slice(0))];
  staging.destroy();
  return out;
}

describe('the caching allocator', () => {
  it('hands a freed buffer out again for the same size and usage only, creating none', () => {
    const a = allocator();
    const x = a.create('x', 'workspace', 8 * KiB, storage());
    a.free(x);
    expect(a.activity.created).toBe(1);
    const y = a.create('y', 'activations-saved', 8 * KiB, storage());
    expect(y.buffer).toBe(x.buffer);
    expect(y.buffer.label).toBe('y');
    expect(a.activity.created).toBe(1);
    // Another size, or the same size with another usage, is a new buffer.
    const z = a.create('z', 'workspace', 8 * KiB + 4, storage());
    const u = a.create('u', 'workspace', 8 * KiB, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, { bound: false });
    expect([z.buffer, u.buffer]).not.toContain(x.buffer);
    expect(a.activity.created).toBe(3);
    a.freeAll();
    expect(a.releasePool()).toBe(3 * 8 * KiB + 4);
    expect(a.pooled).toEqual({ buffers: 0, bytes: 0 });
  });

  it('keeps live bytes, peaks and the timeline as the fresh allocator does; reserved adds the pool', () => {
    const run = (a: GpuAllocator) => {
      const w = a.create('W', 'weights', 16 * KiB, storage());
      const t = a.create('t', 'workspace', 32 * KiB, storage());
      a.free(t);
      a.resetPeak();
      const s = a.create('s', 'workspace', 8 * KiB, storage());
      const t2 = a.create('t', 'workspace', 32 * KiB, storage());
      a.free(t2);
      a.free(s);
      return { w, live: a.live, peak: a.peakComposition, timeline: a.timeline.map((e) => [e.kind, e.name, e.bytes, e.live]) };
    };
    const caching = allocator();
    const fresh = allocator({ mode: 'fresh' });
    const c = run(caching);
    const f = run(fresh);
    expect({ ...c, w: null }).toEqual({ ...f, w: null });
    expect(c.peak.bytes).toBe(56 * KiB);
    // Fresh: reserved is live. Caching: the 32 KiB and 8 KiB buffers stay pooled.
    expect(fresh.reserved).toBe(16 * KiB);
    expect(fresh.reservedPeak).toBe(56 * KiB);
    expect(caching.reserved).toBe(56 * KiB);
    expect(caching.reservedPeak).toBe(56 * KiB);
    expect(caching.activity.created).toBe(3);
    expect(fresh.activity.created).toBe(4);
    for (const a of [caching, fresh]) {
      a.freeAll();
      a.releasePool();
    }
  });

  it('leaves readback staging out of reserved, as out of live bytes, and unmaps it before pooling', async () => {
    const a = allocator();
    const r = a.create('X:readback', 'readback', 4 * KiB, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, { bound: false });
    await r.buffer.mapAsync(GPUMapMode.READ);
    a.free(r);
    expect(a.reserved).toBe(0);
    expect(r.buffer.mapState).toBe('unmapped');
    expect(a.activity.readbacks).toBe(1);
    const again = a.create('Y:readback', 'readback', 4 * KiB, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, { bound: false });
    expect(again.buffer).toBe(r.buffer);
    expect(a.activity).toEqual({ created: 1, readbacks: 2, releasedForLimit: 0 });
    a.freeAll();
    a.releasePool();
  });

  it('keeps reserved under --memory-limit by destroying pooled buffers first; live bytes still refuse', () => {
    const a = allocator({}, 64 * KiB);
    const x = a.create('x', 'workspace', 32 * KiB, storage());
    const y = a.create('y', 'workspace', 16 * KiB, storage());
    a.free(x);
    a.free(y);
    expect(a.reserved).toBe(48 * KiB);
    // 40 KiB is new: reserved would be 88 KiB; the largest pooled buffer (32 KiB) goes.
    const z = a.create('z', 'workspace', 40 * KiB, storage());
    expect(a.activity.releasedForLimit).toBe(32 * KiB);
    expect(a.reserved).toBe(56 * KiB);
    expect(a.reservedPeak).toBeLessThanOrEqual(64 * KiB);
    let error: unknown;
    try {
      a.create('w', 'workspace', 32 * KiB, storage());
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(OutOfMemoryError);
    expect((error as OutOfMemoryError).limit).toBe('memory-limit-live');
    expect((error as Error).message).toMatch(/live memory to 72\.0 KiB, above the memory limit 64\.0 KiB/);
    a.free(z);
    a.releasePool();
  });

  it('creates and destroys every buffer in fresh mode, and withFreshBuffers() empties the pool around its work', async () => {
    const a = allocator();
    a.free(a.create('x', 'workspace', 4 * KiB, storage()));
    expect(a.pooled.buffers).toBe(1);
    const created = await a.withFreshBuffers(async () => {
      expect(a.pooled.buffers).toBe(0);
      expect(a.policy.mode).toBe('fresh');
      a.free(a.create('x', 'workspace', 4 * KiB, storage()));
      expect(a.pooled.buffers).toBe(0);
      return a.activity.created;
    });
    expect(created).toBe(2);
    expect(a.policy.mode).toBe('caching');
    expect(a.pooled.buffers).toBe(0);
  });

  it('never pools a buffer whose creation the driver refused', async () => {
    const destroyed: string[] = [];
    const device = {
      pushErrorScope: () => {},
      popErrorScope: async () => ({ message: 'Out of memory (stand-in)' }),
      createBuffer: (d: GPUBufferDescriptor) => ({ size: d.size, usage: d.usage, label: d.label, mapState: 'unmapped', destroy: () => destroyed.push(String(d.label)) }),
    } as unknown as GPUDevice;
    const a = new GpuAllocator(device, { maxBufferBytes: 1 << 30, maxBindingBytes: 1 << 30 });
    const b = a.create('a', 'workspace', 64, 0);
    const failure = a.settle();
    await expect(failure).rejects.toMatchObject({ limit: 'device' });
    a.free(b);
    expect(destroyed).toEqual(['a']);
    expect(a.pooled.buffers).toBe(0);
  });

  it('poisons what it hands out, new or pooled, with a NaN in f32 and in both f16 halves', async () => {
    const a = allocator({ poison: true });
    const x = a.create('x', 'workspace', 16, storage());
    expect(await words(x.buffer, 16)).toEqual([POISON_WORD, POISON_WORD, POISON_WORD, POISON_WORD]);
    gpu.device.queue.writeBuffer(x.buffer, 0, new Uint32Array([1, 2, 3, 4]));
    a.free(x);
    const y = a.create('y', 'workspace', 16, storage());
    expect(y.buffer).toBe(x.buffer);
    expect(await words(y.buffer, 16)).toEqual([POISON_WORD, POISON_WORD, POISON_WORD, POISON_WORD]);
    expect(Number.isNaN(new Float32Array(new Uint32Array([POISON_WORD]).buffer)[0])).toBe(true);
    expect(POISON_WORD & 0xffff).toBe(0x7fff); // f16: exponent all ones, mantissa non-zero
    a.freeAll();
    a.releasePool();
  });

  it('takes its policy from MOEBLAZE_POISON_POOL', () => {
    expect(policyFromEnv('caching', {})).toEqual({ mode: 'caching', poison: false });
    expect(policyFromEnv('fresh', { MOEBLAZE_POISON_POOL: '1' })).toEqual({ mode: 'fresh', poison: true });
  });
});
