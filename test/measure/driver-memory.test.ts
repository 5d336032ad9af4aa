import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { tableFigures, type BufferSpec } from '../../src/strategy/buffer-table.js';
import { layerConfig } from '../../src/config.js';
import { chunkBaseName } from '../../src/gpu/allocator.js';
import { chunkBytes, chunkLayout } from '../../src/gpu/tensor.js';
import { driverDelta, holdPeakBuffers, MIB, NO_DRIVER_REASON, peakStepSpecs, readDriverMemory, specChunkBytes } from '../../src/measure/driver-memory.js';
import { MoELayer } from '../../src/layer.js';
import { STRATEGIES } from '../../src/registry.js';
import { layouts } from '../../src/zero-buffer/table.js';
import { testGpu } from '../helpers/gpu.js';

// The driver is faked: systeminformation's controllers, and nvidia-smi asked directly (the fallback).
const mocks = vi.hoisted(() => ({ graphics: vi.fn(), execFile: vi.fn() }));
vi.mock('systeminformation', () => ({ default: { graphics: () => mocks.graphics() } }));
vi.mock('node:child_process', () => ({
  execFile: (cmd: string, args: string[], options: object, callback: (error: Error | null, stdout: string) => void) => mocks.execFile(cmd, args, options, callback),
}));

const noSmi = (_c: string, _a: string[], _o: object, callback: (error: Error | null, stdout: string) => void) => callback(new Error('spawn nvidia-smi ENOENT'), '');
const nvidia = (usedMiB: number, pciBus: string, name = 'NVIDIA H200') => ({ vendor: 'NVIDIA Corporation', model: 'GH100', name, pciBus, memoryUsed: usedMiB, memoryTotal: 143771, vram: 143771, vramDynamic: false, bus: '' });
const controllers = (...list: object[]) => ({ controllers: list, displays: [] });

afterAll(async () => (await testGpu()).destroy());

describe('driver memory reader', () => {
  beforeEach(() => {
    mocks.graphics.mockReset();
    mocks.execFile.mockReset().mockImplementation(noSmi);
  });

  it('reads NVIDIA used memory, waits for it to settle, and turns the change into bytes', async () => {
    const other = { vendor: 'Mesa', model: 'llvmpipe', vram: null, vramDynamic: false, bus: '' };
    // Two H200s of one name: only index 1 moves, so it is the GPU that held the buffers.
    mocks.graphics
      .mockResolvedValueOnce(controllers(other, nvidia(1000, '00000000:18:00.0'), nvidia(700, '00000000:2A:00.0')))
      .mockResolvedValueOnce(controllers(other, nvidia(1000, '00000000:18:00.0'), nvidia(700, '00000000:2A:00.0')))
      .mockResolvedValueOnce(controllers(other, nvidia(1000, '00000000:18:00.0'), nvidia(4000, '00000000:2A:00.0')))
      .mockResolvedValueOnce(controllers(other, nvidia(1000, '00000000:18:00.0'), nvidia(4796, '00000000:2A:00.0')))
      .mockResolvedValueOnce(controllers(other, nvidia(1000, '00000000:18:00.0'), nvidia(4796, '00000000:2A:00.0')));
    const before = await readDriverMemory({ intervalMs: 1 });
    expect(before.reason).toBeNull();
    expect(before.snapshot).toMatchObject({ source: 'systeminformation', polls: 2, stable: true });
    expect(before.snapshot!.gpus.map((g) => g.usedMiB)).toEqual([1000, 700]);
    // The driver was still settling (4000 → 4796): the poll keeps going until two readings agree.
    const after = await readDriverMemory({ intervalMs: 1 });
    expect(after.snapshot).toMatchObject({ polls: 3, stable: true });
    const delta = driverDelta(before.snapshot!, after.snapshot!, { device: 'nvidia-h200', description: 'NVIDIA: 580.159.04 580.159.4.0' });
    expect(delta.bytes).toBe(4096 * MIB);
    expect(delta.gpu).toMatchObject({ index: 1, bus: '00000000:2A:00.0' });
    expect(delta.note).toMatch(/2 GPUs are named like the adapter; took index 1/);
    expect(mocks.execFile).not.toHaveBeenCalled();
  });

  it('gives up after its polls with the last reading, marked unsettled', async () => {
    for (const used of [10, 11, 12]) mocks.graphics.mockResolvedValueOnce(controllers(nvidia(used, '00000000:18:00.0')));
    const read = await readDriverMemory({ polls: 3, intervalMs: 1 });
    expect(read.snapshot).toMatchObject({ polls: 3, stable: false });
    expect(read.snapshot!.gpus[0].usedMiB).toBe(12);
  });

  it('asks nvidia-smi directly when systeminformation has no figure (no lspci in the container)', async () => {
    mocks.graphics.mockResolvedValue(controllers());
    mocks.execFile.mockImplementation((_c, args: string[], _o, callback) => {
      expect(args[0]).toMatch(/memory\.used/);
      callback(null, '0, NVIDIA H200, 00000000:00:06.0, 523, 143771\n');
    });
    const read = await readDriverMemory({ intervalMs: 1 });
    expect(read.snapshot).toMatchObject({ source: 'nvidia-smi', stable: true });
    expect(read.snapshot!.gpus).toEqual([{ index: 0, name: 'NVIDIA H200', bus: '00000000:00:06.0', usedMiB: 523, totalMiB: 143771 }]);
  });

  it('returns null with the reason where no NVIDIA driver reports memory', async () => {
    mocks.graphics.mockResolvedValue(controllers({ vendor: 'Intel Corporation', model: 'UHD 630', vram: 1024, vramDynamic: true, bus: 'PCI' }));
    const read = await readDriverMemory({ intervalMs: 1 });
    expect(read.snapshot).toBeNull();
    expect(read.reason).toMatch(new RegExp(`^${NO_DRIVER_REASON}`));
    expect(read.reason).toMatch(/ENOENT/);
  });
});

