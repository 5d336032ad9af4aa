import { execFile } from 'node:child_process';
import si from 'systeminformation';
import { tableFigures, type BufferSpec, type BufferTable } from '../strategy/buffer-table.js';
import { allocationBytes, chunkBaseName, type GpuAllocator, type TrackedBuffer } from '../gpu/allocator.js';
import { chunkBytes, chunkLayout, storageUsage } from '../gpu/tensor.js';

/**
 * The driver's view of GPU memory (docs/design.md#driver-cross-check): nvidia-smi's used memory per GPU, to cross-check
 * the allocator. nvidia-smi counts whole MiB, the whole device (every process, the driver's own
 * context), and settles lazily after frees, so only deltas of settled readings mean anything.
 */

export const MIB = 2 ** 20;
export const NO_DRIVER_REASON = 'no NVIDIA driver reports memory on this machine';

export interface DriverGpu {
  index: number;
  name: string;
  bus: string | null;
  usedMiB: number;
  totalMiB: number | null;
}

export type DriverSource = 'systeminformation' | 'nvidia-smi';

export interface DriverSnapshot {
  source: DriverSource;
  gpus: DriverGpu[];
  /** Readings taken before two in a row agreed (or the poll limit ran out). */
  polls: number;
  stable: boolean;
}

export type DriverRead = { snapshot: DriverSnapshot; reason: null } | { snapshot: null; reason: string };

export interface DriverReaderOptions {
  /** Most readings per poll; it stops early once two consecutive readings agree. */
  polls?: number;
  intervalMs?: number;
  /** Bound on one probe: nvidia-smi can hang on a wedged GPU. */
  timeoutMs?: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function bounded<T>(probe: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} gave no answer within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([probe, timeout]).finally(() => clearTimeout(timer));
}

async function fromSysteminformation(timeoutMs: number): Promise<DriverGpu[]> {
  const graphics = await bounded(si.graphics(), timeoutMs, 'systeminformation');
  return graphics.controllers
    .filter((c) => /nvidia/i.test(`${c.vendor} ${c.name ?? ''} ${c.model}`) && typeof c.memoryUsed === 'number' && Number.isFinite(c.memoryUsed))
    .map((c, index) => ({ index, name: c.name || c.model, bus: c.pciBus || c.busAddress || null, usedMiB: c.memoryUsed!, totalMiB: c.memoryTotal ?? null }));
}

/**
 * systeminformation reaches nvidia-smi on Linux only after `lspci` succeeds; containers often
 * lack pciutils (the H200 test machine does), and then it reports no NVIDIA memory at all.
 * Asking nvidia-smi the same question directly keeps the check working there.
 */
function fromNvidiaSmi(timeoutMs: number): Promise<DriverGpu[]> {
  const args = ['--query-gpu=index,name,pci.bus_id,memory.used,memory.total', '--format=csv,noheader,nounits'];
  return new Promise((resolve, reject) => {
    execFile('nvidia-smi', args, { timeout: timeoutMs }, (error, stdout) => {
      if (error) return reject(error);
      const gpus = String(stdout)
        .split('\n')
        .map((line) => line.split(',').map((f) => f.trim()))
        .filter((f) => f.length >= 5 && Number.isFinite(Number(f[3])))
        .map((f) => ({ index: Number(f[0]), name: f[1], bus: f[2] || null, usedMiB: Number(f[3]), totalMiB: Number.isFinite(Number(f[4])) ? Number(f[4]) : null }));
      resolve(gpus);
    });
  });
}

function sameFigures(a: DriverGpu[], b: DriverGpu[]): boolean {
  return a.length === b.length && a.every((g, i) => g.usedMiB === b[i].usedMiB);
}

/** Reads the driver's used memory; the source that answered first is kept for later polls. */
export class DriverMemoryReader {
  private source: DriverSource | null = null;
  private readonly polls: number;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;

