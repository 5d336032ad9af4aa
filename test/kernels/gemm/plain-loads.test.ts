import { describe, expect, it } from 'vitest';
import { plainLoads } from '../../../kernels/gemm/plain-loads.js';
import { ROWS_ALIGNED } from '../../../kernels/gemm/segment-vectors.js';

/** The GEMMs that use these hooks are checked against float64 in test/strategies/subgroup-matrix-engine.test.ts; here, what is emitted. */
describe('plainLoads', () => {
  it('writes each scalar hook and its 8-wide twin from one index', () => {
    const loads = plainLoads({ A: ['X', '(idx[m] / P.topK) * P.d + k'], B: ['W1', 'k * P.h + n'], B2: ['W3', 'k * P.h + n'] });
    expect(loads.functions.split('\n')).toEqual([
      'fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(X[(idx[m] / P.topK) * P.d + k]); }',
      'fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(W1[k * P.h + n]); }',
      'fn loadB2(t: Tile, k: u32, n: u32) -> f32 { return f32(W3[k * P.h + n]); }',
    ]);
    expect(loads.vectors.split('\n')).toEqual([
      'fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return X8((idx[m] / P.topK) * P.d + k); }',
      'fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W18(k * P.h + n); }',
      'fn loadB28(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W38(k * P.h + n); }',
    ]);
    expect(loads.vectorLoads).toEqual({ when: ROWS_ALIGNED, functions: loads.vectors });
  });

  it('leaves out the operands a spec writes itself', () => {
    const loads = plainLoads({ A: ['dHidden', 'm * P.K + k'] }, 'P.K % 8u == 0u');
    expect(loads.functions).not.toContain('loadB');
    expect(loads.vectors).not.toContain('loadB');
    expect(loads.vectorLoads.when).toBe('P.K % 8u == 0u');
  });
});
