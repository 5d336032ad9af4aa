import { withGpuErrors } from '../src/gpu/runtime.js';
import type { AllocatorActivity, GpuAllocator, TrackedBuffer } from '../src/gpu/allocator.js';
import type { DType } from '../src/config.js';
import type { GapCause, PassTiming } from '../src/gpu/timer.js';
import type { GemmRepeater } from '../src/gpu/planted-slowdown.js';

/**
 * One storage binding of a kernel: its WGSL name (the key a dispatch binds a buffer under), its
 * element type ('dt': a float tensor stored at the module's dtype, see storageHeader) and whether
 * the kernel writes it.
 */
export interface KernelBinding {
  name: string;
  type: string;
  access: 'read' | 'read_write';
  /**
   * A second, differently typed binding of another binding's buffer (the GEMM core's 16-byte
   * views of f16 operands): the dispatch binds the buffer named here, and does not name this one.
   */
  view?: string;
}

/**
 * A compute kernel: WGSL generated from typed parameters, with a uniform block of u32/f32 fields
 * bound at @group(0) @binding(0) and its storage buffers at bindings 1.. in `bindings` order.
 * `bindings` is the one place a kernel's buffer names are written: bindingPrelude declares them
 * in the WGSL and StepEncoder.dispatch binds buffers by them.
 */
export interface KernelSource {
  /** Stable, human-readable name: reports and GPU errors use it. */
  name: string;
  code: string;
  /** Storage bindings in binding order; 'read' ones are read-only in WGSL. */
  bindings: readonly KernelBinding[];
  /** Uniform fields in declaration order (all 4 bytes). */
  params: readonly { name: string; type: 'u32' | 'f32' | 'i32' }[];
}

export const PARAM_SLOT_BYTES = 256;
/** Dispatches between two flushes of one step encoder; the arena holds one param block each. */
export const PARAM_SLOTS = 512;
export const PARAM_ARENA_BYTES = PARAM_SLOT_BYTES * PARAM_SLOTS;
export const MAX_WORKGROUPS_PER_DIM = 65535;
/** Full param arenas submitted before the encoder waits for the GPU to catch up. */
const FLUSHES_IN_FLIGHT = 4;

/**
 * WGSL that opens a kernel module whose float tensors are stored as `dtype`: kernels declare
 * those bindings with the element type `dt` and convert at the boundary (`f32(x[i])` on load,
 * `dt(v)` on store), so that every sum runs in f32 whatever the storage (docs/design.md#the-layer).
 */
function storageHeader(dtype: DType): string {
  return `${dtype === 'f16' ? 'enable f16;\n' : ''}alias dt = ${dtype};`;
}

/** A kernel (or set of kernels) built once per storage dtype. */
export function perDtype<T>(build: (dtype: DType) => T): (dtype: DType) => T {
  const built = new Map<DType, T>();
  return (dtype) => {
    if (!built.has(dtype)) built.set(dtype, build(dtype));
    return built.get(dtype)!;
  };
}

/** WGSL declarations of a kernel's uniform struct and its storage bindings (storage header first when given a dtype). */
export function bindingPrelude(source: Pick<KernelSource, 'bindings' | 'params'>, dtype?: DType): string {
  const fields = source.params.map((p) => `  ${p.name}: ${p.type},`).join('\n');
  const lines = [`struct Params {\n${fields || '  unused: u32,'}\n}`, '@group(0) @binding(0) var<uniform> P: Params;'];
  if (dtype) lines.unshift(storageHeader(dtype));
  source.bindings.forEach((b, i) => {
    lines.push(`@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${b.name}: array<${b.type}>;`);
  });
  return lines.join('\n');
}

/** Splits a workgroup count into a 2-D grid that respects the per-dimension limit. */
export function grid(count: number): [number, number] {
  if (count <= MAX_WORKGROUPS_PER_DIM) return [Math.max(count, 1), 1];
  const y = Math.ceil(count / MAX_WORKGROUPS_PER_DIM);
  return [Math.ceil(count / y), y];
}

/** WGSL expression for the linear workgroup index of a grid() dispatch. */
export const LINEAR_WORKGROUP = 'wg.x + wg.y * nwg.x';

