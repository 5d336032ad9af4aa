import { KernelContext } from '../kernels/context.js';
import { DEFAULT_LAYER, currentNames, layerConfig, validateLayerConfig, type DeprecatedNames, type DType, type LayerConfig } from './config.js';
import { roundToHalf } from './f16.js';
import { EnvironmentError, UsageError } from './errors.js';
import { GpuAllocator } from './gpu/allocator.js';
import { readTensor } from './gpu/readback.js';
import type { GpuContext } from './gpu/runtime.js';
import { gemmEngineFor, matrixFragment } from '../kernels/gemm/engine-choice.js';
import { chunkRowRange, freeTensor, uploadTensor, type Tensor } from './gpu/tensor.js';
import { encodeFillHashed } from '../kernels/init.js';
import { FILL_TENSORS, fillScale, fillStds, type FilledTensor } from './fill.js';
import { FORWARD_END_MARK, MemoryProfiler, type StepMemory } from './gpu/memory-profiler.js';
import type { GpuTimer, StepTiming } from './gpu/timer.js';
import { generateInputs, type LayerInputs } from './rng.js';
import { findStrategy, REFERENCE_STRATEGY } from './registry.js';
import { nearest } from './suggest.js';
import { allocateLayerTensors, layerTensorSpecs, StepContext, type LayerTensors, type RoutingSummary, type Strategy, type StrategyRunner } from './strategy/contract.js';
import { requireBindingFits } from './layer-limits.js';

/** How a layer runs, apart from its math (LayerConfig): the strategy and the memory it may use. */
export interface LayerRuntime {
  /** The dispatch strategy (`--impl`) [default: zero-buffer]. */
  impl?: string;
  /** Refuse allocations beyond this many live bytes, and keep reserved bytes under it (OOM as a result). */
  memoryLimit?: number;
  /** Largest chunk of a tensor; defaults to the adapter's storage-binding limit (tests force it smaller). */
  chunkBytes?: number;
  /**
   * Another layer's kernel context, and so its allocator, to share: a stack of layers in one
   * memory record (src/train). The layer that created the context destroys it.
   */
  kernels?: KernelContext;
}

/** Every option MoELayer.create takes: the layer's fields, the runtime's, and the deprecated 0.1 names. */
const OPTION_NAMES = [...Object.keys(DEFAULT_LAYER), 'impl', 'memoryLimit', 'chunkBytes', 'kernels', 'numExperts', 'dispatch', 'auxLossCoef'];

