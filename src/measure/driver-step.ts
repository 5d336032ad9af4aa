/**
 * The driver check on the step's own buffers (issue 18 item 2): a real step, paused on the host
 * at the allocator's peak, with nvidia-smi read there and at the step's start. Dawn backs a
 * buffer with device memory when it is created, so at the pause the driver holds every buffer
 * the step holds, plus anything allocated outside the allocator (which a hold of table-sized
 * buffers could never show). profile.ts keeps the table-sized hold as a second line.
 */
import { drain, driverDelta, relativeDifference, type DriverRead, type DriverSnapshot } from './driver-memory.js';
import type { MoELayer } from '../layer.js';

export const DRIVER_TOLERANCE = 0.05;

/** Injected by tests; the default polls nvidia-smi through systeminformation, or directly where that has no figure. */
export interface DriverProbe {
  poll(): Promise<DriverRead>;
}

export interface DriverFigures {
  allocatorDeltaBytes: number;
  driverDeltaBytes: number;
  /** (driver − allocator) / allocator. */
  relativeDifference: number | null;
  withinTolerance: boolean;
}

export function figures(allocatorDeltaBytes: number, driverDeltaBytes: number): DriverFigures {
  const rel = relativeDifference(allocatorDeltaBytes, driverDeltaBytes);
  return { allocatorDeltaBytes, driverDeltaBytes, relativeDifference: rel, withinTolerance: rel !== null && Math.abs(rel) <= DRIVER_TOLERANCE };
}

/** A settled reading after Dawn has released what was freed; a reading that fails mid-run is an error. */
export async function settled(device: GPUDevice, probe: DriverProbe): Promise<DriverSnapshot> {
  await drain(device);
  const read = await probe.poll();
  if (!read.snapshot) throw new Error(`the driver stopped reporting memory: ${read.reason}`);
  return read.snapshot;
}

export interface StepPeakCheck extends DriverFigures {
  /** The allocator's step peak (of the step before, which this one repeats) over its live bytes at the start. */
  peakDeltaBytes: number;
  /** The pause came at the peak itself (live bytes there = the peak), not after a free that followed it. */
  atPeak: boolean;
  notes: string[];
}

export interface ReservedCheck extends DriverFigures {
  /** The allocator's reserved bytes at the pause: live, pooled free buffers and persistent. */
  reservedBytes: number;
  /** Live bytes at the pause (the allocated figure the reserved one contains). */
  liveBytes: number;
  notes: string[];
}

/**
 * The driver against reserved (issue 27): with the caching allocator the pool already holds the
 * step's buffers when a step starts, so the change across one step says nothing. Instead one more
 * step pauses at its allocated peak, and the driver's change since `beforeLayer` (a settled
 * reading taken before the layer existed) is compared with everything the allocator reserves
 * there (persistent tensors, live step buffers, pooled free ones).
 */
export async function stepReservedCheck(layer: MoELayer, probe: DriverProbe, beforeLayer: DriverSnapshot): Promise<ReservedCheck> {
  const last = layer.memory;
  if (!last) throw new Error('stepReservedCheck: run a step first; its peak is where the next one pauses');
  let pause: { live: number; reserved: number; snapshot: DriverSnapshot } | null = null;
  layer.allocator.pauseWhenLive(last.stepPeak, async (live) => {
    pause = { live, reserved: layer.allocator.reserved, snapshot: await settled(layer.gpu.device, probe) };
  });
  try {
    await layer.step();
  } finally {
    layer.allocator.clearPause();
  }
  const p = pause as { live: number; reserved: number; snapshot: DriverSnapshot } | null;
  if (!p) throw new Error(`the step never reached its earlier peak (${last.stepPeak} B live): it is not deterministic`);
  const delta = driverDelta(beforeLayer, p.snapshot, layer.gpu.adapter);
  const notes = [delta.note, beforeLayer.stable && p.snapshot.stable ? null : 'a reading did not settle within its polls'].filter((n): n is string => n !== null);
  return { ...figures(p.reserved, delta.bytes), reservedBytes: p.reserved, liveBytes: p.live, notes };
}

/**
 * Runs one more train step of the layer (it must have run one: its peak is the target), reads
 * the driver at the step's start and at the pause, and compares the two deltas.
 */
export async function stepPeakCheck(layer: MoELayer, probe: DriverProbe): Promise<StepPeakCheck> {
  const last = layer.memory;
  if (!last) throw new Error('stepPeakCheck: run a step first; its peak is where the next one pauses');
  const device = layer.gpu.device;
  const adapter = layer.gpu.adapter;
  let start: { live: number; snapshot: DriverSnapshot } | null = null;
  let pause: { live: number; snapshot: DriverSnapshot } | null = null;
  layer.allocator.pauseWhenLive(last.stepPeak, async (live) => {
    // Work submitted before the pause finishes, so Dawn releases what the step freed so far.
    pause = { live, snapshot: await settled(device, probe) };
  });
  try {
    await layer.step({
      atStart: async () => {
        start = { live: layer.allocator.live, snapshot: await settled(device, probe) };
      },
    });
  } finally {
    layer.allocator.clearPause();
  }
  const s = start as { live: number; snapshot: DriverSnapshot } | null;
  const p = pause as { live: number; snapshot: DriverSnapshot } | null;
  if (!s || !p) throw new Error(`the step never reached its earlier peak (${last.stepPeak} B live): it is not deterministic`);
  const delta = driverDelta(s.snapshot, p.snapshot, adapter);
  const notes = [delta.note, s.snapshot.stable && p.snapshot.stable ? null : 'a reading did not settle within its polls'].filter((n): n is string => n !== null);
  const atPeak = p.live === last.stepPeak;
  if (!atPeak) notes.push(`the step freed buffers between its peak and the pause: compared at ${p.live - s.live} B, the peak is ${last.stepPeak - s.live} B`);
  return { ...figures(p.live - s.live, delta.bytes), peakDeltaBytes: last.stepPeak - s.live, atPeak, notes };
}