  constructor(options: DriverReaderOptions = {}) {
    this.polls = Math.max(2, options.polls ?? 5);
    this.intervalMs = options.intervalMs ?? 200;
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  async readOnce(): Promise<{ source: DriverSource; gpus: DriverGpu[] } | { source: null; reason: string }> {
    const tried: string[] = [];
    for (const source of this.source ? [this.source] : (['systeminformation', 'nvidia-smi'] as const)) {
      try {
        const gpus = source === 'systeminformation' ? await fromSysteminformation(this.timeoutMs) : await fromNvidiaSmi(this.timeoutMs);
        if (gpus.length > 0) {
          this.source = source;
          return { source, gpus };
        }
        tried.push(`${source}: no NVIDIA GPU with a used-memory figure`);
      } catch (error) {
        tried.push(`${source}: ${(error as Error).message ?? error}`);
      }
    }
    return { source: null, reason: `${NO_DRIVER_REASON} (${tried.join('; ')})` };
  }

  /** Polls until two consecutive readings agree (MiB rounding, lazy release), at most `polls` readings. */
  async poll(): Promise<DriverRead> {
    let last: DriverGpu[] | null = null;
    for (let n = 1; n <= this.polls; n++) {
      const reading = await this.readOnce();
      if (reading.source === null) return { snapshot: null, reason: reading.reason };
      const stable = last !== null && sameFigures(last, reading.gpus);
      if (stable || n === this.polls) return { snapshot: { source: reading.source, gpus: reading.gpus, polls: n, stable }, reason: null };
      last = reading.gpus;
      await sleep(this.intervalMs);
    }
    throw new Error('unreachable');
  }
}

/** One settled reading with a fresh reader (lavapipe: null with NO_DRIVER_REASON). */
export function readDriverMemory(options?: DriverReaderOptions): Promise<DriverRead> {
  return new DriverMemoryReader(options).poll();
}

const norm = (s: string) => s.toLowerCase().replace(/nvidia|corporation/g, '').replace(/[^a-z0-9]/g, '');

export interface DriverDelta {
  bytes: number;
  gpu: DriverGpu;
  note: string | null;
}

/**
 * The change in used memory of the GPU the adapter is. WebGPU names the adapter but gives no PCI
 * address, so GPUs are matched by name (Dawn on Vulkan: device "nvidia-h200", while its
 * description is the driver version); among several of one name (an 8-GPU node) the one whose
 * figure moved most is the one that held the buffers.
 */
export function driverDelta(before: DriverSnapshot, after: DriverSnapshot, adapter: { device: string; description: string }): DriverDelta {
  const wanted = [adapter.device, adapter.description].map(norm).filter((w) => w !== '');
  const named = after.gpus.filter((g) => wanted.some((w) => norm(g.name) !== '' && (norm(g.name).includes(w) || w.includes(norm(g.name)))));
  const candidates = named.length > 0 ? named : after.gpus;
  const change = (g: DriverGpu) => g.usedMiB - (before.gpus.find((b) => b.index === g.index && b.bus === g.bus)?.usedMiB ?? g.usedMiB);
  const gpu = candidates.reduce((best, g) => (Math.abs(change(g)) > Math.abs(change(best)) ? g : best));
  let note: string | null = null;
  const label = adapter.device || adapter.description;
  if (named.length === 0) note = `no NVIDIA GPU is named like the adapter "${label}"; took ${gpu.name} (index ${gpu.index}), whose used memory changed most`;
  else if (named.length > 1) note = `${named.length} GPUs are named like the adapter; took index ${gpu.index} (${gpu.bus ?? 'bus unknown'}), whose used memory changed most`;
  return { bytes: change(gpu) * MIB, gpu, note };
}

/** Signed (driver − allocator) / allocator; null when the allocator figure is zero. */
export function relativeDifference(allocatorBytes: number, driverBytes: number): number | null {
  return allocatorBytes > 0 ? (driverBytes - allocatorBytes) / allocatorBytes : null;
}

/** Step buffers live during the table's peak phase (what the step holds at its peak, persistent aside). */
export function peakStepSpecs(table: BufferTable): { phase: string; specs: BufferSpec[]; bytes: number } {
  const phase = tableFigures(table).peakPhase;
  const at = table.phases.indexOf(phase);
  const specs = table.step.filter((s) => table.phases.indexOf(s.from) <= at && at <= table.phases.indexOf(s.to));
  return { phase, specs, bytes: specs.reduce((a, s) => a + s.bytes, 0) };
}

export type ChunkSource = 'step' | 'layout' | 'equal-split';

/** Chunk sizes of the latest allocation of every tensor in the allocator's record, by name and tag. */
export function recordedChunks(allocator: Pick<GpuAllocator, 'timeline'>): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const e of allocator.timeline) {
    if (e.kind !== 'alloc') continue;
    const key = `${chunkBaseName(e.name)}|${e.tag}`;
    const index = Number(/\[(\d+)\]$/.exec(e.name)?.[1] ?? 0);
    // allocateTensor creates chunks 0, 1, … in order: chunk 0 starts a new allocation of the tensor.
    if (index === 0 || !out.has(key)) out.set(key, []);
    out.get(key)![index] = e.bytes;
  }
  return out;
}

