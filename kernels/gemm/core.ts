import { bindingPrelude, type KernelSource } from '../program.js';

/**
 * The one GEMM core every strategy uses. It computes C[m, n] = Σ_k A(m, k)·B(k, n) for one
 * 64×64 output tile per workgroup (256 threads, 4×4 outputs each, K in steps of 16 through
 * workgroup memory). What A and B are — dense, gathered through an index list, computed on
 * load (silu(a)·b), transposed — and where C goes are supplied by the caller as WGSL
 * functions, so that strategies differ in dispatch and memory, never in the matmul.
 *
 * The caller's WGSL must define:
 *   fn tileOf(wg: vec3u) -> Tile            which tile (and segment) this workgroup computes
 *   fn loadA(t: Tile, m: u32, k: u32) -> f32
 *   fn loadB(t: Tile, k: u32, n: u32) -> f32   (and loadB2 when dual)
 *   fn storeC(t: Tile, m: u32, n: u32, c: f32)  (c: f32, c2: f32 when dual)
 * Loads are only called in range (m < mEnd, k < kEnd, n < nEnd); out-of-range operands are 0.
 */
export const TILE_M = 64;
export const TILE_N = 64;
export const TILE_K = 16;
const THREADS = 256;

export interface GemmBinding {
  name: string;
  type: 'f32' | 'u32' | 'i32';
  access: 'read' | 'read_write';
}

export interface GemmSpec {
  name: string;
  /** Two B operands sharing A (e.g. W1 and W3 for SwiGLU), two accumulators. */
  dual?: boolean;
  /** Which index of A is contiguous in memory: tile loads walk it with adjacent threads. */
  aContiguous: 'k' | 'm';
  bContiguous: 'n' | 'k';
  bindings: readonly GemmBinding[];
  params: KernelSource['params'];
  functions: string;
  /** Replaces the default epilogue (storeC per output); sees t, acc, acc2, tx, ty, li. */
  epilogue?: string;
  /** Extra module-scope WGSL (workgroup arrays for custom epilogues). */
  moduleScope?: string;
}

function tileLoad(target: string, contiguous: 'inner' | 'outer', outerSize: number, load: string, outerIdx: string, kIdx: string): string {
  // Element e of the tile: adjacent threads take adjacent addresses of the contiguous index.
  const kk = contiguous === 'inner' ? `e % ${TILE_K}u` : `e / ${outerSize}u`;
  const oo = contiguous === 'inner' ? `e / ${TILE_K}u` : `e % ${outerSize}u`;
  return `
    for (var i = 0u; i < ${(TILE_K * outerSize) / THREADS}u; i++) {
      let e = li + i * ${THREADS}u;
      let kk = ${kk};
      let oo = ${oo};
      let ${outerIdx} = ${outerIdx}0 + oo;
      let ${kIdx} = k0 + kk;
      var v = 0.0;
      if (${outerIdx} < ${outerIdx}End && ${kIdx} < t.kEnd) { v = ${load}; }
      ${target}[kk * ${outerSize}u + oo] = v;
    }`;
}

export function gemmSource(spec: GemmSpec): KernelSource {
  const dual = spec.dual ?? false;
  const storage = spec.bindings.map((b) => b.access);
  const prelude = bindingPrelude({ bindings: storage, params: spec.params }, spec.bindings.map((b) => b.name), spec.bindings.map((b) => b.type));
  const defaultEpilogue = `
  for (var i = 0u; i < 4u; i++) {
    let m = t.m0 + ty * 4u + i;
    if (m >= t.mEnd) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = t.n0 + tx * 4u + j;
      if (n < t.nEnd) { storeC(t, m, n, acc[i][j]${dual ? ', acc2[i][j]' : ''}); }
    }
  }`;
  const code = `
${prelude}

struct Tile {
  valid: bool,
  seg: u32,
  m0: u32, mEnd: u32,
  n0: u32, nEnd: u32,
  kBegin: u32, kEnd: u32,
}

var<workgroup> As: array<f32, ${TILE_K * TILE_M}>;
var<workgroup> Bs: array<f32, ${TILE_K * TILE_N}>;
${dual ? `var<workgroup> Bs2: array<f32, ${TILE_K * TILE_N}>;` : ''}
${spec.moduleScope ?? ''}

${spec.functions}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = tileOf(wg);
  if (!t.valid) { return; }
  let tx = lid.x;
  let ty = lid.y;
  let m0 = t.m0;
  let mEnd = t.mEnd;
  let n0 = t.n0;
  let nEnd = t.nEnd;
  var acc: array<vec4f, 4>;
  ${dual ? 'var acc2: array<vec4f, 4>;' : ''}
  for (var k0 = t.kBegin; k0 < t.kEnd; k0 += ${TILE_K}u) {
    ${tileLoad('As', spec.aContiguous === 'k' ? 'inner' : 'outer', TILE_M, 'loadA(t, m, k)', 'm', 'k')}
    ${tileLoad('Bs', spec.bContiguous === 'k' ? 'inner' : 'outer', TILE_N, 'loadB(t, k, n)', 'n', 'k')}
    ${dual ? tileLoad('Bs2', spec.bContiguous === 'k' ? 'inner' : 'outer', TILE_N, 'loadB2(t, k, n)', 'n', 'k') : ''}
    workgroupBarrier();
    for (var kk = 0u; kk < ${TILE_K}u; kk++) {
      let ab = kk * ${TILE_M}u + ty * 4u;
      let a = vec4f(As[ab], As[ab + 1u], As[ab + 2u], As[ab + 3u]);
      let bb = kk * ${TILE_N}u + tx * 4u;
      let b = vec4f(Bs[bb], Bs[bb + 1u], Bs[bb + 2u], Bs[bb + 3u]);
      acc[0] += a.x * b; acc[1] += a.y * b; acc[2] += a.z * b; acc[3] += a.w * b;
      ${
        dual
          ? `let b2 = vec4f(Bs2[bb], Bs2[bb + 1u], Bs2[bb + 2u], Bs2[bb + 3u]);
      acc2[0] += a.x * b2; acc2[1] += a.y * b2; acc2[2] += a.z * b2; acc2[3] += a.w * b2;`
          : ''
      }
    }
    workgroupBarrier();
  }
  ${spec.epilogue ?? defaultEpilogue}
}
`;
  return { name: spec.name, code, bindings: storage, params: spec.params };
}

