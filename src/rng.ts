/**
 * The documented seeded generator behind every input the tool uses (docs/design.md#inputs), so that a
 * verify dump, a GPU run and the float64 reference all see the same numbers for one --seed,
 * on any machine and Node version.
 *
 * - Seeding: splitmix32 (the 32-bit splitmix variant: add the golden-ratio constant 0x9e3779b9,
 *   then the murmur3 finaliser) expands the 32-bit seed into the four words of xoshiro128**.
 *   It cannot produce the all-zero state xoshiro must avoid except by a 2^-128 accident, which
 *   is checked anyway.
 * - Stream: xoshiro128** (Blackman & Vigna), 32 bits a step, all arithmetic in Math.imul and
 *   unsigned shifts so it is exact in JavaScript.
 * - Uniforms: 53-bit doubles in [0, 1) from two consecutive 32-bit outputs (27 + 26 bits).
 * - Normals: Box–Muller on two uniforms, using both the cosine and the sine value (the sine
 *   one is kept for the next draw), so each pair of normals costs four 32-bit outputs.
 *   u1 is taken as 1 − U so the logarithm never sees 0.
 * Values are drawn in double precision, scaled, then rounded once to float32.
 */
import type { LayerConfig } from './config.js';

export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | null = null;

  constructor(seed: number) {
    let state = seed >>> 0;
    const splitmix32 = (): number => {
      state = (state + 0x9e3779b9) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix32();
    this.s1 = splitmix32();
    this.s2 = splitmix32();
    this.s3 = splitmix32();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32-bit output, as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992; // (hi·2^26 + lo) / 2^53
  }

  /** Standard normal N(0, 1) by Box–Muller. */
  normal(): number {
    if (this.spare !== null) {
      const value = this.spare;
      this.spare = null;
      return value;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - this.uniform()));
    const angle = 2 * Math.PI * this.uniform();
    this.spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }

  /** Fills a new float32 array with N(0, std²) values. */
  normalArray(length: number, std = 1): Float32Array {
    const out = new Float32Array(length);
    for (let i = 0; i < length; i++) out[i] = std * this.normal();
    return out;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Everything one step of the layer reads; row-major float32. */
export interface LayerInputs {
  /** [T, d] ~ N(0, 1) */
  X: Float32Array;
  /** [T, d] ~ N(0, 1): the upstream gradient of O */
  dO: Float32Array;
  /** [d, E] ~ N(0, 1/d) */
  Wr: Float32Array;
  /** [E, d, h] ~ N(0, 1/d) */
  W1: Float32Array;
  /** [E, h, d] ~ N(0, 1/h) */
  W2: Float32Array;
  /** [E, d, h] ~ N(0, 1/d); SwiGLU only, else null */
  W3: Float32Array | null;
}

/**
 * Inputs for `config` from one stream seeded with config.seed. The draw order is fixed and
 * part of the format: X, dO, Wr, W1, W3 (SwiGLU only; skipped, not drawn, otherwise), W2.
 * Changing it changes every dump and baseline, so don't.
 */
export function generateInputs(config: LayerConfig): LayerInputs {
  const { tokens: T, hidden: d, ffn: h, experts: E } = config;
  const rng = new Xoshiro128(config.seed);
  const X = rng.normalArray(T * d);
  const dO = rng.normalArray(T * d);
  const Wr = rng.normalArray(d * E, 1 / Math.sqrt(d));
  const W1 = rng.normalArray(E * d * h, 1 / Math.sqrt(d));
  const W3 = config.activation === 'swiglu' ? rng.normalArray(E * d * h, 1 / Math.sqrt(d)) : null;
  const W2 = rng.normalArray(E * h * d, 1 / Math.sqrt(h));
  return { X, dO, Wr, W1, W2, W3 };
}
