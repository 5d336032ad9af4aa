import type { GpuAllocator, TrackedBuffer } from '../src/gpu/allocator.js';
import { withEngine, type GemmEngine, type GemmKernelSource } from './gemm/core.js';
import type { TuningTable } from '../src/gpu/tuning.js';
import { DEFAULT_FRAGMENT, type FragmentShape } from './gemm/engines/fragment.js';
import { GemmRepeater, plantedSlowdown } from '../src/gpu/planted-slowdown.js';
import { allocateParamArena, PipelineCache, StepEncoder, type KernelSource } from './program.js';

/** What kernels need from the device: one allocator, one pipeline cache, one param arena, one GEMM engine. */
export class KernelContext {
  readonly cache: PipelineCache;
  readonly paramArena: TrackedBuffer;
  /** One line per GEMM that could not be built on the requested engine and ran on SIMT instead. */
  readonly engineFallbacks: string[] = [];
  readonly tuning: TuningTable | null;
  readonly fragment: FragmentShape;

  constructor(
    readonly allocator: GpuAllocator,
    /** The engine every f16 GEMM of the core runs on (f32 GEMMs and the router stay SIMT). */
    readonly gemmEngine: GemmEngine = 'simt',
    {
      tuning = null,
      fragment = DEFAULT_FRAGMENT,
    }: {
      /** The tile table the matrix engine's kernels follow (bench --tuning; src/gpu/tuning.ts) [default: none]. */
      tuning?: TuningTable | null;
      /** The matrix engine's fragment, from the adapter (kernels/gemm/engine-choice.ts matrixFragment) [default: 16×16×16, subgroups of 32]. */
      fragment?: FragmentShape;
    } = {},
  ) {
    this.tuning = tuning;
    this.fragment = fragment;
    this.cache = new PipelineCache(allocator.device);
    this.paramArena = allocateParamArena(allocator);
  }

  get device(): GPUDevice {
    return this.allocator.device;
  }

  /** `strategy`: whose step this encoder records, for the planted-slowdown test hook. */
  encoder(timestamps: ConstructorParameters<typeof StepEncoder>[3] = null, passPerKernel = false, strategy?: string): StepEncoder {
    return new StepEncoder(
      this.device,
      this.cache,
      this.paramArena.buffer,
      timestamps,
      passPerKernel,
      {
        resolve: (source) => withEngine(source, this.gemmEngine, { workgroupBytes: this.device.limits.maxComputeWorkgroupStorageSize, tuning: this.tuning, fragment: this.fragment }),
        fallback: (source, error) => this.fallBack(source, error),
      },
      this.allocator,
      strategy ? this.repeaterFor(strategy) : null,
    );
  }

  private readonly repeaters = new Map<string, GemmRepeater | null>();

  private repeaterFor(strategy: string): GemmRepeater | null {
    if (!this.repeaters.has(strategy)) {
      const plant = plantedSlowdown();
      this.repeaters.set(strategy, plant && plant.strategy === strategy ? new GemmRepeater(this.device, plant.extra) : null);
    }
    return this.repeaters.get(strategy)!;
  }

  /** A subgroup-matrix pipeline that fails to build (an experimental Dawn feature) runs on SIMT. */
  private fallBack(source: KernelSource, error: Error): KernelSource | null {
    if (!('gemm' in source) || (source as GemmKernelSource).engine === 'simt') return null;
    const line = `GEMM "${source.name}" could not be built on ${(source as GemmKernelSource).engine} (${error.message.split('\n')[0]}); it runs on simt`;
    if (!this.engineFallbacks.includes(line)) {
      this.engineFallbacks.push(line);
      process.stderr.write(`warning: ${line}\n`);
    }
    return withEngine(source, 'simt');
  }

  destroy(): void {
    for (const r of this.repeaters.values()) r?.destroy();
    this.allocator.free(this.paramArena);
  }
}