/**
 * Tiling over rows of a dense [M, N] output: wg.x = row tile, wg.y = column tile.
 * Params: M, N, K.
 */
export const DENSE_ROWS_TILING = `
fn tileOf(wg: vec3u) -> Tile {
  var t: Tile;
  t.seg = 0u;
  t.m0 = wg.x * ${TILE_M}u;
  t.mEnd = min(t.m0 + ${TILE_M}u, P.M);
  t.n0 = wg.y * ${TILE_N}u;
  t.nEnd = min(t.n0 + ${TILE_N}u, P.N);
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
  let m0 = start + (wid - ${tileOffsets}[P.tileBase + seg]) * ${TILE_M}u;
  t.seg = seg;
  t.m0 = max(m0, P.rowBegin);
  t.mEnd = min(min(m0 + ${TILE_M}u, end), P.rowEnd);
  t.n0 = wg.y * ${TILE_N}u;
  t.nEnd = min(t.n0 + ${TILE_N}u, P.N);
  t.kBegin = 0u;
  t.kEnd = P.K;
  t.valid = t.m0 < t.mEnd && t.n0 < t.nEnd;
  return t;
}`;
}

/**
 * Tiling of per-segment reductions C_e = Σ_{rows r of e} A(r, ·)ᵀ B(r, ·) (weight gradients):
 * wg.z = segment within [segBegin, segEnd), wg.x/wg.y = output tile; the reduction runs over
 * the segment's rows clipped to [rowBegin, rowEnd).
 * Params: M, N, segBegin, segEnd, rowBase, rowStride, rowBegin, rowEnd.
 */
export function segmentReduceTiling(rowOffsets: string): string {
  return `
fn tileOf(wg: vec3u) -> Tile {
  var t: Tile;
  let seg = P.segBegin + wg.z;
  t.seg = seg;
  t.m0 = wg.x * ${TILE_M}u;
  t.mEnd = min(t.m0 + ${TILE_M}u, P.M);
  t.n0 = wg.y * ${TILE_N}u;
  t.nEnd = min(t.n0 + ${TILE_N}u, P.N);
  t.kBegin = max(${rowOffsets}[P.rowBase + seg * P.rowStride], P.rowBegin);
  t.kEnd = min(${rowOffsets}[P.rowBase + seg * P.rowStride + 1u], P.rowEnd);
  t.valid = seg < P.segEnd && t.m0 < t.mEnd && t.n0 < t.nEnd && t.kBegin < t.kEnd;
  return t;
}`;
}

export const SEGMENT_ROWS_PARAMS = [
  { name: 'N', type: 'u32' },
  { name: 'K', type: 'u32' },
  { name: 'segCount', type: 'u32' },
  { name: 'rowBase', type: 'u32' },
  { name: 'rowStride', type: 'u32' },
  { name: 'tileBase', type: 'u32' },
  { name: 'segBegin', type: 'u32' },
  { name: 'segEnd', type: 'u32' },
  { name: 'rowBegin', type: 'u32' },
  { name: 'rowEnd', type: 'u32' },
] as const;

export const SEGMENT_REDUCE_PARAMS = [
  { name: 'M', type: 'u32' },
  { name: 'N', type: 'u32' },
  { name: 'segBegin', type: 'u32' },
  { name: 'segEnd', type: 'u32' },
  { name: 'rowBase', type: 'u32' },
  { name: 'rowStride', type: 'u32' },
  { name: 'rowBegin', type: 'u32' },
  { name: 'rowEnd', type: 'u32' },
] as const;

export const DENSE_PARAMS = [
  { name: 'M', type: 'u32' },
  { name: 'N', type: 'u32' },
  { name: 'K', type: 'u32' },
] as const;

export function tiles(count: number, size: number): number {
  return Math.ceil(count / size);
}