describe('buffers held at the peak', () => {
  it('recovers chunk sizes from the shape, or splits the total exactly', () => {
    const config = layerConfig({ tokens: 96, hidden: 16, ffn: 32, experts: 4, topK: 2 });
    const hidden = layouts(config, 4096).hidden;
    const table = STRATEGIES[0].bufferTable(config, { expertLoads: [], keptPairs: 192, droppedPairs: 0, capacity: null }, { chunkBytes: 4096 });
    const a = table.step.find((s) => s.name === 'a')!;
    expect(a.chunks).toBeGreaterThan(1);
    expect(specChunkBytes(a, 4096)).toEqual({ sizes: chunkBytes(hidden), source: 'layout' });
    const odd: BufferSpec = { name: 'odd', tag: 'workspace', shape: [7], dtype: 'u8', bytes: 40, chunks: 3, layout: chunkLayout(40, 1, 1, 16), from: 'router', to: 'router' };
    expect(specChunkBytes(odd, 16)).toEqual({ sizes: [16, 12, 12], source: 'equal-split' });
    // The step's own record wins when it agrees with the table's total and count.
    expect(specChunkBytes(odd, 16, new Map([['odd|workspace', [20, 12, 8]]]))).toEqual({ sizes: [20, 12, 8], source: 'step' });
    expect(specChunkBytes(odd, 16, new Map([['odd|workspace', [20, 12]]])).source).toBe('equal-split');
  });

  for (const strategy of STRATEGIES) {
    it(`${strategy.id}: the allocator gains exactly the table's peak step bytes, and all of it is freed`, async () => {
      const gpu = await testGpu();
      const config = layerConfig({ tokens: 96, hidden: 16, ffn: 32, experts: 4, topK: 2, skew: { kind: 'zipf', s: 1.5 } });
      // A small chunk limit so that the [R,h]-sized buffers come in several chunks.
      const layer = await MoELayer.fromConfig(gpu, config, { impl: strategy.id, chunkBytes: 4096 });
      try {
        await layer.randomizeOnGpu();
        await layer.forward();
        const routing = await layer.routingSummary();
        await layer.step(); // as profile does: the allocator's record of a step gives the chunk sizes
        const table = strategy.bufferTable(config, routing, { chunkBytes: layer.chunkBytes });
        const figures = tableFigures(table);
        const peak = peakStepSpecs(table);
        const live = layer.allocator.live;
        const hold = await holdPeakBuffers(layer.allocator, table, layer.chunkBytes);
        expect(hold.phase).toBe(figures.peakPhase);
        expect(hold.allocatorBytes).toBe(figures.byPhase[figures.peakPhase] - figures.baseline);
        expect(hold.allocatorBytes).toBe(figures.activationPeak);
        expect(hold.tableBytes).toBe(hold.allocatorBytes);
        expect(hold.equalSplit).toEqual([]);
        expect(hold.chunkSources.step).toBe(peak.specs.length);
        // Same names, tags and chunk counts as the table's specs.
        expect(hold.buffers.length).toBe(peak.specs.reduce((n, s) => n + s.chunks, 0));
        for (const s of peak.specs) {
          const mine = hold.buffers.filter((b) => chunkBaseName(b.name) === s.name && b.tag === s.tag);
          expect(mine.reduce((n, b) => n + b.bytes, 0), s.name).toBe(peak.specs.filter((p) => p.name === s.name && p.tag === s.tag).reduce((n, p) => n + p.bytes, 0));
        }
        hold.release();
        expect(layer.allocator.live).toBe(live);
        const ids = new Set(hold.buffers.map((b) => b.id));
        expect(layer.allocator.liveBuffersList().filter((b) => ids.has(b.id))).toEqual([]);
      } finally {
        layer.destroy();
      }
    });
  }
});
