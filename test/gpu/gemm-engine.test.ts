import { describe, expect, it } from 'vitest';
import { gpuSelection } from '../../src/cli/flags.js';
import { EnvironmentError, UsageError } from '../../src/errors.js';
import { gemmEngineFor, subgroupMatrixUnavailable, type AdapterReport, type GpuContext } from '../../src/gpu/runtime.js';

const F16_16 = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 };

/** What gemmEngineFor reads of a device: an H100-like adapter with subgroup matrices by default. */
function device(over: Partial<GpuContext> = {}, adapter: Partial<AdapterReport> = {}) {
  return {
    gemmRequest: 'auto' as GpuContext['gemmRequest'],
    hasSubgroupMatrix: true,
    hasF16: true,
    hasSubgroups: true,
    toggles: { enabled: ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'], disabled: [] },
    adapter: { vendor: 'nvidia', description: 'NVIDIA test', subgroupMinSize: 32, subgroupMaxSize: 32, subgroupMatrixConfigs: [F16_16], ...adapter } as AdapterReport,
    ...over,
  };
}

describe('GEMM engine choice', () => {
  it('auto: subgroup matrices at f16 where the adapter has them, simt at f32 and elsewhere', () => {
    expect(gemmEngineFor(device(), 'f16')).toBe('subgroup-matrix');
    expect(gemmEngineFor(device(), 'f32')).toBe('simt');
    expect(gemmEngineFor(device({ hasSubgroupMatrix: false }), 'f16')).toBe('simt');
    expect(gemmEngineFor(device({}, { subgroupMinSize: 16, subgroupMaxSize: 32 }), 'f16')).toBe('simt');
    expect(gemmEngineFor(device({}, { subgroupMatrixConfigs: [{ ...F16_16, resultComponentType: 'f16' }] }), 'f16')).toBe('simt');
  });

  it('an explicit engine is honoured, or refused with the reason', () => {
    expect(gemmEngineFor(device({ gemmRequest: 'simt' }), 'f16')).toBe('simt');
    expect(gemmEngineFor(device({ gemmRequest: 'subgroup-matrix-emulated', hasSubgroupMatrix: false }), 'f16')).toBe('subgroup-matrix-emulated');
    expect(() => gemmEngineFor(device({ gemmRequest: 'subgroup-matrix', hasSubgroupMatrix: false }), 'f16')).toThrow(EnvironmentError);
    expect(() => gemmEngineFor(device({ gemmRequest: 'subgroup-matrix' }), 'f32')).toThrow(UsageError);
  });

  it('names the NVIDIA f16 toggle when it is what hides the subgroup matrices', () => {
    const off = device({ hasSubgroupMatrix: false, toggles: { enabled: ['allow_unsafe_apis'], disabled: [] } });
    expect(subgroupMatrixUnavailable(off)).toMatch(/--no-nvidia-f16/);
    expect(subgroupMatrixUnavailable(device())).toBeNull();
  });

  it('flags: a forced subgroup-matrix engine without --dtype f16 is a usage error before any GPU work; toggles follow the flags', () => {
    expect(() => gpuSelection({ gemm: 'subgroup-matrix' })).toThrow(/--dtype f16/);
    expect(gpuSelection({ gemm: 'subgroup-matrix', dtype: 'f16' }).gemm).toBe('subgroup-matrix');
    const s = gpuSelection({ 'nvidia-f16': false, 'unsafe-disable-robustness': true });
    expect([s.nvidiaF16, s.robustness, s.gemm]).toEqual([false, false, 'auto']);
  });
});
