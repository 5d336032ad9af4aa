/**
 * moeblaze as a library: build an MoE layer on a WebGPU device with any registered dispatch
 * strategy, train it a step, and read its memory figures, timings and results.
 */
export { MoELayer, type MoELayerOptions, type LayerRuntime, type LayerGradients } from './layer.js';
export { MemoryProfiler, summarizeMemory, type StepMemory } from './gpu/memory-profiler.js';
export { openGpu, enumerateAdapters, type GpuContext, type AdapterReport, type AdapterSelection } from './gpu/runtime.js';
export { GpuAllocator, BUFFER_TAGS, type BufferTag } from './gpu/allocator.js';
export { GpuTimer } from './gpu/timer.js';
export { STRATEGIES, findStrategy, registerStrategy, strategyIds } from './registry.js';
export type { Strategy, StrategyRunner, StepContext, RoutingSummary, LayerTensors, KernelWork } from './strategy/contract.js';
export { tableFigures, type BufferTable, type BufferSpec } from './strategy/buffer-table.js';
export { layerConfig, capacityOf, PRESETS, findPreset, usefulFlops, type LayerConfig } from './config.js';
export { verifyStrategies, type VerifyResult } from './verify/verify.js';
export { referenceStep, routeReference, compareTensors } from './reference/index.js';
export { generateInputs, type LayerInputs } from './rng.js';
export { ExitCode, MoeblazeError, UsageError, EnvironmentError, CheckFailedError, OutOfMemoryError, GpuError } from './errors.js';
export { planModel } from './plan/model.js';
export { validatePlan } from './plan/validate.js';
export { runTraining, trainStrategy, type TrainResult } from './train/run.js';
export { trainConfig, type TrainConfig } from './train/model.js';
