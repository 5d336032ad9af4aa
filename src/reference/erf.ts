/**
 * erf, erfc and the activations of docs/design.md#the-layer in float64. JavaScript has no erf, and the
 * reference's finite-difference tests need one good to ~1e-15, so it is built here from two
 * expansions that each converge fast where they are used:
 * - |x| < 2: erf(x) = (2/√π)·x·e^{-x²}·Σ_n (2x²)^n / (1·3·…·(2n+1)). Every term is positive,
 *   so unlike the alternating Taylor series nothing cancels (that one loses ~e^{x²} in digits).
 * - |x| ≥ 2 for erf (≥ 1.5 for erfc): erfc(x) by its continued fraction
 *   (e^{-x²}/√π)/(x + ½/(x + 1/(x + 3⁄2/(x + …)))), evaluated with the modified Lentz method;
 *   it needs ≤ ~60 terms from 2 on, ~90 at 1.5, and converges too slowly further in.
 * Measured against mpmath on 0.001..7 (step 0.001): erf within 1.01e-15 relative; erfc within
 * 3e-15 relative for x ≥ 1.5 and 9e-16 absolute below (erfc ≥ 0.03 there: ≤ 3e-14 relative).
 */

const TWO_OVER_SQRT_PI = 1.1283791670955126; // 2/√π
const ONE_OVER_SQRT_PI = 0.5641895835477563; // 1/√π
const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 0.3989422804014327; // 1/√(2π)

/**
 * e^{-x²} to about one ulp. Rounding x² first would cost x²·ε of relative accuracy (1e-15 at
 * x = 3), so x is split as xh + xl with xh on 24 bits: xh² is then exact, and the small rest
 * (x − xh)(x + xh) goes in a second exponential.
 */
function expMinusSquare(x: number): number {
  const xh = Math.fround(x);
  return Math.exp(-xh * xh) * Math.exp(-(x - xh) * (x + xh));
}

/** erf(x) by the positive series; used for |x| < 2 (≤ ~40 terms). */
function erfSeries(x: number): number {
  const twoX2 = 2 * x * x;
  let term = 1;
  let sum = 1;
  for (let n = 1; n < 200; n++) {
    term *= twoX2 / (2 * n + 1);
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return TWO_OVER_SQRT_PI * x * expMinusSquare(x) * sum;
}

/** erfc(x) for x ≥ 1.5 by the continued fraction (modified Lentz). */
function erfcContinuedFraction(x: number): number {
  if (x > 27) return 0; // e^{-x²} underflows below the smallest subnormal
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    d = x + a * d;
    if (d === 0) d = tiny;
    c = x + a / c;
    if (c === 0) c = tiny;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return (ONE_OVER_SQRT_PI * expMinusSquare(x)) / f;
}

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 2) return erfSeries(x);
  const tail = erfcContinuedFraction(ax);
  return x > 0 ? 1 - tail : tail - 1;
}

/** 1 − erf(x) without the cancellation for large x. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x >= 1.5) return erfcContinuedFraction(x);
  if (x <= -1.5) return 2 - erfcContinuedFraction(-x);
  return 1 - erfSeries(x);
}

/** Φ(x), the standard normal CDF, through erfc so that the far left tail keeps its relative precision. */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x * SQRT1_2);
}

/** φ(x), the standard normal density. */
export function normalPdf(x: number): number {
  return INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

/** Exact GELU, x·Φ(x) (not the tanh approximation). */
export function gelu(x: number): number {
  return x * normalCdf(x);
}

/** d/dx x·Φ(x) = Φ(x) + x·φ(x). */
export function geluGrad(x: number): number {
  return normalCdf(x) + x * normalPdf(x);
}

/** σ(x) written so that neither branch overflows e^{|x|}. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

export function silu(x: number): number {
  return x * sigmoid(x);
}

/** d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x))). */
export function siluGrad(x: number): number {
  const s = sigmoid(x);
  return s * (1 + x * (1 - s));
}
