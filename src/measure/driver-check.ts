/**
 * `profile --driver-check` (docs/design.md#driver-cross-check): per strategy, the driver against
 * reserved bytes at a paused step, against allocated bytes at a paused step with fresh buffers,
 * against a table-sized hold, and across layer creation.
 */
import type { GpuContext } from '../gpu/runtime.js';
import type { MoELayer } from '../layer.js';
import type { BufferTable } from '../strategy/buffer-table.js';
import type { RoutingSummary } from '../strategy/contract.js';
import { driverDelta, holdPeakBuffers, MIB, type ChunkSource, type DriverGpu, type DriverSnapshot } from './driver-memory.js';
import { DRIVER_TOLERANCE, figures, settled as settledOn, stepPeakCheck, stepReservedCheck, type DriverFigures, type DriverProbe, type ReservedCheck, type StepPeakCheck } from './driver-step.js';

export const DRIVER_CHECK_NOTE =
  'first line: a real step paused on the host at the allocator\'s peak, nvidia-smi read there and before the layer existed, against everything the allocator reserves (persistent, live and pooled buffers); second line: the same pause with the pool emptied and fresh buffers, read there and at the step\'s start, against the allocated bytes; third line: buffers of the table\'s peak-phase sizes held after the step; deltas of settled readings leave out the driver\'s context';
/** Below this, whole-MiB readings and Dawn's pooled sub-allocation heaps swamp a 5% comparison. */
export const DRIVER_RESOLUTION_BYTES = 256 * MIB;

export type StrategyDriverCheck =
  | (DriverFigures & {
      strategy: string;
      skipped: null;
      /** The driver since before the layer against reserved bytes at the caching step's peak (null: failed or no reading before the layer, see notes). */
      reserved: ReservedCheck | null;
      /** The step's own buffers, paused at the allocator's peak, with fresh buffers (null: that measurement failed, see notes). */
      step: StepPeakCheck | null;
      peakPhase: string;
      buffers: number;
      /** Step buffers whose chunk sizes are an equal split of the table's total (neither the step's record nor the shape gave them). */
      equalSplit: string[];
      /** Where the held chunks' sizes came from: the step's own allocations, the shape, or an equal split. */
      chunkSources: Record<ChunkSource, number>;
      gpu: string;
      /** Driver figure given back when the held buffers were freed. */
      releasedBytes: number;
      /** The same comparison across layer creation: weights, gradients, X, dO against their table bytes (null: a reading failed). */
      persistent: DriverFigures | null;
      notes: string[];
    })
  | { strategy: string; skipped: string };

export interface DriverCheckReport {
  /** Who answered: nvidia-smi through systeminformation, or asked directly where systeminformation had no figure. */
  method: 'nvidia-smi via systeminformation' | 'nvidia-smi';
  tolerance: number;
  /** Why no strategy was checked (no NVIDIA driver, another adapter), else null. */
  skipped: string | null;
  note: string;
  strategies: StrategyDriverCheck[];
}


const usedMiB = (s: DriverSnapshot, gpu: DriverGpu) => s.gpus.find((g) => g.index === gpu.index && g.bus === gpu.bus)?.usedMiB ?? NaN;

/** A settled reading on this context's device. */
export function settled(gpu: GpuContext, probe: DriverProbe): Promise<DriverSnapshot> {
  return settledOn(gpu.device, probe);
}

/** Decides once whether the driver can say anything about this adapter. */
export async function startDriverCheck(gpu: GpuContext, probe: DriverProbe): Promise<{ probe: DriverProbe | null; report: DriverCheckReport }> {
  const read = await probe.poll();
  const a = gpu.adapter;
  const skipped = read.reason ?? (/nvidia/i.test(`${a.vendor} ${a.device} ${a.description}`) ? null : `the adapter in use (${a.device || a.description || a.vendor}) is not an NVIDIA GPU, so the driver's figure does not describe it`);
  const method = read.snapshot?.source === 'systeminformation' ? 'nvidia-smi via systeminformation' : 'nvidia-smi';
  return { probe: skipped ? null : probe, report: { method, tolerance: DRIVER_TOLERANCE, skipped, note: DRIVER_CHECK_NOTE, strategies: [] } };
}

