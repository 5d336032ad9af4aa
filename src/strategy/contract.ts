import type { KernelContext } from '../../kernels/context.js';
import type { StepEncoder } from '../../kernels/program.js';
import { PARAM_ARENA_BYTES } from '../../kernels/program.js';
import type { BufferTable, BufferSpec } from './buffer-table.js';
import { spec } from './buffer-table.js';
import type { LayerConfig } from '../config.js';
import type { BufferTag, GpuAllocator } from '../gpu/allocator.js';
import { floatBytes } from '../f16.js';
import { allocateTensor, chunkLayout, freeTensor, type ChunkLayout, type Tensor } from '../gpu/tensor.js';

/**
 * The contract every dispatch strategy implements (zero-buffer and the baselines alike), so a
 * kernel author can add one without touching any command: register it in src/registry.ts.
 */
/** How charts draw a strategy: a colour and a point shape (the shapes tell strategies apart in greyscale). */
export interface StrategyStyle {
  color: string;
  marker: 'circle' | 'square' | 'triangle' | 'diamond' | 'triangle-down' | 'hexagon';
}

export interface Strategy {
  id: string;
  /** One line for tables and --help. */
  title: string;
  /** Its colour and marker in every chart; without one, charts take a spare colour. */
  style?: StrategyStyle;
  /** Dropless strategies ignore --capacity-factor. */
  dropless: boolean;
  /** Why this config cannot run with the strategy, or null. */
  unsupported(config: LayerConfig): string | null;
  /** Every buffer a step allocates, given the realised (or expected) routing. */
  bufferTable(config: LayerConfig, routing: RoutingSummary, limits: TableLimits): BufferTable;
  create(config: LayerConfig): StrategyRunner;
  /**
   * The work of one train step (forward + backward), kernel by kernel, for this routing: what
   * `profile` divides by each kernel's time (TFLOP/s, GB/s) and what `plan` sums per pass for its
   * traffic estimate. The contract:
   * - one entry per (kernel, phase) in which the runner dispatches that kernel at least once for
   *   this config and routing, summing all those dispatches (slot passes, chunks, row blocks). A
   *   kernel the runner skips here (an empty capacity grid, another row target) has no entry; one
   *   dispatched in two phases (a recompute) has two;
   * - `kernel` is the `KernelSource.name` of the dispatch, exactly: profile times kernels by that
   *   name and its tests require the names timed and the names declared to be the same set;
   * - `flops` counts useful FLOPs only (docs/design.md#useful-flops): 2·kept·… for the expert
   *   GEMMs, 2·T·d·E for each of the router's three GEMMs, 0 for everything else (padding rows,
   *   empty slots, recomputation, sorts, copies, GShard's einsums), so that the entries sum to
   *   usefulFlops(config, routing.keptPairs, 'train');
   * - `bytes` is the compulsory traffic: every operand read once and every output written once,
   *   at its stored size (index lists u32, router state f32, the rest at the dtype), padding rows
   *   included; tile re-reads and caches are ignored, so real kernels move more.
   * The router's and the routing metadata's entries come from src/strategy/work.ts.
   */
  work(config: LayerConfig, routing: RoutingSummary, limits: TableLimits): KernelWork[];
  /**
   * Rows each expert GEMM computes for this routing, padding included: the kept pairs where
   * nothing is padded, MegaBlocks' padded bins, E·C for the capacity strategies. `plan` reports
   * rows / kept pairs − 1 as the strategy's padding.
   */
  expertRows(config: LayerConfig, routing: RoutingSummary): number;
}

/** One kernel's share of a train step (Strategy.work). */
export interface KernelWork {
  kernel: string;
  pass: 'forward' | 'backward';
  /** The step phase (buffer-table phase) the dispatches run in. */
  phase: string;
  /** Useful FLOPs (docs/design.md#useful-flops). */
  flops: number;
  /** Compulsory traffic: operands read once, outputs written once (an estimate, a lower bound). */
  bytes: number;
}

export interface TableLimits {
  /** Largest chunk of one tensor (the storage-binding limit, or smaller when forced). */
  chunkBytes: number;
}

/** What a strategy's routing did, read back after the forward pass (outside any timing). */
export interface RoutingSummary {
  /** Pairs routed to each expert before any drop. */
  expertLoads: number[];
  keptPairs: number;
  droppedPairs: number;
  /** Slots per expert for capacity strategies, else null. */
  capacity: number | null;
}

/** The layer's persistent tensors, owned by MoELayer and shared with the strategy. */
export interface LayerTensors {
  X: Tensor;
  dO: Tensor;
  Wr: Tensor;
  W1: Tensor;
  W3: Tensor | null;
  W2: Tensor;
  dWr: Tensor;
  dW1: Tensor;
  dW3: Tensor | null;
  dW2: Tensor;
}

