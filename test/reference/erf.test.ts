import { describe, expect, it } from 'vitest';
import { erf, erfc, gelu, geluGrad, silu, siluGrad } from '../../src/reference/erf.js';

// 19-digit values from mpmath at 40 digits.
const ERF: [number, number, number][] = [
  [1e-8, 1.128379167095512536e-8, 0.999999988716208329],
  [0.01, 0.01128341555584961692, 0.9887165844441503831],
  [0.1, 0.1124629160182848922, 0.8875370839817151078],
  [0.5, 0.5204998778130465377, 0.4795001221869534623],
  [1, 0.8427007929497148693, 0.1572992070502851307],
  [1.5, 0.9661051464753107271, 0.03389485352468927293],
  [1.99, 0.9951114131996169972, 0.004888586800383002762],
  [2, 0.9953222650189527342, 0.004677734981047265838],
  [2.49, 0.9995707121322660866, 0.0004292878677339133937],
  [2.5, 0.9995930479825550411, 0.0004069520174449589396],
  [3, 0.9999779095030014146, 0.00002209049699858544137],
  [3.5, 0.9999992569016276586, 7.430983723414127455e-7],
  [4, 0.9999999845827420997, 1.541725790028001885e-8],
  [5, 0.9999999999984625402, 1.53745979442803485e-12],
  [6, 0.9999999999999999785, 2.151973671249891312e-17],
];

const rel = (got: number, want: number) => Math.abs(got - want) / Math.abs(want);

describe('erf', () => {
  it('matches high-precision values to 1e-14 relative, and is odd', () => {
    for (const [x, want] of ERF) {
      expect(rel(erf(x), want), `erf(${x})`).toBeLessThanOrEqual(1e-14);
      expect(erf(-x)).toBe(-erf(x));
    }
    expect(erf(0)).toBe(0);
    expect(rel(erf(0.5), 0.5204998778130465)).toBeLessThanOrEqual(1e-15);
    expect(rel(erf(1), 0.8427007929497149)).toBeLessThanOrEqual(1e-15);
  });

  it('erfc keeps relative precision in the tail', () => {
    for (const [x, , want] of ERF) {
      // Below 1.5 erfc is 1 − erf, accurate in absolute terms only.
      const bound = x >= 1.5 ? 1e-14 : 1e-15 / want;
      expect(rel(erfc(x), want), `erfc(${x})`).toBeLessThanOrEqual(Math.max(bound, 1e-15));
      expect(Math.abs(erfc(-x) - (2 - want))).toBeLessThanOrEqual(4e-16);
    }
  });

  it('saturates and handles non-finite input', () => {
    expect(erf(10)).toBe(1);
    expect(erf(-40)).toBe(-1);
    expect(erf(Infinity)).toBe(1);
    expect(erf(-Infinity)).toBe(-1);
    expect(erfc(30)).toBe(0);
    expect(Number.isNaN(erf(NaN))).toBe(true);
  });

  it('is continuous across the series/continued-fraction switch', () => {
    for (const x of [2, 1.5]) {
      // Across ±ε the change must be the slope's (2/√π)·e^{-x²}·2ε, not a jump between methods.
      const slopeStep = (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * 2e-12;
      expect(Math.abs(erf(x + 1e-12) - erf(x - 1e-12) - slopeStep)).toBeLessThan(1e-15);
      expect(Math.abs(erfc(x - 1e-12) - erfc(x + 1e-12) - slopeStep)).toBeLessThan(1e-15);
    }
  });
});

describe('activations', () => {
  it('gelu is the exact erf form, with its derivative', () => {
    const cases: [number, number, number][] = [
      [-6, -5.919525870226188844e-9, -3.546870945390201478e-8],
      [-3, -0.00404969409489028358, -0.011945647204183927],
      [-1, -0.1586552539314570514, -0.08331547058768629838],
      [0.3, 0.1853734266566857912, 0.732327766827109863],
      [2, 1.954499736103641586, 1.085231801078196897],
    ];
    for (const [x, value, grad] of cases) {
      expect(rel(gelu(x), value), `gelu(${x})`).toBeLessThan(1e-13);
      expect(rel(geluGrad(x), grad), `gelu'(${x})`).toBeLessThan(1e-13);
    }
    expect(gelu(0)).toBe(0);
  });

  it('derivatives agree with central differences', () => {
    const step = 1e-6;
    for (const x of [-8, -2.3, -0.4, 0, 0.7, 1.9, 5, 30]) {
      const fdSilu = (silu(x + step) - silu(x - step)) / (2 * step);
      const fdGelu = (gelu(x + step) - gelu(x - step)) / (2 * step);
      expect(Math.abs(siluGrad(x) - fdSilu)).toBeLessThan(1e-8);
      expect(Math.abs(geluGrad(x) - fdGelu)).toBeLessThan(1e-8);
    }
  });

  it('silu does not overflow for large |x|', () => {
    expect(Math.abs(silu(-800))).toBe(0);
    expect(silu(800)).toBe(800);
    expect(Math.abs(siluGrad(-800))).toBe(0);
    expect(siluGrad(800)).toBe(1);
  });
});
