import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutOfMemoryError } from '../../src/errors.js';
import { allocationBytes, chunkBaseName, GpuAllocator, type TrackedBuffer } from '../../src/gpu/allocator.js';
import { openGpu, type GpuContext } from '../../src/gpu/runtime.js';

let gpu: GpuContext;
const KiB = 1024;
const MiB = 1024 * KiB;

beforeAll(async () => {
  gpu = await openGpu();
});

afterAll(() => gpu?.destroy());

function allocator(limits: { memoryLimit?: number; maxBindingBytes?: number } = {}): GpuAllocator {
  return new GpuAllocator(gpu.device, { maxBufferBytes: gpu.maxBufferBytes, maxBindingBytes: limits.maxBindingBytes ?? gpu.maxBindingBytes, memoryLimit: limits.memoryLimit });
}

const storage = (): number => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

describe('GpuAllocator', () => {
  it('pauses once, at the next pause point after live bytes first reach the target, with those buffers alive', async () => {
    const a = allocator();
    const seen: number[] = [];
    a.pauseWhenLive(48 * KiB, async (live) => {
      seen.push(live);
    });
    const x = a.create('x', 'workspace', 32 * KiB, storage());
    await a.pausePoint(); // below the target: nothing
    expect(a.pauseDue).toBe(false);
    const y = a.create('y', 'workspace', 16 * KiB, storage());
    expect(a.pauseDue).toBe(true);
    expect(seen).toEqual([]); // create() is synchronous: the hold waits for the step's next await point
    await a.pausePoint();
    expect(seen).toEqual([48 * KiB]);
    const z = a.create('z', 'workspace', 16 * KiB, storage());
    await a.pausePoint(); // once only
    expect(seen).toEqual([48 * KiB]);
    a.pauseWhenLive(1, async () => void seen.push(-1));
    a.clearPause();
    a.free(a.create('w', 'workspace', 4, storage()));
    await a.pausePoint();
    expect(seen).toEqual([48 * KiB]);
    for (const b of [x, y, z]) a.free(b);
  });

  it('tracks live bytes and the peak across create/free sequences', async () => {
    const a = allocator();
    const w = a.create('W1', 'weights', 64 * KiB, storage());
    const x = a.create('X', 'input', 16 * KiB, storage());
    expect(a.live).toBe(80 * KiB);
    const t = a.create('tmp', 'workspace', 32 * KiB, storage());
    expect(a.live).toBe(112 * KiB);
    a.free(t);
    expect(a.live).toBe(80 * KiB);
    const s = a.create('small', 'workspace', 8 * KiB, storage());
    expect(a.live).toBe(88 * KiB);
    // The peak is the most ever live, not the current figure.
    expect(a.peakComposition.bytes).toBe(112 * KiB);
    a.free(t); // a second free is ignored
    expect(a.live).toBe(88 * KiB);
    for (const b of [w, x, s]) a.free(b);
    expect(a.live).toBe(0);
    expect(a.peakComposition.bytes).toBe(112 * KiB);
    await a.settle();
  });

  it('rounds sizes up to whole 4-byte words, as WebGPU does', () => {
    const a = allocator();
    const b = a.create('odd', 'workspace', 10, storage());
    expect(b.bytes).toBe(12);
    expect(a.live).toBe(allocationBytes(10));
    a.freeAll();
  });

  it('records the composition of the peak by tag and by name, chunks grouped under their tensor', () => {
    const a = allocator();
    a.create('W1', 'weights', 40 * KiB, storage());
    const chunks = [0, 1, 2].map((c) => a.create(`a[${c}]`, 'activations-saved', 8 * KiB, storage()));
    const meta = a.create('expertOffsets', 'routing-metadata', 4 * KiB, storage());
    const scratch = a.create('scratch', 'workspace', 16 * KiB, storage());
    a.free(scratch);
    a.free(meta);
    a.free(chunks[0]);
    const peak = a.peakComposition;
    expect(peak.bytes).toBe(40 * KiB + 24 * KiB + 4 * KiB + 16 * KiB);
    expect(peak.byTag).toEqual({ weights: 40 * KiB, 'activations-saved': 24 * KiB, 'routing-metadata': 4 * KiB, workspace: 16 * KiB });
    expect(peak.byName).toEqual({ W1: 40 * KiB, a: 24 * KiB, expertOffsets: 4 * KiB, scratch: 16 * KiB });
    // The composition is the snapshot at the peak, untouched by later frees.
    expect(a.liveByTag()).toEqual({ weights: 40 * KiB, 'activations-saved': 16 * KiB });
    expect(chunkBaseName('a[12]')).toBe('a');
    expect(chunkBaseName('W[1]x')).toBe('W[1]x');
    a.freeAll();
  });

  it('keeps a timeline of allocations, frees and marks with the live bytes after each', () => {
    const a = allocator();
    const x = a.create('X', 'input', 4 * KiB, storage());
    a.mark('forward');
    const y = a.create('Y', 'output', 8 * KiB, storage());
    a.free(x);
    a.free(y);
    expect(a.timeline.map((e) => [e.kind, e.name, e.bytes, e.live])).toEqual([
      ['alloc', 'X', 4 * KiB, 4 * KiB],
      ['mark', 'forward', 0, 4 * KiB],
      ['alloc', 'Y', 8 * KiB, 12 * KiB],
      ['free', 'X', 4 * KiB, 8 * KiB],
      ['free', 'Y', 8 * KiB, 0],
    ]);
    expect(a.timeline[1].byTag).toEqual({ input: 4 * KiB });
    expect(a.timeline.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4]);
  });

  it('starts a new peak window at resetPeak()', () => {
    const a = allocator();
    const w = a.create('W', 'weights', 16 * KiB, storage());
    const t = a.create('t', 'workspace', 64 * KiB, storage());
    a.free(t);
    expect(a.peakComposition.bytes).toBe(80 * KiB);
    a.resetPeak();
    expect(a.peakComposition).toEqual({ bytes: 16 * KiB, byTag: { weights: 16 * KiB }, byName: { W: 16 * KiB } });
    a.create('u', 'workspace', 4 * KiB, storage());
    expect(a.peakComposition.bytes).toBe(20 * KiB);
    expect(a.peakComposition.byName).toEqual({ W: 16 * KiB, u: 4 * KiB });
    a.free(w);
    a.freeAll();
  });

  it('leaves readback staging buffers out of live bytes and peaks but keeps them in the timeline', () => {
    const a = allocator();
    a.create('X', 'input', 4 * KiB, storage());
    const r = a.create('X:readback', 'readback', 4 * KiB, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, { bound: false });
    expect(a.live).toBe(4 * KiB);
    expect(a.peakComposition.byTag).toEqual({ input: 4 * KiB });
    a.free(r);
    expect(a.timeline.filter((e) => e.name === 'X:readback').map((e) => e.kind)).toEqual(['alloc', 'free']);
    a.freeAll();
  });

  it('refuses a buffer larger than maxBufferSize before allocating, naming the size and the limit', () => {
    const a = allocator();
    const size = gpu.maxBufferBytes + 1;
    let error: unknown;
    try {
      a.create('huge', 'workspace', size, storage(), { bound: false });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(OutOfMemoryError);
    const oom = error as OutOfMemoryError;
    expect(oom.bufferName).toBe('huge');
    expect(oom.requestedBytes).toBe(allocationBytes(size));
    expect(oom.exitCode).toBe(4);
    expect(oom.message).toContain(String(allocationBytes(size)));
    expect(oom.message).toContain('maxBufferSize');
    expect(oom.message).toContain('4.00 GiB');
    expect(a.live).toBe(0);
    expect(a.timeline).toHaveLength(0);
  });

  it('refuses a bound buffer larger than maxStorageBufferBindingSize, and allows it unbound', async () => {
    const a = allocator();
    const size = gpu.maxBindingBytes + 4;
    expect(() => a.create('W1', 'weights', size, storage())).toThrow(OutOfMemoryError);
    expect(() => a.create('W1', 'weights', size, storage())).toThrow(new RegExp(`W1.*${size} B.*maxStorageBufferBindingSize.*chunked`));
    expect(a.live).toBe(0);
    expect(a.timeline).toHaveLength(0);
    // Unbound (a copy source, say), only maxBufferSize applies; a small binding limit keeps this cheap.
    const small = allocator({ maxBindingBytes: 64 * KiB });
    expect(() => small.create('big', 'workspace', 64 * KiB + 4, storage())).toThrow(/maxStorageBufferBindingSize 64\.0 KiB/);
    const copy = small.create('big', 'workspace', 64 * KiB + 4, GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, { bound: false });
    expect(small.live).toBe(64 * KiB + 4);
    small.free(copy);
    await small.settle();
  });

  it('refuses an allocation that would exceed --memory-limit, leaving live bytes unchanged', async () => {
    const a = allocator({ memoryLimit: 1 * MiB });
    const first = a.create('W', 'weights', 768 * KiB, storage());
    let error: unknown;
    try {
      a.create('a', 'activations-saved', 512 * KiB, storage());
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(OutOfMemoryError);
    expect((error as Error).message).toMatch(/"a".*512 KiB.*1\.25 MiB.*memory limit 1\.00 MiB/);
    expect(a.live).toBe(768 * KiB);
    expect(a.peakComposition.bytes).toBe(768 * KiB);
    // Up to the limit exactly is allowed.
    const rest = a.create('b', 'workspace', 256 * KiB, storage());
    expect(a.live).toBe(1 * MiB);
    a.free(first);
    a.free(rest);
    await a.settle();
  });

  it('settle() resolves when the driver reported nothing and clears what it has reported', async () => {
    const a = allocator();
    const bufs: TrackedBuffer[] = [];
    for (let i = 0; i < 4; i++) bufs.push(a.create(`b[${i}]`, 'workspace', 4 * KiB, storage()));
    await expect(a.settle()).resolves.toBeUndefined();
    await expect(a.settle()).resolves.toBeUndefined();
    a.freeAll();
  });

  it("settle() surfaces a driver out-of-memory caught by the error scope as OutOfMemoryError", async () => {
    // A software adapter backs buffers with host memory and will not fail on demand, so the
    // driver's answer is stood in for: the allocator must push an out-of-memory scope per buffer.
    const scopes: string[] = [];
    const device = {
      pushErrorScope: (filter: string) => scopes.push(filter),
      popErrorScope: async () => ({ message: 'Out of memory (stand-in)' }),
      createBuffer: (descriptor: GPUBufferDescriptor) => ({ size: descriptor.size, destroy() {} }),
    } as unknown as GPUDevice;
    const a = new GpuAllocator(device, { maxBufferBytes: 1 << 30, maxBindingBytes: 1 << 30 });
    a.create('a[0]', 'activations-saved', 1000, 0);
    expect(scopes).toEqual(['out-of-memory']);
    const failure = a.settle();
    await expect(failure).rejects.toBeInstanceOf(OutOfMemoryError);
    await expect(failure).rejects.toThrow(/a\[0\].*Out of memory \(stand-in\)/);
    await expect(a.settle()).resolves.toBeUndefined();
  });
});
