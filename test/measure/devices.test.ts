import { describe, expect, it } from 'vitest';
import type { AdapterReport } from '../../src/gpu/runtime.js';
import { matrixEngineOf } from '../../src/measure/devices.js';

const F16 = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 };
const H100 = {
  features: ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'],
  subgroupMinSize: 32,
  subgroupMaxSize: 32,
  subgroupMatrixConfigs: [{ ...F16, N: 8 }, F16],
} as AdapterReport;

describe("devices: the matrix engine's row (src/measure/devices.ts matrixEngineOf)", () => {
  it('names the fragment the engine takes, or what the adapter lacks', () => {
    expect(matrixEngineOf(H100)).toBe('f16→f32 16×16×16, subgroups of 32');
    expect(matrixEngineOf({ ...H100, subgroupMatrixConfigs: [{ ...F16, M: 8, N: 8, K: 8 }] })).toBe('f16→f32 8×8×8, subgroups of 32');
    expect(matrixEngineOf({ ...H100, features: ['subgroups'] })).toBe('unavailable: no shader-f16, chromium-experimental-subgroup-matrix');
    expect(matrixEngineOf({ ...H100, subgroupMinSize: 8 })).toMatch(/^unavailable: the subgroup size varies \(8\.\.32\)/);
  });
});
