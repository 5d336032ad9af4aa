import { EnvironmentError } from '../errors.js';
import type { Backend } from '../gpu/runtime.js';
import { NO_ADAPTER_HELP, adapterIndex, enumerateAdapters, type AdapterReport } from '../gpu/runtime.js';
import { collectHost, type HostReport } from './host.js';
import { chooseFragment } from '../../kernels/gemm/engines/fragment.js';
import { collectProvenance, type Provenance } from './provenance.js';

/** The limits that decide what this tool can run: binding and buffer sizes bound the chunking, the rest the kernels' tiles. */
export const KEY_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

/** Limits measured in bytes (rendered with units); the others are counts. */
export const BYTE_LIMITS: ReadonlySet<string> = new Set(['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize']);

export interface DevicesReport {
  adapters: (AdapterReport & { matrixEngine: string })[];
  host: HostReport;
  provenance: Provenance;
}

export interface DeviceFilter {
  adapter?: string;
  backend?: Backend;
  /** The toggles change what an adapter offers (f16 and its subgroup matrices on NVIDIA). */
  'nvidia-f16'?: boolean;
  'unsafe-disable-robustness'?: boolean;
}

export function adapterLabel(a: AdapterReport): string {
  return `${a.description || a.device || a.vendor} (${a.backend})`;
}

/** The same fields openGpu() matches --adapter against, so `devices --adapter X` shows what X opens. */
export function adapterMatches(a: AdapterReport, needle: string): boolean {
  return [a.vendor, a.architecture, a.device, a.description].join(' ').toLowerCase().includes(needle.toLowerCase());
}

/**
 * What the matrix engine would build with on this adapter (kernels/gemm/engines/fragment.ts): its
 * fragment and subgroup size, or why it cannot run there.
 */
export function matrixEngineOf(a: AdapterReport): string {
  const needs = ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'].filter((f) => !a.features.includes(f));
  if (needs.length) return `unavailable: no ${needs.join(', ')}`;
  const choice = chooseFragment(a.subgroupMatrixConfigs, a.subgroupMinSize, a.subgroupMaxSize);
  if ('reason' in choice) return `unavailable: ${choice.reason}`;
  const f = choice.fragment;
  return `f16→f32 ${f.m}×${f.n}×${f.k}, subgroups of ${f.subgroupSize}`;
}

/**
 * Every adapter Dawn finds (optionally filtered), the host, and provenance. Throws the exit-4
 * error with the fix when there is none, or none that matches the filter.
 */
export async function collectDevices(filter: DeviceFilter, argv: readonly string[]): Promise<DevicesReport> {
  const toggles = { nvidiaF16: filter['nvidia-f16'] !== false, robustness: !filter['unsafe-disable-robustness'] };
  const [all, host] = await Promise.all([enumerateAdapters(toggles), collectHost()]);
  if (all.length === 0) throw new EnvironmentError(NO_ADAPTER_HELP);
  const found = all.map(adapterLabel).join(', ');
  let adapters = all;
  if (filter.backend) {
    adapters = adapters.filter((a) => a.backend === filter.backend);
    if (adapters.length === 0) throw new EnvironmentError(`--backend: no adapter on the ${filter.backend} backend; adapters found: ${found}`);
  }
  if (filter.adapter) {
    const needle = filter.adapter;
    const numbered = adapterIndex(needle, all.length);
    adapters = adapters.filter((a) => (numbered !== null ? a.index === numbered : adapterMatches(a, needle)));
    if (adapters.length === 0) throw new EnvironmentError(`--adapter: no adapter matches "${needle}"; adapters found: ${found}. Use a substring of one of those names, or an adapter's number`);
  }
  return { adapters: adapters.map((a) => ({ ...a, matrixEngine: matrixEngineOf(a) })), host, provenance: collectProvenance(argv) };
}