/** A strategy bound to one layer; it keeps what the forward pass saved for the backward pass. */
export interface StrategyRunner {
  forward(step: StepContext, layer: LayerTensors): Promise<Tensor>;
  backward(step: StepContext, layer: LayerTensors): Promise<Tensor>;
  /** Routing as [T,k] expert ids, gates and kept flags (verify and tests). */
  readRouting(step: StepContext): Promise<{ experts: Uint32Array; gates: Float32Array; kept: Uint8Array }>;
  summary(step: StepContext): Promise<RoutingSummary>;
  /** Frees whatever the runner still holds (outputs of the last step). */
  release(step: StepContext): void;
}

/** What a strategy sees during a step: the encoder, the allocator through phases, the limits. */
export class StepContext {
  constructor(
    readonly kernels: KernelContext,
    readonly enc: StepEncoder,
    readonly config: LayerConfig,
    readonly chunkBytes: number,
  ) {}

  /** Starts a named phase: a mark in the memory timeline and a timed compute pass. */
  phase(name: string): void {
    this.kernels.allocator.mark(name);
    if (!this.enc.passPerKernel) this.enc.beginPass(name);
  }

  layout(rows: number, cols: number, rowGranularity = 1, elementBytes = 4): ChunkLayout {
    return chunkLayout(rows, cols, elementBytes, this.chunkBytes, rowGranularity);
  }

  alloc(name: string, tag: BufferTag, layout: ChunkLayout): Tensor {
    return allocateTensor(this.kernels.allocator, name, tag, layout);
  }

  /** Submits the work recorded so far (which may use the tensors), then frees them. */
  free(...tensors: (Tensor | null | undefined)[]): void {
    this.enc.flush();
    for (const t of tensors) freeTensor(this.kernels.allocator, t ?? undefined);
  }
}

/** The persistent part of every strategy's table: the kernels' param arena and the layer's own tensors. */
export function persistentSpecs(c: LayerConfig, limits: TableLimits): BufferSpec[] {
  return [spec('kernelParams', 'workspace', chunkLayout(1, PARAM_ARENA_BYTES, 1, Infinity), [PARAM_ARENA_BYTES], 'u8', '', ''), ...layerTensorSpecs(c, limits)];
}

/** The tensors of LayerTensors, in the order MoELayer allocates them, each with the layout it is allocated with. */
export function layerTensorSpecs(c: LayerConfig, limits: TableLimits): BufferSpec[] {
  const { tokens: T, hidden: d, ffn: h, experts: E } = c;
  const swiglu = c.activation === 'swiglu';
  const f = floatBytes(c.dtype);
  const whole = (rows: number, cols: number) => chunkLayout(rows, cols, f, Infinity);
  const perExpert = (cols: number) => chunkLayout(E, cols, f, limits.chunkBytes);
  const list: BufferSpec[] = [];
  const add = (name: keyof LayerTensors, tag: BufferTag, layout: ChunkLayout, shape: number[], dtype: BufferSpec['dtype'] = c.dtype) => list.push(spec(name, tag, layout, shape, dtype, '', ''));
  // The router's [d,E] weight and gradient stay f32 at any dtype, like the f32 routers of DeepSpeed
  // and Megatron: they are tiny, and a skewed router's gradient underflows f16.
  const router = chunkLayout(d, E, 4, Infinity);
  add('Wr', 'weights', router, [d, E], 'f32');
  add('W1', 'weights', perExpert(d * h), [E, d, h]);
  if (swiglu) add('W3', 'weights', perExpert(d * h), [E, d, h]);
  add('W2', 'weights', perExpert(h * d), [E, h, d]);
  add('dWr', 'gradients', router, [d, E], 'f32');
  add('dW1', 'gradients', perExpert(d * h), [E, d, h]);
  if (swiglu) add('dW3', 'gradients', perExpert(d * h), [E, d, h]);
  add('dW2', 'gradients', perExpert(h * d), [E, h, d]);
  add('X', 'input', whole(T, d), [T, d]);
  add('dO', 'input', whole(T, d), [T, d]);
  return list;
}

/** Allocates the layer's tensors as `specs` (layerTensorSpecs) declare them; all or none (an allocation refused past --memory-limit frees the others). */
export function allocateLayerTensors(allocator: GpuAllocator, specs: readonly BufferSpec[]): LayerTensors {
  const held = new Map<string, Tensor>();
  try {
    for (const s of specs) held.set(s.name, allocateTensor(allocator, s.name, s.tag, s.layout));
  } catch (error) {
    for (const tensor of held.values()) freeTensor(allocator, tensor);
    throw error;
  }
  const required = (name: keyof LayerTensors): Tensor => {
    const tensor = held.get(name);
    if (!tensor) throw new Error(`layerTensorSpecs declares no ${name}`);
    return tensor;
  };
  return {
    Wr: required('Wr'),
    W1: required('W1'),
    W3: held.get('W3') ?? null,
    W2: required('W2'),
    dWr: required('dWr'),
    dW1: required('dW1'),
    dW3: held.get('dW3') ?? null,
    dW2: required('dW2'),
    X: required('X'),
    dO: required('dO'),
  };
}
