import type { DType, GemmEngine } from '../../src/config.js';
import { EnvironmentError, UsageError } from '../../src/errors.js';
import type { GpuContext } from '../../src/gpu/runtime.js';
import { chooseFragment, DEFAULT_FRAGMENT, type FragmentShape } from './engines/fragment.js';

type EngineDevice = Pick<GpuContext, 'hasSubgroupMatrix' | 'hasF16' | 'hasSubgroups' | 'adapter' | 'toggles'>;

/**
 * Why this device cannot run the subgroup-matrix engine, or null if it can: the engine needs f16
 * operands, subgroups, and an f16→f32 fragment shape it can lay over its 256-thread workgroup at a
 * fixed subgroup size (engines/fragment.ts chooseFragment).
 */
export function subgroupMatrixUnavailable(gpu: EngineDevice): string | null {
  const a = gpu.adapter;
  if (!gpu.hasSubgroupMatrix) {
    const f16Off = a.vendor.toLowerCase().includes('nvidia') && !gpu.toggles?.enabled.includes('vulkan_enable_f16_on_nvidia');
    return `${a.description} offers no subgroup matrices (chromium-experimental-subgroup-matrix)${f16Off ? '; on NVIDIA, --no-nvidia-f16 turns off the f16 ones' : ''}`;
  }
  if (!gpu.hasF16 || !gpu.hasSubgroups) return `${a.description} lacks shader-f16 or subgroups`;
  const choice = chooseFragment(a.subgroupMatrixConfigs, a.subgroupMinSize, a.subgroupMaxSize);
  return 'reason' in choice ? `${a.description}: ${choice.reason}` : null;
}

/**
 * The fragment the matrix engine builds with on this device: the adapter's choice where it offers
 * one, else 16×16×16 with subgroups of 32 (the emulated engine on an adapter without subgroup
 * matrices, and every SIMT context, where it is unused).
 */
export function matrixFragment(gpu: Pick<GpuContext, 'adapter'>): FragmentShape {
  const a = gpu.adapter;
  const choice = chooseFragment(a.subgroupMatrixConfigs, a.subgroupMinSize, a.subgroupMaxSize);
  return 'fragment' in choice ? choice.fragment : DEFAULT_FRAGMENT;
}

/**
 * The engine a layer of `dtype` runs its GEMMs on: 'auto' takes subgroup matrices at f16 where
 * the adapter has them (f32 stays SIMT: the engine rounds operands to f16); an explicit
 * 'subgroup-matrix' the device cannot run is an environment error (exit 4), at f32 a usage error.
 */
export function gemmEngineFor(gpu: EngineDevice & Pick<GpuContext, 'gemmRequest'>, dtype: DType): GemmEngine {
  const request = gpu.gemmRequest ?? 'auto';
  if (request === 'simt') return 'simt';
  if (request !== 'auto' && dtype !== 'f16') throw new UsageError(`--gemm ${request} multiplies f16 operands; use it with --dtype f16 (f32 runs on simt)`);
  if (request === 'subgroup-matrix-emulated') return request;
  const reason = subgroupMatrixUnavailable(gpu);
  if (request === 'subgroup-matrix' && reason) throw new EnvironmentError(`--gemm subgroup-matrix: ${reason}; use --gemm simt or auto`);
  return dtype === 'f16' && !reason ? 'subgroup-matrix' : 'simt';
}
