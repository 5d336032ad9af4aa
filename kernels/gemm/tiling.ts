/**
 * The tilings the GEMM core is instantiated with: which output tile a workgroup computes
 * (`tileOf`, in WGSL, over the core's `Tile` struct, `TM` and `TN`), their uniform parameters,
 * and how a reduction's output reaches storage. Dense rows for plain products, expert segments
 * for the routed-row GEMMs, per-segment reductions for the weight gradients.
 */
import { LARGE_TILE, TILE_M, type TileShape } from './core.js';

/**
 * Tile shapes of the routed-row GEMMs, shared by every strategy's expert GEMMs (segments of
 * zero-buffer, MegaBlocks and ScatterMoE; capacity slots of Tutel and GShard), so that they differ
 * in dispatch, not in tiling. The routing metadata counts row tiles of TILE_M (64) rows, the SIMT
 * engine's height; the matrix engine takes 128 rows: on the H100 a 128×128 tile ran the dense
 * product at 114 TFLOP/s against 72 for 64×128 (docs/performance.md, session 6), so it wins even
 * where segments average 128 rows (DeepSeek-like: about 2/3 of a 128-row tile used against 4/5 of
 * 64-row ones). Its grid stays counted in metadata tiles; tiles past a segment's end exit.
 */
// Both carry class 'segment': a tuning table's entry may change their matrix tile (src/gpu/tuning.ts).
export const SEGMENT_TILE: TileShape = { m: TILE_M, n: 128, matrix: { m: 128, n: 128 }, class: 'segment' };
/** Segment GEMMs whose B is loaded along K (transposed weights): BK 16 beat BK 8 there on the H200. */
export const TRANSPOSED_SEGMENT_TILE: TileShape = { ...SEGMENT_TILE, k: 16 };
/** Weight gradients tile their [d,h] outputs, never a segment: the large tile. A tuning table's 'reduce' entry may change it on the matrix engine. */
export const REDUCE_TILE: TileShape = { ...LARGE_TILE, class: 'reduce' };

/**
 * Tiling over rows of a dense [M, N] output: wg.x = row tile, wg.y = column tile.
 * Params: M, N, K.
 */
export const DENSE_ROWS_TILING = `
fn tileOf(wg: vec3u) -> Tile {
  var t: Tile;
  t.seg = 0u;
  t.m0 = wg.x * TM;
  t.mEnd = min(t.m0 + TM, P.M);
  t.n0 = wg.y * TN;
  t.nEnd = min(t.n0 + TN, P.N);
  t.kBegin = 0u;
  t.kEnd = P.K;
  t.valid = t.m0 < t.mEnd && t.n0 < t.nEnd;
  return t;
}`;

/**
 * Tiling over the rows of contiguous segments (one per expert, or per expert and slot) without
 * padding: segment e holds rows [rowOffsets[rowBase + e·rowStride], rowOffsets[… + 1]) and its
 * first tile is tileOffsets[tileBase + e]. wg.x = global tile (binary search for its segment),
 * wg.y = column tile. Only segments in [segBegin, segEnd) and rows in [rowBegin, rowEnd)
 * (one weight chunk, one activation chunk) are computed by a dispatch.
 * Params: N, K, segCount, rowBase, rowStride, tileBase, segBegin, segEnd, rowBegin, rowEnd.
 */
export function segmentRowsTiling(rowOffsets: string, tileOffsets: string): string {
  return `
fn tileOf(wg: vec3u) -> Tile {
  var t: Tile;
  t.valid = false;
  let wid = wg.x;
  if (wid >= ${tileOffsets}[P.tileBase + P.segCount]) { return t; }
  var lo = 0u;
  var hi = P.segCount - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (${tileOffsets}[P.tileBase + mid] <= wid) { lo = mid; } else { hi = mid - 1u; }
  }
  let seg = lo;
  if (seg < P.segBegin || seg >= P.segEnd) { return t; }
  let start = ${rowOffsets}[P.rowBase + seg * P.rowStride];
  let end = ${rowOffsets}[P.rowBase + seg * P.rowStride + 1u];
  let m0 = start + (wid - ${tileOffsets}[P.tileBase + seg]) * TM;
  t.seg = seg;
  t.m0 = max(m0, P.rowBegin);
  t.mEnd = min(min(m0 + TM, end), P.rowEnd);
  t.n0 = wg.y * TN;
  t.nEnd = min(t.n0 + TN, P.N);
  t.kBegin = 0u;
  t.kEnd = P.K;
  t.valid = t.m0 < t.mEnd && t.n0 < t.nEnd;
  return t;
}`;
}

