import { describe, expect, it } from 'vitest';
import { layerConfig } from '../src/config.js';
import { generateInputs, Xoshiro128 } from '../src/rng.js';

function moments(data: Float32Array): { mean: number; variance: number } {
  let sum = 0;
  let sq = 0;
  for (const v of data) {
    sum += v;
    sq += v * v;
  }
  const mean = sum / data.length;
  return { mean, variance: sq / data.length - mean * mean };
}

describe('seeded generator', () => {
  it('is deterministic for one seed and sensitive to the seed', () => {
    const config = layerConfig({ tokens: 16, hidden: 8, ffn: 12, experts: 4, topK: 2, seed: 7 });
    const a = generateInputs(config);
    const b = generateInputs(config);
    for (const key of ['X', 'dO', 'Wr', 'W1', 'W2', 'W3'] as const) expect(a[key]).toEqual(b[key]);
    const c = generateInputs({ ...config, seed: 8 });
    expect(c.X).not.toEqual(a.X);
    expect(c.W2).not.toEqual(a.W2);
  });

  it('pins the stream (draw order and algorithm are part of the dump format)', () => {
    const rng = new Xoshiro128(1);
    const first = [rng.nextUint32(), rng.nextUint32(), rng.nextUint32()];
    const again = new Xoshiro128(1);
    expect([again.nextUint32(), again.nextUint32(), again.nextUint32()]).toEqual(first);
    for (const v of first) expect(Number.isInteger(v) && v >= 0 && v < 2 ** 32).toBe(true);
    const config = layerConfig({ tokens: 4, hidden: 3, ffn: 5, experts: 2, topK: 1, seed: 3 });
    const inputs = generateInputs(config);
    // X is the first draw: the same stream's first T·d normals.
    expect(inputs.X).toEqual(new Xoshiro128(3).normalArray(12));
  });

  it('has the documented shapes, and W3 only for SwiGLU', () => {
    const T = 6, d = 5, h = 7, E = 3;
    const swiglu = generateInputs(layerConfig({ tokens: T, hidden: d, ffn: h, experts: E, topK: 2 }));
    expect([swiglu.X.length, swiglu.dO.length, swiglu.Wr.length, swiglu.W1.length, swiglu.W2.length, swiglu.W3?.length]).toEqual([T * d, T * d, d * E, E * d * h, E * h * d, E * d * h]);
    const gelu = generateInputs(layerConfig({ tokens: T, hidden: d, ffn: h, experts: E, topK: 2, activation: 'gelu' }));
    expect(gelu.W3).toBeNull();
    // W3 is skipped, not drawn: everything before it is unchanged.
    expect(gelu.W1).toEqual(swiglu.W1);
  });

  it('draws N(0,1) inputs and N(0,1/fan_in) weights', () => {
    const d = 64, h = 128;
    const inputs = generateInputs(layerConfig({ tokens: 512, hidden: d, ffn: h, experts: 8, topK: 2, seed: 11 }));
    const check = (data: Float32Array, variance: number) => {
      const m = moments(data);
      const se = Math.sqrt(variance / data.length);
      expect(Math.abs(m.mean)).toBeLessThan(5 * se);
      expect(Math.abs(m.variance / variance - 1)).toBeLessThan(5 * Math.sqrt(2 / data.length));
    };
    check(inputs.X, 1);
    check(inputs.dO, 1);
    check(inputs.Wr, 1 / d);
    check(inputs.W1, 1 / d);
    check(inputs.W3 as Float32Array, 1 / d);
    check(inputs.W2, 1 / h);
  });

  it('uniforms cover [0,1) evenly', () => {
    const rng = new Xoshiro128(123);
    const bins = new Array<number>(10).fill(0);
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const u = rng.uniform();
      expect(u >= 0 && u < 1).toBe(true);
      bins[Math.floor(u * 10)]++;
    }
    for (const count of bins) expect(Math.abs(count - n / 10)).toBeLessThan(5 * Math.sqrt(n / 10));
  });
});
