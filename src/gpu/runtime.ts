import type { DType, GemmEngine, GemmRequest } from '../config.js';
import type { TuningTable } from './tuning.js';
import { EnvironmentError, GpuError, UsageError } from '../errors.js';
import { policyFromEnv, type AllocatorMode, type AllocatorPolicy } from './buffer-pool.js';

/** The features the layer uses when the adapter offers them. */
export const OPTIONAL_FEATURES: readonly GPUFeatureName[] = ['timestamp-query', 'shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix' as GPUFeatureName];
export const BACKENDS = ['vulkan', 'metal', 'd3d12', 'd3d11', 'opengl', 'opengles'] as const;
export type Backend = (typeof BACKENDS)[number];

export interface AdapterSelection {
  /** Case-insensitive substring of the adapter's name, description, vendor or architecture, or its index (adapterIndex). */
  adapter?: string;
  backend?: Backend;
  powerPreference?: GPUPowerPreference;
  /**
   * Dawn's `vulkan_enable_f16_on_nvidia` [default: on]. Dawn keeps shader-f16 off on NVIDIA's
   * Vulkan driver because of conformance failures in some f16 cases (crbug 42251215); without
   * it NVIDIA adapters have no f16 storage and no f16 subgroup matrices.
   */
  nvidiaF16?: boolean;
  /**
   * Dawn's bounds clamping of every storage access [default: on]. Off (`disable_robustness`) is
   * an explicit opt-in: an out-of-bounds access is then no longer clamped and can read or write
   * other memory, fault, or lose the device.
   */
  robustness?: boolean;
  /** More Dawn toggles to enable: a measurement switch (tools/gemm-bench.mjs --toggles), recorded with the rest. */
  extraToggles?: string[];
  /** The GEMM engine asked for [default 'auto']; each layer resolves it with gemmEngineFor(). */
  gemm?: GemmRequest;
  /** `--tuning FILE`: the matrix engine's tile table every layer on this device follows [default: none]. */
  tuning?: TuningTable | null;
  /** `--allocator` [default: caching]: every layer's allocator on this device follows it (src/gpu/buffer-pool.ts). */
  allocator?: AllocatorMode;
  /** Poison every buffer handed out [default: MOEBLAZE_POISON_POOL=1]. */
  poisonPool?: boolean;
}

/** One subgroup-matrix shape the adapter offers (Dawn's adapter.info.subgroupMatrixConfigs). */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  subgroupMinSize: number | null;
  subgroupMaxSize: number | null;
  isFallbackAdapter: boolean;
  features: string[];
  limits: Record<string, number>;
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
  /** The Dawn toggles the adapter was opened with: they change what it offers (provenance). */
  toggles?: { enabled: string[]; disabled: string[] };
  /** Its number in `moeblaze devices` (0-based, Dawn's order): what `--adapter N` opens. Absent where Dawn picked the adapter. */
  index?: number;
}

/**
 * `--adapter N` with N a number below the count of adapters is the N-th adapter `moeblaze
 * devices` lists (0-based, as nvidia-smi and CUDA_VISIBLE_DEVICES count), so that one process per
 * GPU needs no names; any other text, "4090" on a 2-GPU host included, is a name substring.
 */
export function adapterIndex(needle: string, count: number): number | null {
  if (!/^\d{1,6}$/.test(needle.trim())) return null;
  const index = Number(needle.trim());
  return index < count ? index : null;
}

/** The adapters Dawn lists, in its order, without the null backend (a stub without a GPU): what adapter numbers count. */
async function listedAdapters(): Promise<{ backend: string; name: string }[]> {
  return (await listAdapterNames()).filter((a) => a.backend !== 'null');
}

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

let dawn: DawnModule | undefined;

/** Loads dawn.node once and installs the WebGPU globals (GPUBufferUsage, …). */
async function loadDawn(): Promise<DawnModule> {
  if (dawn) return dawn;
  // Vulkan's loader warns on stderr without it; keep --json output and logs clean.
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  try {
    dawn = (await import('webgpu')) as unknown as DawnModule;
  } catch (error) {
    throw new EnvironmentError(`Dawn (npm package "webgpu") could not be loaded: ${(error as Error).message}. Run \`npm install\` in the moeblaze folder; Dawn ships for linux-x64/arm64, darwin and win32 only`);
  }
  Object.assign(globalThis, dawn.globals);
  return dawn;
}

export const NO_ADAPTER_HELP = [
  'Dawn found no WebGPU adapter.',
  'Install a GPU driver with Vulkan support; on a machine without a GPU use Mesa\'s software rasteriser lavapipe:',
  '  Debian 12: add the bookworm-backports suite, then `apt-get install -t bookworm-backports mesa-vulkan-drivers` (Mesa ≥ 25; Mesa 22 is rejected by Dawn)',
  '  Ubuntu 24.04+: `apt-get install mesa-vulkan-drivers`',
  'Check with `moeblaze devices`.',
].join('\n');

