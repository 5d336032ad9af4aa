import { afterAll, describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { MIB, NO_DRIVER_REASON, readDriverMemory, type DriverRead } from '../../src/measure/driver-memory.js';
import { stepPeakCheck, stepReservedCheck, type DriverProbe } from '../../src/measure/driver-step.js';
import { MoELayer } from '../../src/layer.js';
import { STRATEGIES } from '../../src/registry.js';
import { testGpu } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

/**
 * A stand-in for nvidia-smi on lavapipe: every byte of every buffer created on the device and not
 * yet destroyed, whether or not it went through the allocator, over a fixed driver context.
 */
async function deviceLedger() {
  const gpu = await testGpu();
  const device = gpu.device;
  const live = new Map<GPUBuffer, number>();
  const mapRead = new Set<GPUBuffer>();
  const create = device.createBuffer.bind(device);
  device.createBuffer = (descriptor: GPUBufferDescriptor) => {
    const buffer = create(descriptor);
    live.set(buffer, descriptor.size);
    if (descriptor.usage & GPUBufferUsage.MAP_READ) mapRead.add(buffer);
    const destroy = buffer.destroy.bind(buffer);
    buffer.destroy = () => {
      live.delete(buffer);
      mapRead.delete(buffer);
      destroy();
    };
    return buffer;
  };
  const extra = { bytes: 0 };
  const probe: DriverProbe = {
    poll: async (): Promise<DriverRead> => {
      const bytes = 300 * MIB + [...live.values()].reduce((a, b) => a + b, 0) + extra.bytes;
      return { snapshot: { source: 'nvidia-smi', gpus: [{ index: 0, name: 'NVIDIA H200', bus: null, usedMiB: bytes / MIB, totalMiB: null }], polls: 2, stable: true }, reason: null };
    },
  };
  // Host-visible staging (MAP_READ) lives in system memory on a discrete GPU: reserved leaves it out.
  const stagingBytes = () => [...mapRead].reduce((a, b) => a + live.get(b)!, 0);
  return { gpu, probe, extra, stagingBytes, restore: () => (device.createBuffer = create) };
}

describe('driver check on the step\'s own buffers (paused at the allocator\'s peak)', () => {
  it('skips cleanly where no NVIDIA driver answers, with the reason', async () => {
    const read = await readDriverMemory({ intervalMs: 1, polls: 2, timeoutMs: 3000 });
    if (read.snapshot) return; // a machine with an NVIDIA driver: nothing to skip
    expect(read.reason).toMatch(new RegExp(`^${NO_DRIVER_REASON}`));
  });

  for (const strategy of STRATEGIES) {
    it(`${strategy.id}: the device holds exactly the allocator's step bytes at the pause, which is the peak`, async () => {
      const { gpu, probe, extra, stagingBytes, restore } = await deviceLedger();
      const config = layerConfig({ tokens: 96, hidden: 16, ffn: 32, experts: 4, topK: 2, skew: { kind: 'zipf', s: 1.5 } });
      const beforeLayer = (await probe.poll()).snapshot!;
      const layer = await MoELayer.fromConfig(gpu, config, { impl: strategy.id, chunkBytes: 4096 });
      try {
        await layer.randomizeOnGpu();
        const first = await layer.step();
        // Caching (the default): the device holds, since before the layer, what the allocator reserves.
        const reserved = await stepReservedCheck(layer, probe, beforeLayer);
        expect(reserved.liveBytes).toBe(first.memory.stepPeak);
        expect(reserved.reservedBytes).toBeGreaterThanOrEqual(first.memory.stepPeak);
        expect(reserved.driverDeltaBytes).toBe(reserved.reservedBytes + stagingBytes());
        expect(layer.allocator.activity.created).toBeGreaterThan(0);
        // Allocated bytes at the pause: with fresh buffers, as profile --driver-check runs it.
        const check = await layer.allocator.withFreshBuffers(() => stepPeakCheck(layer, probe));
        expect(check.atPeak).toBe(true);
        expect(check.allocatorDeltaBytes).toBe(first.memory.activationPeak);
        expect(check.peakDeltaBytes).toBe(first.memory.activationPeak);
        expect(check.driverDeltaBytes).toBe(check.allocatorDeltaBytes);
        expect(check.withinTolerance).toBe(true);
        // Memory the allocator never saw (a buffer made behind its back) shows as a difference.
        // The first reading (the step's start) arms it: from then on the "driver" holds that much more.
        const probeWithStray: DriverProbe = {
          poll: async () => {
            const read = await probe.poll();
            extra.bytes = first.memory.activationPeak;
            return read;
          },
        };
        const stray = await layer.allocator.withFreshBuffers(() => stepPeakCheck(layer, probeWithStray));
        expect(stray.driverDeltaBytes).toBe(stray.allocatorDeltaBytes + first.memory.activationPeak);
        expect(stray.withinTolerance).toBe(false);
      } finally {
        layer.destroy();
        restore();
      }
    });
  }
});
