import type { BufferTag } from '../gpu/allocator.js';
import { chunkBytes, type ChunkLayout } from '../gpu/tensor.js';

/**
 * A strategy's declared memory: every buffer it allocates in a step, with its tag, shape and
 * lifetime over the strategy's ordered phases (docs/design.md#memory). Buffers are allocated when their
 * first phase begins and freed when their last phase ends, so the bytes live during phase p are
 * exactly those whose lifetime covers p; the allocator's record must agree to the byte.
 */
export interface BufferSpec {
  name: string;
  tag: BufferTag;
  shape: number[];
  dtype: 'f32' | 'u32' | 'f16' | 'u8';
  /** Bytes as allocated (chunks rounded to 4 bytes each). */
  bytes: number;
  chunks: number;
  /** How the tensor is chunked; a runner allocates it with exactly this layout (step-buffers.ts). */
  layout: ChunkLayout;
  from: string;
  to: string;
}

export interface BufferTable {
  /** Phases in execution order; the forward pass ends after `forwardEnd`. */
  phases: string[];
  forwardEnd: string;
  /** Live for the whole step (weights, gradients, inputs, kernel params). */
  persistent: BufferSpec[];
  step: BufferSpec[];
}

export interface TableFigures {
  baseline: number;
  stepPeak: number;
  activationPeak: number;
  savedForBackward: number;
  peakPhase: string;
  /** Bytes live during each phase (persistent included). */
  byPhase: Record<string, number>;
}

export function spec(name: string, tag: BufferTag, layout: ChunkLayout, shape: number[], dtype: BufferSpec['dtype'], from: string, to: string): BufferSpec {
  const chunks = chunkBytes(layout);
  return { name, tag, shape, dtype, bytes: chunks.reduce((a, b) => a + b, 0), chunks: chunks.length, layout, from, to };
}

function liveIn(table: BufferTable, s: BufferSpec, phase: string): boolean {
  const i = table.phases.indexOf(phase);
  return table.phases.indexOf(s.from) <= i && i <= table.phases.indexOf(s.to);
}

export function validateTable(table: BufferTable): void {
  for (const s of table.step) {
    const from = table.phases.indexOf(s.from);
    const to = table.phases.indexOf(s.to);
    if (from < 0 || to < 0 || to < from) throw new Error(`buffer table: ${s.name} has lifetime ${s.from}..${s.to} outside the phases ${table.phases.join(', ')}`);
  }
}

/** The figures of docs/design.md#memory as the table predicts them. */
export function tableFigures(table: BufferTable): TableFigures {
  validateTable(table);
  const baseline = table.persistent.reduce((a, s) => a + s.bytes, 0);
  const byPhase: Record<string, number> = {};
  let stepPeak = baseline;
  let peakPhase = table.phases[0];
  for (const phase of table.phases) {
    const live = baseline + table.step.filter((s) => liveIn(table, s, phase)).reduce((a, s) => a + s.bytes, 0);
    byPhase[phase] = live;
    if (live > stepPeak) {
      stepPeak = live;
      peakPhase = phase;
    }
  }
  const endIndex = table.phases.indexOf(table.forwardEnd);
  const savedForBackward = table.step
    .filter((s) => (s.tag === 'activations-saved' || s.tag === 'routing-metadata') && table.phases.indexOf(s.from) <= endIndex && table.phases.indexOf(s.to) > endIndex)
    .reduce((a, s) => a + s.bytes, 0);
  return { baseline, stepPeak, activationPeak: stepPeak - baseline, savedForBackward, peakPhase, byPhase };
}

/** The persistent buffers of one kernel context (its parameter arena): a stack of layers sharing it holds them once. */
export const CONTEXT_BUFFERS: readonly string[] = ['kernelParams'];

/** The step of a stack of layers (one table each) on one allocator, as the tables predict it. */
export interface StackFigures extends Omit<TableFigures, 'byPhase'> {
  /** What each layer holds from the end of its forward pass until its backward: saved for backward, and its outputs. */
  held: number[];
  /** The layer (0-based) whose phase `peakPhase` is the step's peak. */
  peakLayer: number;
}

function phaseIndex(table: BufferTable, phase: string): number {
  return table.phases.indexOf(phase);
}

/**
 * The figures of docs/design.md#memory for L layers run as a model runs them: forward through
 * layers 1..L, each keeping what its table has live across its forward end (saved for backward,
 * and the outputs its runner holds until released); then backward through L..1, each layer
 * releasing its outputs once its dX has been consumed. So while layer i runs (either pass) the
 * layers before it hold their forward leftovers and the layers after it hold nothing. Every layer
 * has its own persistent buffers except those of the shared kernel context (`shared`), held once.
 * One table gives tableFigures' figures.
 */
export function stackFigures(tables: readonly BufferTable[], shared: readonly string[] = CONTEXT_BUFFERS): StackFigures {
  if (tables.length === 0) throw new Error('stackFigures: no layers');
  const once = new Map<string, number>();
  let baseline = 0;
  for (const table of tables) {
    for (const s of table.persistent) {
      if (shared.includes(s.name)) once.set(s.name, s.bytes);
      else baseline += s.bytes;
    }
  }
  for (const bytes of once.values()) baseline += bytes;
  let below = 0;
  let savedForBackward = 0;
  let stepPeak = baseline;
  let peakLayer = 0;
  let peakPhase = tables[0].phases[0];
  const held: number[] = [];
  for (const [layer, table] of tables.entries()) {
    const f = tableFigures(table);
    for (const phase of table.phases) {
      const live = baseline + below + f.byPhase[phase] - f.baseline;
      if (live > stepPeak) {
        stepPeak = live;
        peakLayer = layer;
        peakPhase = phase;
      }
    }
    const end = phaseIndex(table, table.forwardEnd);
    const kept = table.step.filter((s) => phaseIndex(table, s.from) <= end && end < phaseIndex(table, s.to)).reduce((a, s) => a + s.bytes, 0);
    held.push(kept);
    below += kept;
    savedForBackward += f.savedForBackward;
  }
  return { baseline, stepPeak, activationPeak: stepPeak - baseline, savedForBackward, peakPhase, peakLayer, held };
}