/**
 * The Dawn toggles a selection asks for. allow_unsafe_apis exposes subgroup matrices (an
 * experimental feature); only features the adapter offers and the layer uses are requested.
 */
export function dawnToggles(selection: AdapterSelection): { enabled: string[]; disabled: string[] } {
  const enabled = ['allow_unsafe_apis'];
  if (selection.nvidiaF16 !== false) enabled.push('vulkan_enable_f16_on_nvidia');
  // Robust access left to the driver (vulkan_use_buffer_robust_access_2, with
  // enable_integer_range_analysis_in_robustness) measured no faster: 109.4 TFLOP/s either way on
  // the H100's dense 8192³ product (docs/performance.md, session 6), so Dawn's default stays.
  if (selection.robustness === false) enabled.push('disable_robustness');
  enabled.push(...(selection.extraToggles ?? []));
  // Unquantised timestamps: otherwise Dawn snaps them to 65.5 µs and short kernels read as 0.
  return { enabled, disabled: ['timestamp_quantization'] };
}

function dawnFlags(selection: AdapterSelection): string[] {
  const toggles = dawnToggles(selection);
  const flags = [`enable-dawn-features=${toggles.enabled.join(',')}`, `disable-dawn-features=${toggles.disabled.join(',')}`];
  if (selection.backend) flags.push(`backend=${selection.backend}`);
  if (selection.powerPreference) flags.push(`power-preference=${selection.powerPreference}`);
  return flags;
}

/** Names and backends of every adapter Dawn can see (Dawn lists them when a filter matches none). */
export async function listAdapterNames(): Promise<{ backend: string; name: string }[]> {
  const { create } = await loadDawn();
  try {
    await create(['adapter=\u0001no-adapter-has-this-name\u0001']).requestAdapter();
  } catch (error) {
    const text = String((error as Error).message ?? error);
    return [...text.matchAll(/backend: '([^']+)', name: '([^']+)'/g)].map((m) => ({ backend: m[1], name: m[2] }));
  }
  return [];
}

function matches(report: Pick<AdapterReport, 'vendor' | 'architecture' | 'device' | 'description'>, name: string | undefined, needle: string): boolean {
  const hay = [report.vendor, report.architecture, report.device, report.description, name ?? ''].join(' ').toLowerCase();
  return hay.includes(needle.toLowerCase());
}

export function describeAdapter(adapter: GPUAdapter, backend: string): AdapterReport {
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number; isFallbackAdapter?: boolean; subgroupMatrixConfigs?: SubgroupMatrixConfig[] };
  // Dawn's config objects expose their fields as getters: copy them out field by field.
  const subgroupMatrixConfigs = [...(info.subgroupMatrixConfigs ?? [])].map((c) => ({ componentType: String(c.componentType), resultComponentType: String(c.resultComponentType), M: Number(c.M), N: Number(c.N), K: Number(c.K) }));
  const limits: Record<string, number> = {};
  for (const key in adapter.limits) limits[key] = Number((adapter.limits as unknown as Record<string, number>)[key]);
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    backend,
    subgroupMinSize: info.subgroupMinSize ?? null,
    subgroupMaxSize: info.subgroupMaxSize ?? null,
    isFallbackAdapter: info.isFallbackAdapter ?? false,
    features: [...adapter.features].map(String).sort(),
    limits,
    subgroupMatrixConfigs,
  };
}

/** Every adapter Dawn finds, described; the null backend (a stub without a GPU) is left out. */
export async function enumerateAdapters(toggles: Pick<AdapterSelection, 'nvidiaF16' | 'robustness'> = {}): Promise<AdapterReport[]> {
  const { create } = await loadDawn();
  const reports: AdapterReport[] = [];
  const listed = await listedAdapters();
  for (const [index, { backend, name }] of listed.entries()) {
    const gpu = create([...dawnFlags(toggles), `backend=${backend}`, `adapter=${name}`]);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (adapter) reports.push({ ...describeAdapter(adapter, backend), toggles: dawnToggles(toggles), index });
  }
  return reports;
}

export interface GpuContext {
  device: GPUDevice;
  instance: GPU;
  adapter: AdapterReport;
  hasTimestamps: boolean;
  hasF16: boolean;
  hasSubgroups: boolean;
  /** chromium-experimental-subgroup-matrix is enabled on the device. */
  hasSubgroupMatrix: boolean;
  /** --gemm as asked; gemmEngineFor() turns it into the engine a layer of some dtype runs. */
  gemmRequest: GemmRequest;
  /** The tile table of the matrix engine's kernels (--tuning), or null. */
  tuning: TuningTable | null;
  /** How allocators on this device keep freed buffers (--allocator) and whether they poison them. */
  allocatorPolicy: AllocatorPolicy;
  /** The Dawn toggles the instance was created with (provenance records them). */
  toggles: { enabled: string[]; disabled: string[] };
  /** The most bytes one storage binding may hold; tensors above it are chunked. */
  maxBindingBytes: number;
  maxBufferBytes: number;
  /** Resolves with the loss message if the device is lost before destroy(). */
  lost: Promise<string | null>;
  destroy(): void;
}