/** Compiles each distinct kernel once per device. */
export class PipelineCache {
  private readonly pipelines = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }>();

  constructor(readonly device: GPUDevice) {}

  async get(source: KernelSource): Promise<{ pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }> {
    const cached = this.pipelines.get(source.code);
    if (cached) return cached;
    const entries: GPUBindGroupLayoutEntry[] = [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } }];
    source.bindings.forEach((b, i) =>
      entries.push({ binding: i + 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: b.access === 'read' ? 'read-only-storage' : 'storage' } }),
    );
    const built = await withGpuErrors(this.device, source.name, async () => {
      const module = this.device.createShaderModule({ label: source.name, code: source.code });
      const info = await module.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === 'error');
      if (errors.length) throw new Error(`WGSL of kernel "${source.name}" does not compile: ${errors.map((e) => `${e.lineNum}:${e.linePos} ${e.message}`).join('; ')}`);
      const layout = this.device.createBindGroupLayout({ label: source.name, entries });
      const pipeline = await this.device.createComputePipelineAsync({
        label: source.name,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: 'main' },
      });
      return { pipeline, layout };
    });
    this.pipelines.set(source.code, built);
    return built;
  }
}

/** A buffer a dispatch can bind: a raw GPUBuffer or one of the allocator's. */
export type BindableBuffer = GPUBuffer | TrackedBuffer;

/**
 * The buffers of one dispatch, keyed by the kernel's binding names (KernelSource.bindings), in
 * any order: `{ X: x, W1: w1, O: out }`. The record must name exactly the bindings the kernel
 * declares. An entry whose value is undefined counts as absent, and a binding that only some
 * builds of a kernel declare (SwiGLU's W3, a kept u) is an optional entry:
 * `...(swiglu && { W3: layer.W3!.chunks[wc] })`. A wrapper that gives its buffers a record type
 * of its own declares it with `type`, not `interface`: only a type alias is assignable here.
 */
export type DispatchBuffers = Readonly<Record<string, BindableBuffer | undefined>>;

export interface Dispatch {
  source: KernelSource;
  params: Record<string, number>;
  buffers: DispatchBuffers;
  /**
   * The grid, or a function of the source the encoder really builds (another GEMM engine may
   * tile differently: kernels/gemm/core.ts gemmGrid).
   */
  workgroups: number | [number, number] | [number, number, number] | ((built: KernelSource) => [number, number, number]);
}

/**
 * The dispatch's buffers in binding order. A missing or undeclared name throws, naming the
 * kernel, the offending names and the declared ones.
 */
function orderedBuffers(source: KernelSource, buffers: DispatchBuffers, viewFallback: () => GPUBuffer): GPUBuffer[] {
  const declared = source.bindings.filter((b) => !b.view).map((b) => b.name);
  const missing = declared.filter((name) => buffers[name] === undefined);
  const unknown = Object.keys(buffers).filter((name) => buffers[name] !== undefined && !declared.includes(name));
  if (missing.length || unknown.length) {
    const problems = [missing.length && `missing ${missing.join(', ')}`, unknown.length && `not declared: ${unknown.join(', ')}`].filter(Boolean);
    throw new Error(`kernel "${source.name}": buffers ${problems.join('; ')} (it declares ${declared.join(', ') || 'no storage bindings'})`);
  }
  return source.bindings.map((binding) => {
    const b = buffers[binding.view ?? binding.name]!;
    const buffer = 'buffer' in b ? b.buffer : b;
    // A view's element is 16 bytes: a smaller buffer cannot be bound as one. Kernels read a view
    // only where rows are multiples of 8 halves (kernels/gemm/spec.ts), which such a buffer has not.
    return binding.view && buffer.size < VIEW_BYTES ? viewFallback() : buffer;
  });
}

/** The element size of the widest view binding (vec4<u32>). */
const VIEW_BYTES = 16;
/** One never-read 16-byte buffer per device, bound in place of buffers too small for a view. */
const viewFallbacks = new WeakMap<GPUDevice, GPUBuffer>();
function viewFallbackOf(device: GPUDevice): GPUBuffer {
  let b = viewFallbacks.get(device);
  if (!b) viewFallbacks.set(device, (b = device.createBuffer({ label: 'view-fallback', size: VIEW_BYTES, usage: GPUBufferUsage.STORAGE })));
  return b;
}

