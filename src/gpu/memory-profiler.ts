import type { BufferTag, GpuAllocator, MemoryEvent } from './allocator.js';
import { formatBytes } from '../units.js';

/** The step figures of docs/design.md#memory, measured by the allocator. */
export interface StepMemory {
  /** Bytes live when the step started (weights, gradient buffers, X, dO, kernel params). */
  baseline: number;
  stepPeak: number;
  activationPeak: number;
  /** activations-saved + routing-metadata live when the forward pass ended; null without a forward mark. */
  savedForBackward: number | null;
  /** Bytes live when the forward pass ended (persistent included); null without a forward mark. */
  liveAtForwardEnd: number | null;
  peakByTag: Partial<Record<BufferTag, number>>;
  peakByName: Record<string, number>;
  /**
   * The most bytes the allocator held during the step, live or pooled for reuse (persistent
   * included; readback staging left out, as in live bytes): torch.cuda.max_memory_reserved over
   * the step. Equal to stepPeak with --allocator fresh.
   */
  reservedPeak: number;
  /** GPU buffers the step created (zero for a steady-state step of the caching allocator). */
  buffersCreated: number;
  timeline: MemoryEvent[];
}

export const FORWARD_END_MARK = 'forward-end';

/** Wraps a step and reports its memory; the layer marks the end of its forward pass. */
export class MemoryProfiler {
  constructor(private readonly allocator: GpuAllocator) {}

  async profile(step: () => Promise<void>): Promise<StepMemory & { summary(): string }> {
    const a = this.allocator;
    const baseline = a.live;
    const createdBefore = a.activity.created;
    const firstEvent = a.timeline.length;
    a.resetPeak();
    a.mark('step-start');
    await step();
    a.mark('step-end');
    const timeline = a.timeline.slice(firstEvent);
    const forwardEnd = timeline.find((e) => e.kind === 'mark' && e.name === FORWARD_END_MARK);
    const saved = forwardEnd ? (forwardEnd.byTag?.['activations-saved'] ?? 0) + (forwardEnd.byTag?.['routing-metadata'] ?? 0) : null;
    const peak = a.peakComposition;
    const figures: StepMemory = {
      baseline,
      stepPeak: peak.bytes,
      activationPeak: peak.bytes - baseline,
      savedForBackward: saved,
      liveAtForwardEnd: forwardEnd ? forwardEnd.live : null,
      peakByTag: peak.byTag,
      peakByName: peak.byName,
      reservedPeak: a.reservedPeak,
      buffersCreated: a.activity.created - createdBefore,
      timeline,
    };
    return { ...figures, summary: () => summarizeMemory(figures) };
  }
}

export function summarizeMemory(m: StepMemory): string {
  const lines = [
    `step peak ${formatBytes(m.stepPeak)}, activation peak ${formatBytes(m.activationPeak)}` +
      (m.savedForBackward === null ? '' : `, saved for backward ${formatBytes(m.savedForBackward)}`) +
      `, reserved ${formatBytes(m.reservedPeak)} (${m.buffersCreated} buffer${m.buffersCreated === 1 ? '' : 's'} created)`,
    'at the peak, by tag:',
    ...Object.entries(m.peakByTag)
      .sort((x, y) => (y[1] ?? 0) - (x[1] ?? 0))
      .map(([tag, bytes]) => `  ${tag.padEnd(18)} ${formatBytes(bytes ?? 0)}`),
    'largest buffers at the peak:',
    ...Object.entries(m.peakByName)
      .sort((x, y) => y[1] - x[1])
      .slice(0, 8)
      .map(([name, bytes]) => `  ${name.padEnd(18)} ${formatBytes(bytes)}`),
  ];
  return lines.join('\n');
}
