import { describe, expect, it } from 'vitest';
import { floatBytes, fromHalf, halfBits, roundToHalf, toHalf } from '../src/f16.js';

describe('host f16 conversion', () => {
  it('encodes exact values, the largest half, overflow, infinities, NaN and signed zero', () => {
    expect(halfBits(1)).toBe(0x3c00);
    expect(halfBits(-2)).toBe(0xc000);
    expect(halfBits(65504)).toBe(0x7bff);
    expect(halfBits(65520)).toBe(0x7c00); // halfway to the next power: rounds up to ∞
    expect(halfBits(Infinity)).toBe(0x7c00);
    expect(halfBits(-Infinity)).toBe(0xfc00);
    expect(halfBits(-0)).toBe(0x8000);
    expect(Number.isNaN(fromHalf(Uint16Array.of(halfBits(NaN)))[0])).toBe(true);
  });

  it('rounds to nearest, ties to even, in the normal and the subnormal range', () => {
    expect(halfBits(1 + 2 ** -11)).toBe(0x3c00); // tie between 1 and 1 + 2^-10: even (1)
    expect(halfBits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie: even mantissa 2
    expect(halfBits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // past the tie
    expect(halfBits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(halfBits(2 ** -25)).toBe(0x0000); // tie with 0: even
    expect(halfBits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 units: even
    expect(halfBits(2 ** -14 - 2 ** -25)).toBe(0x0400); // rounds up into the smallest normal
  });

  it('round-trips every finite half exactly', () => {
    const bits = Uint16Array.from({ length: 65536 }, (_, i) => i).filter((b) => (b & 0x7c00) !== 0x7c00);
    expect(Array.from(toHalf(fromHalf(bits)))).toEqual(Array.from(bits));
  });

  it('roundToHalf agrees with encoding then decoding, and element sizes follow the dtype', () => {
    const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i * 1.7) * 10 ** ((i % 9) - 4));
    expect(Array.from(roundToHalf(values))).toEqual(Array.from(fromHalf(toHalf(values))));
    expect([floatBytes('f32'), floatBytes('f16'), floatBytes('bf16')]).toEqual([4, 2, 2]);
  });
});