export interface KernelSourcePolicy {
  resolve(source: KernelSource): KernelSource;
  /** A source to build instead when `source` fails to build, or null to fail. */
  fallback(source: KernelSource, error: Error): KernelSource | null;
}


/**
 * Records the dispatches of one step. Dispatches go into the current compute pass; a pass is a
 * phase (forward, backward, or one kernel when profiling) and carries timestamp writes when the
 * device has them. Param blocks live in a persistent arena; when it fills, the encoder flushes.
 */
export class StepEncoder {
  private encoder: GPUCommandEncoder;
  private pass: GPUComputePassEncoder | null = null;
  private slot = 0;
  private readonly paramBytes = new ArrayBuffer(PARAM_ARENA_BYTES);
  private pendingParams = false;
  readonly passes: PassTiming[] = [];
  private nextLabel: string | null = null;
  private flushes = 0;
  private submits = 0;
  /** The allocator's counts and the submits when the last pass ended: what happened in the gap since. */
  private atPassEnd: { activity: AllocatorActivity; submits: number } | null = null;

  constructor(
    readonly device: GPUDevice,
    readonly cache: PipelineCache,
    readonly paramArena: GPUBuffer,
    readonly timestamps: { querySet: GPUQuerySet; capacity: number } | null = null,
    /** Profiling: every dispatch in a pass of its own, so each kernel gets its own timestamps. */
    readonly passPerKernel = false,
    /** Which build of a kernel runs (the GEMM engine), and its replacement if that build fails. */
    readonly sources: KernelSourcePolicy | null = null,
    /**
     * The allocator's host pause (GpuAllocator.pauseWhenLive): dispatches are the step's await
     * points; and its activity, which names what the host did in each gap between passes.
     */
    private readonly pause: { readonly pauseDue: boolean; pausePoint(): Promise<void>; readonly activity?: AllocatorActivity } | null = null,
    /** The planted-slowdown test hook (src/gpu/planted-slowdown.ts); null unless asked for. */
    private readonly repeater: GemmRepeater | null = null,
  ) {
    this.encoder = device.createCommandEncoder();
  }

  /**
   * Names the pass that the next dispatch opens. Passes open lazily so none is empty: an empty
   * pass's timestamps are not ordered with the others'.
   */
  beginPass(label: string): void {
    this.endPass();
    this.nextLabel = label;
  }

  private openPass(label: string): void {
    this.endPass();
    const index = this.passes.length;
    const ts = this.timestamps && index < this.timestamps.capacity / 2 ? this.timestamps : null;
    this.pass = this.encoder.beginComputePass({
      label,
      timestampWrites: ts ? { querySet: ts.querySet, beginningOfPassWriteIndex: 2 * index, endOfPassWriteIndex: 2 * index + 1 } : undefined,
    });
    this.passes.push({ label, kernels: [], ...(index > 0 && { gapBefore: this.gapCause() }) });
  }

  /** What the host did since the last pass ended (docs/design.md#time): the most blocking thing first. */
  private gapCause(): GapCause {
    const now = this.pause?.activity;
    const then = this.atPassEnd;
    if (now && then?.activity && now.readbacks > then.activity.readbacks) return 'readback';
    if (now && then?.activity && now.created > then.activity.created) return 'allocation';
    return then && this.submits > then.submits ? 'submission' : 'pass-boundary';
  }

  endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.atPassEnd = { activity: this.pause?.activity ?? { created: 0, readbacks: 0, releasedForLimit: 0 }, submits: this.submits };
    }
    this.pass = null;
  }

  private async pipelineFor(source: KernelSource): Promise<{ source: KernelSource; pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }> {
    const chosen = this.sources ? this.sources.resolve(source) : source;
    try {
      return { source: chosen, ...(await this.cache.get(chosen)) };
    } catch (error) {
      const fallback = this.sources?.fallback(chosen, error as Error);
      if (!fallback) throw error;
      return { source: fallback, ...(await this.cache.get(fallback)) };
    }
  }

  /**
   * Records one dispatch. `d.buffers` binds a buffer to each of the kernel's storage bindings by
   * name (see DispatchBuffers); a record that misses or adds a name throws here, before anything
   * of the dispatch is recorded or submitted.
   */
  async dispatch(d: Dispatch): Promise<void> {
    orderedBuffers(d.source, d.buffers, () => viewFallbackOf(this.device));
    if (this.pause?.pauseDue) await this.pause.pausePoint();
    const { source, pipeline, layout } = await this.pipelineFor(d.source);
    // The built source (another GEMM engine) may add view bindings: bind in its order.
    const buffers = orderedBuffers(source, d.buffers, () => viewFallbackOf(this.device));
    if (this.slot === PARAM_SLOTS) {
      this.flush();
      // Bound the work in flight: tens of thousands of queued dispatches (tiny forced chunks)
      // crash software Vulkan. Real steps stay far below this and never wait here.
      if (++this.flushes % FLUSHES_IN_FLIGHT === 0) await this.device.queue.onSubmittedWorkDone();
    }
    if (!this.pass || this.passPerKernel) this.openPass(this.passPerKernel ? d.source.name : (this.nextLabel ?? d.source.name));
    const offset = this.slot * PARAM_SLOT_BYTES;
    const u32 = new Uint32Array(this.paramBytes, offset, PARAM_SLOT_BYTES / 4);
    const f32 = new Float32Array(this.paramBytes, offset, PARAM_SLOT_BYTES / 4);
    const i32 = new Int32Array(this.paramBytes, offset, PARAM_SLOT_BYTES / 4);
    d.source.params.forEach((p, i) => {
      const value = d.params[p.name];
      if (value === undefined || !Number.isFinite(value)) throw new Error(`kernel "${d.source.name}": parameter ${p.name} is ${value}`);
      if (p.type === 'f32') f32[i] = value;
      else if (p.type === 'i32') i32[i] = value;
      else u32[i] = value;
    });
    this.pendingParams = true;
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.paramArena, offset, size: PARAM_SLOT_BYTES } }];
    buffers.forEach((buffer, i) => entries.push({ binding: i + 1, resource: { buffer } }));
    const group = this.device.createBindGroup({ label: d.source.name, layout, entries });
    this.slot++;
    const grid = typeof d.workgroups === 'function' ? d.workgroups(source) : d.workgroups;
    const [x, y, z] = typeof grid === 'number' ? [grid, 1, 1] : [grid[0], grid[1], grid[2] ?? 1];
    if (x === 0 || y === 0 || z === 0) return;
    this.pass!.setPipeline(pipeline);
    this.pass!.setBindGroup(0, group);
    this.pass!.dispatchWorkgroups(x, y, z);
    this.passes[this.passes.length - 1].kernels.push(d.source.name);
    const repeats = this.repeater && 'gemm' in d.source ? this.repeater.repeats() : 0;
    if (repeats > 0) {
      const stand = buffers.map((b, i) => ({ binding: i + 1, resource: { buffer: this.repeater!.stand(b, i, d.source.bindings[i].access === 'read_write') } }));
      this.pass!.setBindGroup(0, this.device.createBindGroup({ label: `${d.source.name} (planted repeat)`, layout, entries: [entries[0], ...stand] }));
      for (let r = 0; r < repeats; r++) this.pass!.dispatchWorkgroups(x, y, z);
    }
  }

  /** Clears buffers to zero; must happen outside a compute pass. */
  clear(buffer: GPUBuffer | TrackedBuffer): void {
    this.endPass();
    this.encoder.clearBuffer('buffer' in buffer ? buffer.buffer : buffer);
  }

  /** Submits everything recorded so far and starts a fresh encoder (params arena reusable). */
  flush(): void {
    this.endPass();
    if (this.pendingParams) this.device.queue.writeBuffer(this.paramArena, 0, this.paramBytes, 0, this.slot * PARAM_SLOT_BYTES);
    this.device.queue.submit([this.encoder.finish()]);
    this.submits++;
    this.encoder = this.device.createCommandEncoder();
    this.slot = 0;
    this.pendingParams = false;
  }

  get commandEncoder(): GPUCommandEncoder {
    return this.encoder;
  }
}

/** The persistent uniform arena a layer's step encoders share. */
export function allocateParamArena(allocator: GpuAllocator): TrackedBuffer {
  return allocator.create('kernelParams', 'workspace', PARAM_ARENA_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, { bound: false });
}
