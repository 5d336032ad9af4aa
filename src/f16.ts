import type { DType } from './config.js';

/**
 * IEEE binary16 on the host: Node 20 has no Float16Array, so f16 tensors travel as raw 16-bit
 * words (Uint16Array) and are converted here, rounding to nearest even as the GPU does.
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Bits of the binary16 nearest to v (v is first rounded to f32; NaN stays NaN, overflow is ±∞). */
export function halfBits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: the value in units of 2^-24, rounded to nearest even.
    if (e < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - e;
    let half = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa moves into the exponent, which is the correctly rounded result.
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return sign | half;
}

let table: Float32Array | null = null;

/** The value of every binary16 bit pattern, built once. */
function halfTable(): Float32Array {
  if (table) return table;
  table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >>> 10) & 0x1f;
    const mantissa = bits & 0x3ff;
    table[bits] =
      exponent === 0x1f
        ? mantissa
          ? NaN
          : sign * Infinity
        : exponent === 0
          ? sign * mantissa * 2 ** -24
          : sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  return table;
}

export function toHalf(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = halfBits(values[i]);
  return out;
}

export function fromHalf(bits: Uint16Array): Float32Array {
  const t = halfTable();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  return out;
}

/** The values an f16 tensor would hold: what the reference must start from to match f16 storage. */
export function roundToHalf(values: Float32Array): Float32Array {
  const t = halfTable();
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = t[halfBits(values[i])];
  return out;
}

/** Bytes of one stored element of a floating tensor (bf16 only as a planning dtype: WGSL has no bf16). */
export function floatBytes(dtype: DType | 'bf16'): 2 | 4 {
  return dtype === 'f32' ? 4 : 2;
}