/** A misspelled option is an error naming the nearest one (issue 25), not a default silently used. */
function checkOptionNames(options: Record<string, unknown>): void {
  const unknown = Object.keys(options).filter((k) => !OPTION_NAMES.includes(k));
  if (!unknown.length) return;
  const parts = unknown.map((k) => {
    const guess = nearest(k, OPTION_NAMES);
    return `\`${k}\`${guess ? ` (did you mean \`${guess}\`?)` : ''}`;
  });
  throw new UsageError(`MoELayer.create: unknown option ${parts.join(', ')}; the options are ${OPTION_NAMES.filter((n) => !['numExperts', 'dispatch', 'auxLossCoef'].includes(n)).join(', ')}`);
}

/** "--top-k: 3 is larger than --experts 2" → "topK: 3 is larger than experts 2": the option names a library caller typed. */
export function apiWording(message: string): string {
  return message.replace(/--([a-z][\w-]*)/g, (_, flag: string) => (flag === 'impl' ? 'impl' : flag.replace(/-([a-z])/g, (__, c: string) => c.toUpperCase())));
}

/** What MoELayer.create requires; every other field of the layer has a default (DEFAULT_LAYER). */
const REQUIRED_FIELDS = ['tokens', 'hidden', 'ffn', 'experts', 'topK'] as const;

/**
 * MoELayer.create's options: the layer's fields, named as the CLI's flags are (camelCase,
 * docs/design.md#symbols), and the runtime ones; the 0.1 names numExperts, dispatch and
 * auxLossCoef are still accepted (config.ts, DeprecatedNames).
 */
export type MoELayerOptions = Partial<LayerConfig> & LayerRuntime & Pick<DeprecatedNames, 'numExperts' | 'dispatch' | 'auxLossCoef'>;

/** Half-precision storage needs the adapter's shader-f16 (exit 4 naming the adapter otherwise). */
export function requireDtype(gpu: Pick<GpuContext, 'hasF16' | 'adapter'>, dtype: DType): void {
  if (dtype === 'f16' && !gpu.hasF16) throw new EnvironmentError(`--dtype f16 needs the shader-f16 feature, which ${gpu.adapter.description} lacks; use --dtype f32`);
}

/**
 * The documented seeded inputs (src/rng.ts) as a layer of this config stores them: at f16 each
 * value rounded to the nearest half (Wr stays f32). The reference must start from these.
 */
export function seededInputs(config: LayerConfig): LayerInputs {
  const inputs = generateInputs(config);
  if (config.dtype === 'f32') return inputs;
  const r = (a: Float32Array | null) => (a ? roundToHalf(a) : null);
  return { ...inputs, X: roundToHalf(inputs.X), dO: roundToHalf(inputs.dO), W1: roundToHalf(inputs.W1), W2: roundToHalf(inputs.W2), W3: r(inputs.W3) };
}

export interface StepTimingOptions {
  timer?: Pick<GpuTimer, 'writes' | 'read'>;
  /** One timed pass per kernel (profile) instead of one per phase. */
  perKernel?: boolean;
}

export interface LayerGradients {
  dX: Float32Array;
  dWr: Float32Array;
  dW1: Float32Array;
  dW2: Float32Array;
  dW3: Float32Array | null;
}

/**
 * One MoE layer on the GPU with a chosen dispatch strategy: weights, inputs and gradients live
 * here; the strategy does the routing, the experts and whatever it saves between passes.
 */
export class MoELayer {
  readonly allocator: GpuAllocator;
  readonly kernels: KernelContext;
  readonly strategy: Strategy;
  readonly chunkBytes: number;
  private readonly tensors: LayerTensors;
  private runner: StrategyRunner;
  private output: Tensor | null = null;
  private inputGrad: Tensor | null = null;
  private lastStep: StepMemory | null = null;
  private readonly ownsKernels: boolean;
  private filledWith: number | null = null;

  private constructor(
    readonly gpu: GpuContext,
    readonly config: LayerConfig,
    runtime: LayerRuntime,
  ) {
    this.strategy = findStrategy(runtime.impl ?? REFERENCE_STRATEGY);
    const reason = this.strategy.unsupported(config);
    if (reason) throw new UsageError(`${this.strategy.id} cannot run this config: ${reason}`);
    requireDtype(gpu, config.dtype);
    this.chunkBytes = Math.min(runtime.chunkBytes ?? gpu.maxBindingBytes, gpu.maxBindingBytes);
    // Every refusal before the first buffer exists: a throw after it would leave the buffer behind.
    requireBindingFits(config, gpu.maxBindingBytes, this.chunkBytes);
    const gemmEngine = gemmEngineFor(gpu, config.dtype);
    this.ownsKernels = !runtime.kernels;
    this.kernels = runtime.kernels ?? new KernelContext(new GpuAllocator(gpu.device, { maxBufferBytes: gpu.maxBufferBytes, maxBindingBytes: gpu.maxBindingBytes, memoryLimit: runtime.memoryLimit }, gpu.allocatorPolicy), gemmEngine, { tuning: gpu.tuning, fragment: matrixFragment(gpu) });
    this.allocator = this.kernels.allocator;
    // The persistent part of every strategy's buffer table, allocated as the table declares it.
    this.tensors = allocateLayerTensors(this.allocator, layerTensorSpecs(config, { chunkBytes: this.chunkBytes }));
    this.runner = this.strategy.create(config);
  }

  /**
   * The library's form: one object of layer fields (tokens, hidden, ffn, experts and topK required,
   * the others defaulted) and runtime options, the deprecated 0.1 names included.
   */
  static async create(gpu: GpuContext, options: MoELayerOptions): Promise<MoELayer> {
    checkOptionNames(options as Record<string, unknown>);
    const { impl, memoryLimit, chunkBytes, ...fields } = currentNames(options);
    const missing = REQUIRED_FIELDS.filter((name) => fields[name] === undefined);
    if (missing.length) throw new UsageError(`MoELayer.create: ${missing.map((name) => `\`${name}\``).join(', ')} required (the layer's T, d, h, E and k)`);
    let config: LayerConfig;
    try {
      config = layerConfig(fields);
      if (impl !== undefined) findStrategy(impl);
    } catch (error) {
      // The checks are shared with the CLI, which names flags; a library caller gave options.
      if (error instanceof UsageError) throw new UsageError(`MoELayer.create: ${apiWording(error.message)}`);
      throw error;
    }
    return MoELayer.fromConfig(gpu, config, { impl, memoryLimit, chunkBytes });
  }

  /** A layer of `config` (checked again here: callers may build one by spreading) run as `runtime` says. */
  static async fromConfig(gpu: GpuContext, config: LayerConfig, runtime: LayerRuntime = {}): Promise<MoELayer> {
    validateLayerConfig(config);
    const layer = new MoELayer(gpu, config, runtime);
    await layer.allocator.settle();
    return layer;
  }

  /**
   * Sets weights and inputs from the documented seeded generator (src/rng.ts). At f16 the values
   * returned are the f16-rounded ones the layer holds: the reference must start from those.
   */
  randomize(): LayerInputs {
    const inputs = seededInputs(this.config);
    this.setInputs(inputs);
    return inputs;
  }

  /**
   * Sets weights and inputs from the hashed fill on the GPU (kernels/init.ts): for shapes too
   * large to generate on the host. Same distributions as randomize() (roughly: src/fill.ts),
   * different values, and replayable exactly on the host (src/fill.ts), which the sampled
   * check does for the weights instead of reading them back.
   */
  async randomizeOnGpu(seed = this.config.seed): Promise<void> {
    const t = this.tensors;
    const std = fillStds(this.config.hidden, this.config.ffn);
    const enc = this.kernels.encoder();
    for (const name of Object.keys(FILL_TENSORS) as FilledTensor[]) {
      const tensor = t[name];
      if (!tensor) continue;
      for (const [c, chunk] of tensor.chunks.entries()) {
        const { start, count } = chunkRowRange(tensor.layout, c);
        await encodeFillHashed(enc, tensor.layout.elementBytes === 2 ? 'f16' : 'f32', chunk, start, count, tensor.layout.cols, seed, FILL_TENSORS[name], fillScale(std[name]));
      }
    }
    enc.flush();
    await this.gpu.device.queue.onSubmittedWorkDone();
    this.filledWith = seed;
  }

  /** The seed of the GPU fill the weights hold (randomizeOnGpu), or null once weights came from the host. */
  get gpuFillSeed(): number | null {
    return this.filledWith;
  }

  setInputs(inputs: Partial<LayerInputs>): void {
    const device = this.gpu.device;
    const t = this.tensors;
    const put = (tensor: Tensor | null, data: Float32Array | null | undefined, name: string) => {
      if (!data) return;
      if (!tensor) throw new UsageError(`${name} is not used by the ${this.config.activation} activation`);
      const expected = tensor.layout.rows * tensor.layout.cols;
      if (data.length !== expected) throw new UsageError(`${name} has ${data.length} elements; the layer expects ${expected}`);
      uploadTensor(device, tensor, data);
    };
    if (inputs.W1 || inputs.W2 || inputs.W3) this.filledWith = null;
    put(t.X, inputs.X, 'X');
    put(t.dO, inputs.dO, 'dO');
    put(t.Wr, inputs.Wr, 'Wr');
    put(t.W1, inputs.W1, 'W1');
    put(t.W3, inputs.W3, 'W3');
    put(t.W2, inputs.W2, 'W2');
  }

  private stepContext(timing?: StepTimingOptions): StepContext {
    const enc = this.kernels.encoder(timing?.timer?.writes ?? null, timing?.perKernel ?? false, this.strategy.id);
    return new StepContext(this.kernels, enc, this.config, this.chunkBytes);
  }

  private async runForward(step: StepContext): Promise<void> {
    this.output = await this.runner.forward(step, this.tensors);
    await this.allocator.pausePoint(); // a peak at the pass's last allocation
    step.enc.flush();
    this.allocator.mark(FORWARD_END_MARK);
    await this.allocator.settle();
  }

  private async runBackward(step: StepContext): Promise<void> {
    this.inputGrad = await this.runner.backward(step, this.tensors);
    await this.allocator.pausePoint();
    step.enc.flush();
    await this.allocator.settle();
  }

  async forward(X?: Float32Array): Promise<void> {
    if (X) this.setInputs({ X });
    this.releaseOutputs();
    await this.runForward(this.stepContext());
  }

  async backward(dO?: Float32Array): Promise<void> {
    if (dO) this.setInputs({ dO });
    await this.runBackward(this.stepContext());
  }

  /**
   * One measured step (forward, or forward and backward) with the memory figures of docs/design.md
   * (section Memory) and, given a timer, GPU timestamps of every phase (or every kernel).
   */
  async step(options: StepTimingOptions & { pass?: 'forward' | 'train'; atStart?: () => Promise<void> } = {}): Promise<{ memory: StepMemory; timing: StepTiming | null; wallMs: number }> {
    this.releaseOutputs();
    // The driver check reads its "before" here: the last step's outputs are gone, nothing new yet.
    await options.atStart?.();
    const createdBefore = this.allocator.activity.created;
    const profiler = new MemoryProfiler(this.allocator);
    const step = this.stepContext(options);
    const started = performance.now();
    let forwardPasses = 0;
    this.lastStep = await profiler.profile(async () => {
      await this.runForward(step);
      forwardPasses = step.enc.passes.length;
      if ((options.pass ?? 'train') === 'train') await this.runBackward(step);
    });
    await this.gpu.device.queue.onSubmittedWorkDone();
    const wallMs = performance.now() - started;
    const timing = options.timer ? await options.timer.read(step.enc.passes, forwardPasses) : null;
    // Every buffer the step created, the timer's readback included: zero in a steady caching step.
    this.lastStep = { ...this.lastStep, buffersCreated: this.allocator.activity.created - createdBefore };
    return { memory: this.lastStep, timing, wallMs };
  }

  /** Forward and backward with the memory figures of docs/design.md#memory. */
  async trainStep(): Promise<StepMemory> {
    return (await this.step()).memory;
  }

  get memory(): StepMemory | null {
    return this.lastStep;
  }

  /** Routing of the last forward pass; call between forward() and backward(). */
  async readRouting() {
    return this.runner.readRouting(this.stepContext());
  }

  async routingSummary(): Promise<RoutingSummary> {
    return this.runner.summary(this.stepContext());
  }

  async readOutput(): Promise<Float32Array> {
    if (!this.output) throw new Error('no output: run forward() first');
    return readTensor(this.allocator, this.output);
  }

  async readInputGradient(): Promise<Float32Array> {
    if (!this.inputGrad) throw new Error('no gradients: run backward() first');
    return readTensor(this.allocator, this.inputGrad);
  }

  async readGradients(): Promise<LayerGradients> {
    if (!this.inputGrad) throw new Error('no gradients: run backward() first');
    const t = this.tensors;
    return {
      dX: await readTensor(this.allocator, this.inputGrad),
      dWr: await readTensor(this.allocator, t.dWr),
      dW1: await readTensor(this.allocator, t.dW1),
      dW2: await readTensor(this.allocator, t.dW2),
      dW3: t.dW3 ? await readTensor(this.allocator, t.dW3) : null,
    };
  }

  /**
   * The layer's GPU tensors, for code that drives it from other kernels (src/train): X and dO
   * can be written in place before forward()/backward(), weights and gradients updated by an
   * optimizer; output and inputGrad are those of the last forward()/backward() (null before).
   */
  gpuTensors(): { layer: LayerTensors; output: Tensor | null; inputGrad: Tensor | null } {
    return { layer: this.tensors, output: this.output, inputGrad: this.inputGrad };
  }

  /** Frees the last step's outputs (O, dX) once the caller has consumed them; forward() does it too. */
  releaseOutputs(): void {
    if (!this.output && !this.inputGrad) return;
    this.runner.release(this.stepContext());
    this.output = this.inputGrad = null;
  }

  destroy(): void {
    // Also after a step that failed half-way: the runner frees whatever it still holds.
    this.runner.release(this.stepContext());
    this.output = this.inputGrad = null;
    for (const tensor of Object.values(this.tensors)) freeTensor(this.allocator, tensor ?? undefined);
    if (!this.ownsKernels) return;
    this.kernels.destroy();
    // The pool's buffers are the layer's: nothing stays reserved (or keeps dawn.node alive) after it.
    this.allocator.releasePool();
  }
}
