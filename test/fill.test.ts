import { describe, expect, it } from 'vitest';
import { roundToHalf } from '../src/f16.js';
import { FILL_TENSORS, fillExpertWeights, fillRow, fillScale, fillStd, fillStds, fillValue, MAX_SHIFT, mix32 } from '../src/fill.js';

/*
 * The host replica of the GPU fill (src/fill.ts): exact, chunk-free, and distributed as
 * docs/design.md#inputs says. test/kernels/init.test.ts compares it with the GPU bit for bit.
 */

function moments(data: Float64Array) {
  let s1 = 0;
  let s2 = 0;
  let s4 = 0;
  for (const v of data) {
    s1 += v;
    s2 += v * v;
    s4 += v ** 4;
  }
  const n = data.length;
  return { mean: s1 / n, std: Math.sqrt(s2 / n), kurtosis: s4 / n / (s2 / n) ** 2 };
}

describe('hashed fill (host replica)', () => {
  it('pins the mixer and a few values, computed by an independent Python replica of docs/design.md#inputs', () => {
    expect([mix32(0), mix32(1), mix32(0xffffffff)]).toEqual([0, 0x688990c0, 0x6768824a]);
    const s = fillScale(1);
    expect([fillValue(7, FILL_TENSORS.X, 0, 0, s), fillValue(7, FILL_TENSORS.X, 3, 5, s), fillValue(8, FILL_TENSORS.W2, 255, 14680063, fillScale(1 / Math.sqrt(2048)))]).toEqual([-0.728515625, -1.669921875, -0.01519775390625]);
  });

  it('chooses levels and steps whose standard deviation is the wanted one, with f16-exact steps', () => {
    expect(fillScale(1)).toEqual({ levels: 512, shift: 9 });
    for (const fanIn of [1, 4, 13, 16, 64, 1000, 2048, 7168, 16384, 1 << 20]) {
      const want = 1 / Math.sqrt(fanIn);
      const s = fillScale(want);
      expect(s.levels).toBeLessThanOrEqual(683);
      expect(s.shift).toBeLessThanOrEqual(MAX_SHIFT);
      expect(Math.abs(fillStd(s) / want - 1), `fan-in ${fanIn}`).toBeLessThanOrEqual(0.5 / s.levels + 1e-6);
    }
    expect(() => fillScale(0)).toThrow(/outside/);
    expect(() => fillScale(2 ** -14)).toThrow(/below/);
  });

  it('every value is exact in f16 and f32, never a subnormal, and the row fill equals the element fill', () => {
    for (const std of [1, 1 / Math.sqrt(7168), 1 / Math.sqrt(13)]) {
      const scale = fillScale(std);
      const row = fillRow(new Float64Array(5000), 3, FILL_TENSORS.W1, 17, scale);
      const f16 = roundToHalf(Float32Array.from(row));
      for (let c = 0; c < row.length; c++) {
        expect(f16[c]).toBe(row[c]);
        expect(row[c] === 0 || Math.abs(row[c]) >= 2 ** -14).toBe(true);
      }
      for (const c of [0, 1, 999, 4999]) expect(row[c]).toBe(fillValue(3, FILL_TENSORS.W1, 17, c, scale));
    }
  });

  it('is distributed as documented: mean 0, the chosen std, Irwin–Hall(3) kurtosis 2.6, ±3σ bound', () => {
    for (const [std, tensor] of [
      [1, FILL_TENSORS.X],
      [1 / Math.sqrt(7168), FILL_TENSORS.W1],
    ] as const) {
      const scale = fillScale(std);
      const n = 1 << 20;
      const v = fillRow(new Float64Array(n), 11, tensor, 2, scale);
      const m = moments(v);
      const sigma = fillStd(scale);
      expect(Math.abs(m.mean)).toBeLessThan((4 * sigma) / Math.sqrt(n));
      expect(Math.abs(m.std / sigma - 1)).toBeLessThan(0.003);
      expect(m.kurtosis).toBeCloseTo(2.6, 1);
      expect(v.reduce((top, x) => Math.max(top, Math.abs(x)), 0)).toBeLessThanOrEqual(3.001 * sigma);
    }
  });

  it('rows, tensors and seeds are independent: no row is a shifted copy of another', () => {
    const scale = fillScale(1);
    const cols = 4096;
    const rows = Array.from({ length: 64 }, (_, r) => fillRow(new Float64Array(cols), 5, FILL_TENSORS.W1, r, scale));
    rows.push(fillRow(new Float64Array(cols), 5, FILL_TENSORS.W3, 0, scale), fillRow(new Float64Array(cols), 6, FILL_TENSORS.W1, 0, scale));
    const dot = (a: Float64Array, b: Float64Array, shift: number) => {
      let s = 0;
      for (let c = 0; c + shift < cols; c++) s += a[c] * b[c + shift];
      return s / (cols - shift);
    };
    // Correlations of independent rows are ~N(0, 1/cols): 6/√cols is far outside chance.
    for (let a = 0; a < rows.length; a++)
      for (const b of [a + 1, a + 7])
        if (b < rows.length) for (const shift of [0, 1, 3]) expect(Math.abs(dot(rows[a], rows[b], shift)), `rows ${a},${b} shift ${shift}`).toBeLessThan(6 / Math.sqrt(cols));
  });

  it('an expert of the weights: W1, W3 at 1/√d and W2 at 1/√h, W3 only for SwiGLU', () => {
    const w = fillExpertWeights(9, 2, 64, 32, true);
    expect(w.W1).toHaveLength(64 * 32);
    expect(w.W3).not.toBeNull();
    expect(w.W1[5]).toBe(fillValue(9, FILL_TENSORS.W1, 2, 5, fillScale(fillStds(64, 32).W1)));
    expect(w.W2[70]).toBe(fillValue(9, FILL_TENSORS.W2, 2, 70, fillScale(1 / Math.sqrt(32))));
    expect(fillExpertWeights(9, 2, 64, 32, false).W3).toBeNull();
  });
});
