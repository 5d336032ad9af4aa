import { afterAll, describe, expect, it } from 'vitest';
import { encodeBins, encodeRadixSort, sortEndBit, sortPlan } from '../../../baselines/megablocks/sort.js';
import type { TrackedBuffer } from '../../../src/gpu/allocator.js';
import { storageUsage } from '../../../src/gpu/tensor.js';
import { testGpu, testKernels } from '../../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

async function read(kernels: Awaited<ReturnType<typeof testKernels>>, b: TrackedBuffer, count: number): Promise<Uint32Array> {
  const device = kernels.device;
  const staging = device.createBuffer({ size: Math.max(4, count * 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(b.buffer, 0, staging, 0, Math.max(4, count * 4));
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Uint32Array(staging.getMappedRange().slice(0, count * 4));
  staging.destroy();
  return out;
}

/** Sorts `keys` (all < experts) on the GPU; returns sorted keys, the permutation and the bins. */
async function gpuSort(keys: Uint32Array, experts: number, blocking: number) {
  const kernels = await testKernels();
  const a = kernels.allocator;
  const n = keys.length;
  const plan = sortPlan(n, sortEndBit(experts));
  const u32 = (name: string, count: number) => a.create(name, 'workspace', count * 4, storageUsage());
  const keysIn = u32('keysIn', n);
  kernels.device.queue.writeBuffer(keysIn.buffer, 0, keys as Uint32Array<ArrayBuffer>);
  const b = {
    keysIn,
    keysOut: u32('keysOut', n),
    valuesOut: u32('valuesOut', n),
    tempKeys: plan.needsTemp ? u32('tempKeys', n) : null,
    tempValues: plan.needsTemp ? u32('tempValues', n) : null,
    hist: u32('hist', plan.histEntries),
  };
  const bins = u32('bins', experts + 1);
  const padded = u32('paddedBins', experts + 1);
  const tiles = u32('tileOffsets', experts + 1);
  const enc = kernels.encoder();
  await encodeRadixSort(enc, plan, b);
  await encodeBins(enc, { count: n, experts, blocking, tileRows: 64 }, { sortedKeys: b.keysOut, bins, paddedBins: padded, tileOffsets: tiles });
  enc.flush();
  const result = {
    sorted: await read(kernels, b.keysOut, n),
    order: await read(kernels, b.valuesOut, n),
    bins: await read(kernels, bins, experts + 1),
    padded: await read(kernels, padded, experts + 1),
    tiles: await read(kernels, tiles, experts + 1),
    passes: plan.passes.length,
  };
  a.freeAll();
  return result;
}

function cpuReference(keys: Uint32Array, experts: number, blocking: number) {
  const order = Array.from(keys.keys()).sort((x, y) => keys[x] - keys[y] || x - y);
  const counts = new Array(experts).fill(0);
  for (const key of keys) counts[key]++;
  const bins = [0];
  const padded = [0];
  const tiles = [0];
  for (const n of counts) {
    const p = Math.ceil(n / blocking) * blocking;
    bins.push(bins[bins.length - 1] + n);
    padded.push(padded[padded.length - 1] + p);
    tiles.push(tiles[tiles.length - 1] + Math.ceil(p / 64));
  }
  return { order, sorted: order.map((i) => keys[i]), bins, padded, tiles };
}

function randomKeys(n: number, experts: number, seed: number): Uint32Array {
  let s = seed;
  return Uint32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * experts);
  });
}

const CASES: [string, Uint32Array, number, number][] = [
  ['1000 keys, E=8 (not a multiple of the block)', randomKeys(1000, 8, 1), 8, 128],
  ['one expert (E=1)', randomKeys(300, 1, 2), 1, 128],
  ['E=512 (two passes)', randomKeys(3001, 512, 3), 512, 128],
  ['E=300 (two uneven passes), no padding', randomKeys(777, 300, 4), 300, 1],
  ['all keys equal', new Uint32Array(700).fill(5), 16, 128],
  ['a single key', Uint32Array.of(3), 4, 128],
  ['exactly one block', randomKeys(256, 7, 5), 7, 128],
  ['E=256 (one full 8-bit pass), skewed', randomKeys(2000, 256, 6).map((x) => x % 9), 256, 128],
];

describe('GPU radix sort and bins vs a CPU stable sort', () => {
  for (const [name, keys, experts, blocking] of CASES) {
    it(name, async () => {
      const got = await gpuSort(keys, experts, blocking);
      const want = cpuReference(keys, experts, blocking);
      expect(Array.from(got.sorted)).toEqual(want.sorted);
      expect(Array.from(got.order)).toEqual(want.order);
      expect(Array.from(got.bins)).toEqual(want.bins);
      expect(Array.from(got.padded)).toEqual(want.padded);
      expect(Array.from(got.tiles)).toEqual(want.tiles);
    });
  }

  it('plans one pass up to 256 experts and two up to 512', () => {
    expect(sortPlan(10, sortEndBit(1)).passes).toEqual([{ shift: 0, bits: 1 }]);
    expect(sortPlan(10, sortEndBit(256)).passes.length).toBe(1);
    expect(sortPlan(10, sortEndBit(257)).passes).toEqual([
      { shift: 0, bits: 5 },
      { shift: 5, bits: 4 },
    ]);
  });

  it('is deterministic run to run', async () => {
    const keys = randomKeys(5000, 64, 9);
    const first = await gpuSort(keys, 64, 128);
    const second = await gpuSort(keys, 64, 128);
    expect(Buffer.from(second.order.buffer).equals(Buffer.from(first.order.buffer))).toBe(true);
  });
});