/**
 * Opens a device on the chosen adapter with the adapter's maximum limits and the optional
 * features it offers. Throws EnvironmentError (exit 4) with the fix when none matches.
 */
export async function openGpu(selection: AdapterSelection = {}): Promise<GpuContext> {
  const { create } = await loadDawn();
  const listed = await listedAdapters();
  const candidates = listed.filter((a) => !selection.backend || a.backend === selection.backend);
  let adapter: GPUAdapter | null = null;
  let index: number | undefined;
  // The GPU instance must outlive its device: dawn.node crashes if it is collected first.
  let instance: GPU | null = null;
  let backend = selection.backend ?? 'default';
  if (selection.adapter) {
    const numbered = adapterIndex(selection.adapter, listed.length);
    if (numbered !== null && selection.backend && listed[numbered].backend !== selection.backend) {
      throw new UsageError(`--adapter ${numbered} is ${listed[numbered].name} on ${listed[numbered].backend}, not on --backend ${selection.backend}; see \`moeblaze devices\``);
    }
    for (const candidate of numbered === null ? candidates : [listed[numbered]]) {
      const gpu = create([...dawnFlags(selection), `backend=${candidate.backend}`, `adapter=${candidate.name}`]);
      const found = await gpu.requestAdapter({
        powerPreference: selection.powerPreference ?? 'high-performance',
      });
      if (found && (numbered !== null || matches(describeAdapter(found, candidate.backend), candidate.name, selection.adapter))) {
        adapter = found;
        instance = gpu;
        backend = candidate.backend;
        index = listed.indexOf(candidate);
        break;
      }
    }
    if (!adapter) {
      const seen = candidates.map((c) => `${c.name} (${c.backend})`).join(', ') || 'none';
      const numbers = listed.length ? `, or a number 0–${listed.length - 1} as \`moeblaze devices\` lists them` : '';
      throw new EnvironmentError(`--adapter: no adapter matches "${selection.adapter}"; adapters found: ${seen}. ${candidates.length ? `Use a substring of one of those names${numbers}.` : NO_ADAPTER_HELP}`);
    }
  } else if (candidates.length > 0) {
    instance = create(dawnFlags(selection));
    adapter = await instance.requestAdapter({ powerPreference: selection.powerPreference ?? 'high-performance' });
    backend = selection.backend ?? candidates[0].backend;
  }
  if (!adapter) {
    const what = selection.backend ? `no adapter on the ${selection.backend} backend` : 'no adapter';
    throw new EnvironmentError(`${what}. ${NO_ADAPTER_HELP}`);
  }
  const report: AdapterReport = { ...describeAdapter(adapter, backend), toggles: dawnToggles(selection), ...(index !== undefined && { index }) };
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter!.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const key in adapter.limits) requiredLimits[key] = (adapter.limits as unknown as Record<string, number>)[key];
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  let destroyed = false;
  const lost = device.lost.then((info) => (destroyed ? null : info.message || String(info.reason)));
  return {
    device,
    instance: instance!,
    adapter: report,
    hasTimestamps: device.features.has('timestamp-query'),
    hasF16: device.features.has('shader-f16'),
    hasSubgroups: device.features.has('subgroups'),
    hasSubgroupMatrix: device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName),
    toggles: dawnToggles(selection),
    gemmRequest: selection.gemm ?? 'auto',
    tuning: selection.tuning ?? null,
    allocatorPolicy: { ...policyFromEnv(selection.allocator), ...(selection.poisonPool !== undefined && { poison: selection.poisonPool }) },
    maxBindingBytes: device.limits.maxStorageBufferBindingSize,
    maxBufferBytes: device.limits.maxBufferSize,
    lost,
    destroy() {
      if (destroyed) return;
      destroyed = true;
      device.destroy();
    },
  };
}

/**
 * Runs `work` inside validation and internal error scopes; a GPU error there becomes a GpuError
 * that names the kernel, instead of a silent wrong result or a bare Dawn message later.
 */
export async function withGpuErrors<T>(device: GPUDevice, kernel: string, work: () => T | Promise<T>): Promise<T> {
  device.pushErrorScope('internal');
  device.pushErrorScope('validation');
  let result: T;
  try {
    result = await work();
  } finally {
    const validation = await device.popErrorScope();
    const internal = await device.popErrorScope();
    const error = validation ?? internal;
    if (error) throw new GpuError(`GPU error in kernel "${kernel}": ${error.message}`, kernel);
  }
  return result;
}