/**
 * The driver against reserved bytes at a paused step (the layer's own allocator policy), then,
 * with the pool emptied and fresh buffers (a pooled buffer is backed before the step starts),
 * against the allocated bytes of the paused step and of a table-sized hold.
 */
export async function checkAtPeak(layer: MoELayer, routing: RoutingSummary, probe: DriverProbe, persistent: DriverFigures | null, beforeLayer: DriverSnapshot | null): Promise<StrategyDriverCheck> {
  const strategy = layer.strategy.id;
  const table = layer.strategy.bufferTable(layer.config, routing, { chunkBytes: layer.chunkBytes });
  try {
    let reserved: ReservedCheck | null = null;
    let reservedFailure: string | null = beforeLayer ? null : 'reserved not compared: the driver gave no settled reading before the layer was created';
    if (beforeLayer) {
      try {
        reserved = await stepReservedCheck(layer, probe, beforeLayer);
      } catch (error) {
        reservedFailure = `the paused step against reserved failed: ${(error as Error).message ?? error}`;
      }
    }
    return await layer.allocator.withFreshBuffers(async () => {
      // The step's own buffers at its peak, then the table-sized hold as a second opinion.
      let step: StepPeakCheck | null = null;
      let stepFailure: string | null = null;
      try {
        step = await stepPeakCheck(layer, probe);
      } catch (error) {
        stepFailure = `the paused step failed: ${(error as Error).message ?? error}`;
      }
      return { ...(await holdCheck(layer, table, probe, [reservedFailure, stepFailure])), reserved, step, persistent };
    });
  } catch (error) {
    // A measurement, not a gate: an out-of-memory or a driver that stops answering is reported.
    return { strategy, skipped: `failed: ${(error as Error).message ?? error}` };
  }
}

/** Holds the table's peak-phase step buffers and compares the allocator's delta with the driver's. */
async function holdCheck(layer: MoELayer, table: BufferTable, probe: DriverProbe, failures: (string | null)[]): Promise<Omit<Extract<StrategyDriverCheck, { skipped: null }>, 'reserved' | 'step' | 'persistent'>> {
  const strategy = layer.strategy.id;
  {
    const before = await settled(layer.gpu, probe);
    const hold = await holdPeakBuffers(layer.allocator, table, layer.chunkBytes);
    let after: DriverSnapshot;
    try {
      after = await settled(layer.gpu, probe);
    } finally {
      hold.release();
    }
    const freed = await settled(layer.gpu, probe);
    const delta = driverDelta(before, after, layer.gpu.adapter);
    const notes = [...failures, delta.note, before.stable && after.stable ? null : 'a reading did not settle within its polls'].filter((n): n is string => n !== null);
    if (hold.allocatorBytes < DRIVER_RESOLUTION_BYTES) notes.push(`the peak's step buffers total under ${DRIVER_RESOLUTION_BYTES / MIB} MiB: whole-MiB readings and Dawn's pooled heaps for small buffers dominate; use a larger config`);
    if (hold.equalSplit.length) notes.push(`chunk sizes of ${hold.equalSplit.join(', ')} are the table's total split equally (neither the step's record nor the shape gave them); the total is exact`);
    return {
      strategy,
      skipped: null,
      peakPhase: hold.phase,
      buffers: hold.buffers.length,
      equalSplit: hold.equalSplit,
      chunkSources: hold.chunkSources,
      gpu: `${delta.gpu.name} (index ${delta.gpu.index}${delta.gpu.bus ? `, ${delta.gpu.bus}` : ''})`,
      ...figures(hold.allocatorBytes, delta.bytes),
      releasedBytes: (usedMiB(after, delta.gpu) - usedMiB(freed, delta.gpu)) * MIB,
      notes,
    };
  }
}

