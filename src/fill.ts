/**
 * The GPU fill of large layers (kernels/init.ts), replayed exactly on the host: the sampled
 * check regenerates an expert's weights here instead of reading gigabytes back (issue 29).
 * docs/design.md#inputs documents the format; in short:
 *
 * - Key: (seed, tensor, row, column) of the tensor's [rows, cols] layout. A weight tensor's row
 *   is an expert (W1 [E, d·h]), so an expert is generated alone; X and dO rows are tokens. The
 *   key never mentions the chunk a row is stored in, so the values do not depend on the
 *   adapter's binding size.
 * - Hash: integer only, u32 multiplies and shifts (Math.imul here, u32 arithmetic in WGSL),
 *   the 2-round "lowbias32" mixer of Chris Wellons's hash-prospector. Two 32-bit words per
 *   element: h1 from the key, h2 = mix(h1 ^ H2_SALT).
 * - Value: three 21-bit fields of (h1, h2) each mapped to a uniform integer in [0, m) by
 *   (field·m) >> 21 (bias below m/2²¹ ≤ 3·10⁻⁴); with S their sum, v = (2S − 3(m−1))·2^−q.
 *   |2S − 3(m−1)| ≤ 3(m−1) ≤ 2046 and 2^−q ≥ 2^−14, so v is exact in f16 (no subnormals) and
 *   in f32, and every device computes it exactly. v is a discrete Irwin–Hall(3) variable: mean
 *   0, standard deviation √(m²−1)·2^−q, bounded at about ±3σ (excess kurtosis −0.4, where a
 *   normal has 0): a rough N(0, σ²). m and q are chosen per tensor so that σ is the wanted one
 *   (1 for X and dO, 1/√fan_in for the weights) within 0.3%.
 */

/** Tensor ids of the key, in the order the layer fills them. */
export const FILL_TENSORS = { X: 0, dO: 1, Wr: 2, W1: 3, W3: 4, W2: 5 } as const;
export type FilledTensor = keyof typeof FILL_TENSORS;

/** Salts of the key's parts: arbitrary odd constants (fractional bits of √2, √3, √5, √7). */
export const SEED_SALT = 0x6a09e667;
export const TENSOR_SALT = 0xbb67ae85;
export const COLUMN_SALT = 0x3c6ef372;
export const H2_SALT = 0xa54ff53a;
/** Largest m: 3(m − 1) stays within f16's 11-bit integers. */
export const MAX_LEVELS = 683;
/** Smallest step 2^−14: f16's smallest normal, so no value is a subnormal a GPU may flush. */
export const MAX_SHIFT = 14;

/** m levels per field and the step 2^−q of one tensor's values. */
export interface FillScale {
  levels: number;
  shift: number;
}

/** The 32-bit mixer, exactly as kernels/init.ts's WGSL `mix`. */
export function mix32(value: number): number {
  let x = value >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** The (m, q) whose standard deviation √(m²−1)·2^−q is closest to `std` with the finest step allowed. */
export function fillScale(std: number): FillScale {
  if (!(std > 0 && std <= 4)) throw new RangeError(`fillScale: std ${std} is outside (0, 4]`);
  const shift = Math.min(MAX_SHIFT, Math.floor(Math.log2(MAX_LEVELS / std)));
  const levels = Math.round(std * 2 ** shift);
  if (levels < 4) throw new RangeError(`fillScale: std ${std} is below what steps of 2^-${MAX_SHIFT} can draw (fan-in beyond ~10⁸)`);
  return { levels, shift };
}

/** The standard deviation a FillScale draws. */
export function fillStd(s: FillScale): number {
  return Math.sqrt(s.levels * s.levels - 1) * 2 ** -s.shift;
}

/** Key of one row of one tensor: everything but the column. */
export function fillRowKey(seed: number, tensor: number, row: number): number {
  const tensorKey = mix32(mix32((seed ^ SEED_SALT) >>> 0) ^ Math.imul(tensor + 1, TENSOR_SALT));
  return mix32((tensorKey ^ row) >>> 0);
}

/** The column's part of the key, mixed so that two rows never see shifted copies of one sequence. */
export function fillColumnKey(col: number): number {
  return mix32((col ^ COLUMN_SALT) >>> 0);
}

/** The value at (row key, column key): the arithmetic of kernels/init.ts's `value`, exact in float64. */
function valueOf(rowKey: number, columnKey: number, m: number, centre: number, step: number): number {
  const h1 = mix32((columnKey ^ rowKey) >>> 0);
  const h2 = mix32((h1 ^ H2_SALT) >>> 0);
  const f3 = (((h1 & 0x7ff) << 10) | (h2 & 0x3ff)) >>> 0;
  const s = (((h1 >>> 11) * m) >>> 21) + (((h2 >>> 11) * m) >>> 21) + ((f3 * m) >>> 21);
  return (2 * s - centre) * step;
}

/** One element of a filled tensor. */
export function fillValue(seed: number, tensor: number, row: number, col: number, scale: FillScale): number {
  return valueOf(fillRowKey(seed, tensor, row), fillColumnKey(col), scale.levels, 3 * (scale.levels - 1), 2 ** -scale.shift);
}

/** Column keys reused by every row (the same for all tensors): the host fill's hot loop then mixes twice per element. */
let columnKeys = new Uint32Array(0);

function columnKeysUpTo(cols: number): Uint32Array {
  if (columnKeys.length < cols) {
    const grown = new Uint32Array(cols);
    grown.set(columnKeys);
    for (let c = columnKeys.length; c < cols; c++) grown[c] = fillColumnKey(c);
    columnKeys = grown;
  }
  return columnKeys;
}

/** Row `row` of a filled tensor (all `out.length` columns), as float64. */
export function fillRow(out: Float64Array, seed: number, tensor: number, row: number, scale: FillScale): Float64Array {
  const keys = columnKeysUpTo(out.length);
  const rowKey = fillRowKey(seed, tensor, row);
  const m = scale.levels;
  const centre = 3 * (m - 1);
  const step = 2 ** -scale.shift;
  for (let c = 0; c < out.length; c++) out[c] = valueOf(rowKey, keys[c], m, centre, step);
  return out;
}

/** The standard deviations of the layer's tensors (README: X, dO ~ N(0,1), weights ~ N(0, 1/fan_in)). */
export function fillStds(d: number, h: number): Record<FilledTensor, number> {
  return { X: 1, dO: 1, Wr: 1 / Math.sqrt(d), W1: 1 / Math.sqrt(d), W3: 1 / Math.sqrt(d), W2: 1 / Math.sqrt(h) };
}

export interface FilledWeights {
  W1: Float64Array;
  W3: Float64Array | null;
  W2: Float64Array;
}

/**
 * Expert e's weights as the GPU fill of `seed` made them, in float64 (W1, W3 [d,h], W2 [h,d]),
 * written into `into` when its arrays have the size (a worker refills one set per expert: fresh
 * 350 MB arrays at DeepSeek-V3-like sizes cost more in page faults than the fill itself).
 */
export function fillExpertWeights(seed: number, e: number, d: number, h: number, swiglu: boolean, into?: FilledWeights): FilledWeights {
  const std = fillStds(d, h);
  const n = d * h;
  const make = (name: FilledTensor, given: Float64Array | null | undefined) => fillRow(given?.length === n ? given : new Float64Array(n), seed, FILL_TENSORS[name], e, fillScale(std[name]));
  return { W1: make('W1', into?.W1), W3: swiglu ? make('W3', into?.W3) : null, W2: make('W2', into?.W2) };
}
