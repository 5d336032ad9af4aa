/**
 * How a GPU tensor is judged against the float64 reference (docs/design.md#numerics-and-the-reference): one
 * relative L2 error per tensor, with the two cases a plain ratio gets wrong made explicit:
 * NaN/Infinity never pass, and an exactly-zero reference (dWr when E = 1) must be matched
 * exactly.
 */

/** Default pass threshold for f32 storage and accumulation. */
export const F32_TOLERANCE = 1e-4;
/** f16 storage: 11-bit significands (rounding 4.9e-4) through a, b, u, O and dX, sums in f32. */
export const F16_TOLERANCE = 1e-2;

export function toleranceFor(dtype: 'f32' | 'f16'): number {
  return dtype === 'f16' ? F16_TOLERANCE : F32_TOLERANCE;
}

export interface TensorComparison {
  /** ‖got − ref‖₂ / max(‖ref‖₂, 1e-30·√n); Infinity when got has NaN/Infinity */
  relError: number;
  /** max |got − ref|; Infinity when got has NaN/Infinity */
  maxAbsError: number;
  /** got holds a NaN or an infinity */
  hasNaN: boolean;
  count: number;
}

export function compareTensors(got: ArrayLike<number>, ref: ArrayLike<number>): TensorComparison {
  const n = ref.length;
  if (got.length !== n) throw new Error(`compareTensors: got has ${got.length} elements, the reference ${n}`);
  let hasNaN = false;
  let refNonFinite = false;
  let maxAbsError = 0;
  let refMax = 0;
  for (let i = 0; i < n; i++) {
    const g = got[i];
    const r = ref[i];
    if (!Number.isFinite(g)) hasNaN = true;
    if (!Number.isFinite(r)) refNonFinite = true;
    const diff = Math.abs(g - r);
    if (diff > maxAbsError) maxAbsError = diff;
    if (Math.abs(r) > refMax) refMax = Math.abs(r);
  }
  if (hasNaN || refNonFinite || maxAbsError === Infinity) return { relError: Infinity, maxAbsError: Infinity, hasNaN, count: n };
  if (refMax === 0) return { relError: maxAbsError === 0 ? 0 : Infinity, maxAbsError, hasNaN, count: n };
  if (maxAbsError === 0) return { relError: 0, maxAbsError, hasNaN, count: n };

  // Scaled sums of squares, so values beyond ~1e154 cannot overflow the norms.
  let diffSq = 0;
  let refSq = 0;
  for (let i = 0; i < n; i++) {
    const dv = (got[i] - ref[i]) / maxAbsError;
    const rv = ref[i] / refMax;
    diffSq += dv * dv;
    refSq += rv * rv;
  }
  const diffNorm = maxAbsError * Math.sqrt(diffSq);
  const refNorm = refMax * Math.sqrt(refSq);
  return { relError: diffNorm / Math.max(refNorm, 1e-30 * Math.sqrt(n)), maxAbsError, hasNaN, count: n };
}
