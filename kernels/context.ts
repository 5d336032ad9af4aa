import type { GpuAllocator, TrackedBuffer } from '../src/gpu/allocator.js';
import { allocateParamArena, PipelineCache, StepEncoder } from './program.js';

/** What kernels need from the device: one allocator, one pipeline cache, one param arena. */
export class KernelContext {
  readonly cache: PipelineCache;
  readonly paramArena: TrackedBuffer;

  constructor(readonly allocator: GpuAllocator) {
    this.cache = new PipelineCache(allocator.device);
    this.paramArena = allocateParamArena(allocator);
  }

  get device(): GPUDevice {
    return this.allocator.device;
  }

  encoder(timestamps: ConstructorParameters<typeof StepEncoder>[3] = null, passPerKernel = false): StepEncoder {
    return new StepEncoder(this.device, this.cache, this.paramArena.buffer, timestamps, passPerKernel, this.allocator);
  }

  destroy(): void {
    this.allocator.free(this.paramArena);
  }
}
