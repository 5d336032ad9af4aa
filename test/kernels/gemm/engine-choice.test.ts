import { describe, expect, it } from 'vitest';
import { gpuSelection } from '../../../src/cli/flags.js';
import { EnvironmentError, UsageError } from '../../../src/errors.js';
import type { AdapterReport, GpuContext } from '../../../src/gpu/runtime.js';
import { gemmEngineFor, matrixFragment, subgroupMatrixUnavailable } from '../../../kernels/gemm/engine-choice.js';
import { chooseFragment, DEFAULT_FRAGMENT, fragmentRefusal } from '../../../kernels/gemm/engines/fragment.js';

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

  it("the fragment is the adapter's: the most multiply-adds per instruction of its f16→f32 shapes, at its one subgroup size", () => {
    // H100 through Dawn (docs/performance.md, session 3): 16×16×16 first, whatever the list's order.
    const nvidia = [{ ...F16_16, M: 16, N: 8, K: 8 }, { ...F16_16, N: 8 }, F16_16, { componentType: 'i8', resultComponentType: 'i32', M: 16, N: 16, K: 32 }];
    expect(chooseFragment(nvidia, 32, 32)).toEqual({ fragment: DEFAULT_FRAGMENT });
    expect(chooseFragment([{ ...F16_16, M: 8, N: 8, K: 8 }], 32, 32)).toEqual({ fragment: { m: 8, n: 8, k: 8, subgroupSize: 32 } });
    expect(chooseFragment([{ ...F16_16, M: 8, N: 16, K: 16 }], 16, 16)).toEqual({ fragment: { m: 8, n: 16, k: 16, subgroupSize: 16 } });
    // Nothing usable: named, with what the engine needs.
    expect(chooseFragment([{ ...F16_16, resultComponentType: 'f16' }], 32, 32)).toEqual({ reason: 'no f16→f32 subgroup-matrix configuration' });
    expect(chooseFragment([F16_16], 16, 32)).toMatchObject({ reason: expect.stringMatching(/subgroup size varies \(16\.\.32\)/) });
    expect(chooseFragment([{ ...F16_16, K: 32 }], 32, 32)).toMatchObject({ reason: expect.stringMatching(/k of 8 or 16/) });
    expect(fragmentRefusal({ m: 8, n: 8, k: 8, subgroupSize: 128 })).toMatch(/64 accumulator elements do not split evenly over 128 lanes/);
    expect(fragmentRefusal({ m: 16, n: 16, k: 16, subgroupSize: 48 })).toMatch(/do not divide a 256-thread workgroup/);
    // The device's: the chosen one, else the default (an adapter without subgroup matrices, where only the emulation runs).
    expect(matrixFragment(device({}, { subgroupMatrixConfigs: [{ ...F16_16, M: 8, N: 8, K: 8 }] }))).toEqual({ m: 8, n: 8, k: 8, subgroupSize: 32 });
    expect(matrixFragment(device({}, { subgroupMatrixConfigs: [], subgroupMinSize: null, subgroupMaxSize: null }))).toEqual(DEFAULT_FRAGMENT);
    expect(subgroupMatrixUnavailable(device({}, { subgroupMatrixConfigs: [{ ...F16_16, K: 32 }] }))).toMatch(/^NVIDIA test: no f16→f32 configuration the engine takes/);
  });

  it('flags: a forced subgroup-matrix engine without --dtype f16 is a usage error before any GPU work; toggles follow the flags', () => {
    expect(() => gpuSelection({ gemm: 'subgroup-matrix' })).toThrow(/--dtype f16/);
    expect(gpuSelection({ gemm: 'subgroup-matrix', dtype: 'f16' }).gemm).toBe('subgroup-matrix');
    const s = gpuSelection({ 'nvidia-f16': false, 'unsafe-disable-robustness': true });
    expect([s.nvidiaF16, s.robustness, s.gemm]).toEqual([false, false, 'auto']);
  });
});