/**
 * Per-chunk bytes of a spec. The table keeps only the total and the count, so the sizes come from
 * the step that just ran (the allocator's record), else from the layout rebuilt from the shape
 * (rows = leading dims, cols = the rest), each accepted when it reproduces both figures; else the
 * total is split into equal 4-byte-word parts, larger ones first like a real layout's, keeping the
 * sum exact. Strategies that share row chunking between tensors of different widths need the first.
 */
export function specChunkBytes(s: BufferSpec, maxChunkBytes: number, recorded?: Map<string, number[]>): { sizes: number[]; source: ChunkSource } {
  const fits = (sizes: number[] | undefined): sizes is number[] => !!sizes && sizes.length === s.chunks && sizes.every((b) => b > 0) && sizes.reduce((a, b) => a + b, 0) === s.bytes;
  const seen = recorded?.get(`${s.name}|${s.tag}`);
  if (fits(seen)) return { sizes: [...seen], source: 'step' };
  if (s.chunks === 1) return { sizes: [s.bytes], source: 'layout' };
  const elementBytes = s.dtype === 'f32' || s.dtype === 'u32' ? 4 : s.dtype === 'f16' ? 2 : 1;
  const prod = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
  for (let split = 1; split <= s.shape.length; split++) {
    for (const granularity of new Set([1, ...s.shape])) {
      const sizes = chunkBytes(chunkLayout(prod(s.shape.slice(0, split)), prod(s.shape.slice(split)), elementBytes, maxChunkBytes, granularity));
      if (fits(sizes)) return { sizes, source: 'layout' };
    }
  }
  const words = s.bytes / 4;
  const base = Math.floor(words / s.chunks);
  return { sizes: Array.from({ length: s.chunks }, (_, c) => allocationBytes(4 * (base + (c < words % s.chunks ? 1 : 0)))), source: 'equal-split' };
}

export interface PeakHold {
  phase: string;
  buffers: TrackedBuffer[];
  /** Live bytes the allocator gained, as it counts them. */
  allocatorBytes: number;
  tableBytes: number;
  /** Specs whose chunk sizes are an equal split of their total (neither the step's record nor the shape gave them). */
  equalSplit: string[];
  /** How many specs took their chunk sizes from each source. */
  chunkSources: Record<ChunkSource, number>;
  release(): void;
}

/**
 * Allocates through the layer's allocator exactly the step buffers the table says are live at the
 * peak (same names, tags, chunk sizes; run the step first so that its record gives the sizes), and touches every byte so that the driver backs them: a
 * created but unused buffer may have no memory behind it yet.
 */
export async function holdPeakBuffers(allocator: GpuAllocator, table: BufferTable, maxChunkBytes: number): Promise<PeakHold> {
  const { phase, specs, bytes } = peakStepSpecs(table);
  const device = allocator.device;
  const before = allocator.live;
  const buffers: TrackedBuffer[] = [];
  const equalSplit: string[] = [];
  const chunkSources: Record<ChunkSource, number> = { step: 0, layout: 0, 'equal-split': 0 };
  const recorded = recordedChunks(allocator);
  const release = () => buffers.forEach((b) => allocator.free(b));
  try {
    for (const s of specs) {
      const { sizes, source } = specChunkBytes(s, maxChunkBytes, recorded);
      chunkSources[source]++;
      if (source === 'equal-split') equalSplit.push(s.name);
      sizes.forEach((size, c) => buffers.push(allocator.create(sizes.length === 1 ? s.name : `${s.name}[${c}]`, s.tag, size, storageUsage())));
    }
    await allocator.settle();
    const encoder = device.createCommandEncoder();
    for (const b of buffers) {
      device.queue.writeBuffer(b.buffer, 0, new Uint32Array([1]));
      encoder.clearBuffer(b.buffer);
    }
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
  } catch (error) {
    release();
    throw error;
  }
  return { phase, buffers, allocatorBytes: allocator.live - before, tableBytes: bytes, equalSplit, chunkSources, release };
}

/** Dawn frees destroyed buffers on a later tick, once their work is done; submitting and waiting twice gets it there. */
export async function drain(device: GPUDevice): Promise<void> {
  for (let i = 0; i < 2; i++) {
    device.queue.submit([]);
    await device.queue.onSubmittedWorkDone();
  }
}
