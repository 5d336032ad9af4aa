import { describe, expect, it } from 'vitest';
import { compareTensors, F32_TOLERANCE } from '../../src/reference/compare.js';

describe('compareTensors', () => {
  it('is the relative L2 error with the max absolute error alongside', () => {
    const c = compareTensors([1, 2, 2.5], [1, 2, 2]);
    expect(c.relError).toBeCloseTo(0.5 / 3, 15);
    expect(c.maxAbsError).toBe(0.5);
    expect(c.hasNaN).toBe(false);
    expect(c.count).toBe(3);
    expect(compareTensors(new Float32Array([1, 2]), new Float64Array([1, 2])).relError).toBe(0);
  });

  it('never passes NaN or Infinity', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const c = compareTensors([1, bad, 3], [1, 2, 3]);
      expect(c.hasNaN).toBe(true);
      expect(c.relError).toBe(Infinity);
      expect(c.relError <= F32_TOLERANCE).toBe(false);
    }
  });

  it('an all-zero reference must be matched exactly', () => {
    expect(compareTensors([0, 0, -0], [0, 0, 0]).relError).toBe(0);
    expect(compareTensors([0, 1e-30, 0], [0, 0, 0]).relError).toBe(Infinity);
  });

  it('floors the denominator at 1e-30·√n and survives huge values', () => {
    expect(compareTensors([2e-30, 0, 0, 0], [1e-30, 0, 0, 0]).relError).toBeCloseTo(0.5, 12);
    expect(compareTensors([3e200, 4e200], [3e200, 4.0000001e200]).relError / 2e-8).toBeCloseTo(1, 6); // 1e193 / 5e200
  });

  it('rejects tensors of different lengths', () => {
    expect(() => compareTensors([1, 2], [1])).toThrow(/2 elements/);
  });
});