/**
 * Tiling of per-segment reductions C_e = Σ_{rows r of e} A(r, ·)ᵀ B(r, ·) (weight gradients):
 * wg.z = segment within [segBegin, segEnd), wg.x/wg.y = output tile; the reduction runs over
 * the segment's rows clipped to [rowBegin, rowEnd). Row chunks are reduced one dispatch after
 * another: the first ('store') writes every tile, zeros where a segment has no rows in it, so the
 * output needs no clearing; later ones ('add', see reduceStore) skip empty segments.
 * Params: M, N, segBegin, segEnd, rowBase, rowStride, rowBegin, rowEnd.
 */
export function segmentReduceTiling(rowOffsets: string, mode: ReduceMode = 'add'): string {
  return `
fn tileOf(wg: vec3u) -> Tile {
  var t: Tile;
  let seg = P.segBegin + wg.z;
  t.seg = seg;
  t.m0 = wg.x * TM;
  t.mEnd = min(t.m0 + TM, P.M);
  t.n0 = wg.y * TN;
  t.nEnd = min(t.n0 + TN, P.N);
  t.kBegin = max(${rowOffsets}[P.rowBase + seg * P.rowStride], P.rowBegin);
  t.kEnd = min(${rowOffsets}[P.rowBase + seg * P.rowStride + 1u], P.rowEnd);
  t.valid = seg < P.segEnd && t.m0 < t.mEnd && t.n0 < t.nEnd${mode === 'store' ? '' : ' && t.kBegin < t.kEnd'};
  return t;
}`;
}

/** How a reduction's output tile reaches storage: written (first row chunk) or added to it. */
export type ReduceMode = 'store' | 'add';

/**
 * WGSL statement for a reduction's output. The mode is compiled in, not a runtime branch: a
 * branch in the dual weight-gradient epilogue made that kernel 11× slower on the H200.
 */
export function reduceStore(target: string, index: string, value: string, mode: ReduceMode): string {
  return mode === 'store' ? `${target}[${index}] = dt(${value});` : `${target}[${index}] = dt(f32(${target}[${index}]) + ${value});`;
}

/** The experts and rows one dispatch covers: one weight chunk, one activation chunk (both tilings). */
const SEGMENT_RANGE_PARAMS = [
  { name: 'segBegin', type: 'u32' },
  { name: 'segEnd', type: 'u32' },
  { name: 'rowBase', type: 'u32' },
  { name: 'rowStride', type: 'u32' },
  { name: 'rowBegin', type: 'u32' },
  { name: 'rowEnd', type: 'u32' },
] as const;

export const SEGMENT_ROWS_PARAMS = [
  { name: 'N', type: 'u32' },
  { name: 'K', type: 'u32' },
  { name: 'segCount', type: 'u32' },
  { name: 'tileBase', type: 'u32' },
  ...SEGMENT_RANGE_PARAMS,
] as const;

export const SEGMENT_REDUCE_PARAMS = [{ name: 'M', type: 'u32' }, { name: 'N', type: 'u32' }, ...SEGMENT_RANGE_PARAMS] as const;

export const DENSE_PARAMS = [
  { name: 'M', type: 'u32' },
  { name: 'N', type: 'u32' },
  { name: 'K', type: 'u32' },
] as const;

export function tiles(count: number, size: number): number {
  return Math.ceil(count / size);
}
