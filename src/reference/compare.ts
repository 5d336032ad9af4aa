/**
 * How a GPU tensor is judged against the float64 reference (docs/design.md#numerics-and-the-reference). One
 * function for verify, bench and the sampled check, so that they cannot disagree.
 *
 * A tensor passes when, over the elements compared (all of them, or a sample):
 *   ‖got − ref‖₂ ≤ rtol·‖ref‖₂ + atol·‖scale‖₂                      (L2 gate)
 *   max|got − ref| ≤ MAX_FACTOR·(rtol·rms(ref) + atol·rms(scale))   (largest-element gate)
 * and nothing is NaN or infinite. `scale` is, element by element, √(Σ terms²) of the sum the
 * reference computes for it: if each term is known only to the storage dtype's relative
 * precision (its operands are stored rounded), independent errors add up to atol·√(Σ terms²).
 * For a sum without cancellation that is about atol·|ref|, far below rtol·|ref|: the plain
 * relative test. Where terms cancel to almost nothing (dWr on a saturated router: ref ~1e-14,
 * terms ~1; dz's own cancellations are followed term by term, terms.ts) the floor takes over, as
 * numpy's allclose has atol. At f32 atol is one rounding unit; at f16 rtol and atol count the
 * f16 roundings of the stored intermediates (F16_TOLERANCE, F16_TERM_TOLERANCE below: the derivation
 * is in docs/design.md), so that a 0.5% systematic error fails there. An exactly-zero reference
 * everywhere (dWr when E = 1, where the GPU's softmax is exactly 1) must be matched exactly.
 */

/** Relative L2 tolerance for f32 storage and accumulation. */
export const F32_TOLERANCE = 1e-4;
/** f16's unit roundoff: a value stored rounded to nearest is within 2⁻¹¹ of itself, relatively. */
export const F16_UNIT_ROUNDOFF = 2 ** -11;
/**
 * f16 roundings of an output's own sum (docs/design.md#numerics-and-the-reference): the stored
 * result and the per-expert partial it is summed from (y of a pair, one expert's part of dX).
 */
export const F16_SUM_ROUNDINGS = 2;
/**
 * f16 roundings on the longest chain from the (exact, f16-rounded) inputs into one term of a
 * sum: dX and dW1 take da, made from the stored G, a and b, and itself stored. Each rounding moves
 * a term by at most 2⁻¹¹ of itself; independent terms' errors add up to that of √(Σ terms²).
 */
export const F16_TERM_ROUNDINGS = 4;
/** f16 storage: rtol from the sum's own roundings, 2·2⁻¹¹ ≈ 9.8e-4 (the floor below adds the terms'). */
export const F16_TOLERANCE = F16_SUM_ROUNDINGS * F16_UNIT_ROUNDOFF;
/** f16's floor per unit of √(Σ terms²): 4·2⁻¹¹ = 2⁻⁹. */
export const F16_TERM_TOLERANCE = F16_TERM_ROUNDINGS * F16_UNIT_ROUNDOFF;
/**
 * The largest element error may exceed the L2 bound's per-element share by this factor: random
 * rounding errors of 10⁵–10⁹ elements have a maximum ~4–6× their RMS; one wrong element is not
 * random and stands far above it.
 */
export const MAX_FACTOR = 16;

export interface Tolerance {
  rtol: number;
  /** Floor per unit of the √(Σ terms²) scale: f32's machine epsilon; at f16 the terms' roundings, F16_TERM_TOLERANCE. */
  atol: number;
}

export function toleranceFor(dtype: 'f32' | 'f16', rtol?: number): Tolerance {
  return dtype === 'f16' ? { rtol: rtol ?? F16_TOLERANCE, atol: F16_TERM_TOLERANCE } : { rtol: rtol ?? F32_TOLERANCE, atol: 2 ** -23 };
}

export interface TensorComparison {
  /** ‖got − ref‖₂ / max(‖ref‖₂, 1e-30·√n); Infinity when got has NaN/Infinity */
  relError: number;
  /** max |got − ref|; Infinity when got has NaN/Infinity */
  maxAbsError: number;
  /** ‖got − ref‖₂ over the L2 gate's bound: ≤ 1 passes */
  errorRatio: number;
  /** max |got − ref| over the largest-element gate's bound: ≤ 1 passes */
  maxErrorRatio: number;
  /** got holds a NaN or an infinity */
  hasNaN: boolean;
  count: number;
  pass: boolean;
}

/** Norms scaled by the largest magnitude, so values beyond ~1e154 cannot overflow. */
function norm2(n: number, at: (i: number) => number): number {
  let top = 0;
  for (let i = 0; i < n; i++) top = Math.max(top, Math.abs(at(i)));
  if (top === 0 || !Number.isFinite(top)) return top;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += (at(i) / top) ** 2;
  return top * Math.sqrt(sum);
}

/**
 * Compares got with ref under a tolerance (default f32's). Without `scale` the floor is absent:
 * the plain relative test (for comparisons of GPU runs with each other, or of references).
 */
export function compareTensors(got: ArrayLike<number>, ref: ArrayLike<number>, options: { scale?: ArrayLike<number> | null; tolerance?: Tolerance } = {}): TensorComparison {
  const n = ref.length;
  if (got.length !== n) throw new Error(`compareTensors: got has ${got.length} elements, the reference ${n}`);
  const scale = options.scale ?? null;
  if (scale && scale.length !== n) throw new Error(`compareTensors: scale has ${scale.length} elements, the reference ${n}`);
  const { rtol, atol } = options.tolerance ?? toleranceFor('f32');
  let hasNaN = false;
  let refNonFinite = false;
  let maxAbsError = 0;
  let refMax = 0;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(got[i])) hasNaN = true;
    if (!Number.isFinite(ref[i])) refNonFinite = true;
    maxAbsError = Math.max(maxAbsError, Math.abs(got[i] - ref[i]));
    refMax = Math.max(refMax, Math.abs(ref[i]));
  }
  const fail = (relError: number) => ({ relError, maxAbsError, errorRatio: Infinity, maxErrorRatio: Infinity, hasNaN, count: n, pass: false });
  if (hasNaN || refNonFinite || !(maxAbsError < Infinity)) return { ...fail(Infinity), maxAbsError: Infinity };
  if (n === 0 || maxAbsError === 0) return { relError: 0, maxAbsError, errorRatio: 0, maxErrorRatio: 0, hasNaN, count: n, pass: true };
  if (refMax === 0) return fail(Infinity);

  const diffNorm = norm2(n, (i) => got[i] - ref[i]);
  const refNorm = norm2(n, (i) => ref[i]);
  const scaleNorm = scale ? norm2(n, (i) => scale[i]) : 0;
  const bound = rtol * refNorm + atol * scaleNorm;
  const errorRatio = diffNorm / bound;
  const maxErrorRatio = maxAbsError / ((MAX_FACTOR * bound) / Math.sqrt(n));
  return {
    relError: diffNorm / Math.max(refNorm, 1e-30 * Math.sqrt(n)),
    maxAbsError,
    errorRatio,
    maxErrorRatio,
    hasNaN,
    count: n,
    pass: errorRatio <= 1 && maxErrorRatio <= 1,
  };
}
