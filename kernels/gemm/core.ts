import type { DType } from '../../src/config.js';
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
const THREADS = 256;

/** Output tile of one workgroup: 16×16 threads, each (m/16)×(n/16) outputs; m, n ∈ {64, 128}. */
export interface TileShape {
  m: 64 | 128;
  n: 64 | 128;
  /** K step through workgroup memory [default: 8, the fastest on the H200: docs/performance.md]. */
  k?: 8 | 16 | 32;
  /**
   * Workgroup tile buffers [default: 1]. With 2 the next K step is stored into the other buffer
   * while this one is read, so one barrier per step instead of two (twice the workgroup memory).
   */
  stages?: 1 | 2;
  /**
   * Floats of padding after each K row of a workgroup tile [default: 0]. The register-staged
   * stores of an operand loaded along K (A row-major, transposed weights) write one K row per
   * 8 adjacent threads: unpadded, the rows start 128 floats apart and land in one memory bank.
   * Default 4: +3% on a 4096³ product, +60% with B loaded along K at BK 16 (docs/performance.md).
   */
  pad?: 0 | 4;
}

export const DEFAULT_TILE: TileShape = { m: TILE_M, n: TILE_N };
/** For GEMMs whose rows are not segmented by expert (dense, weight gradients). */
export const LARGE_TILE: TileShape = { m: 128, n: 128 };

export interface GemmBinding {
  name: string;
  /** 'dt': a float tensor stored as the spec's dtype (loads convert to f32, stores back). */
  type: 'f32' | 'u32' | 'i32' | 'dt';
  access: 'read' | 'read_write';
}

export interface GemmSpec {
  name: string;
  /** Storage type of the 'dt' bindings [default: f32]; the tiles and accumulators are f32 either way. */
  dtype?: DType;
  /** Two B operands sharing A (e.g. W1 and W3 for SwiGLU), two accumulators. */
  dual?: boolean;
  /** Which index of A is contiguous in memory: tile loads walk it with adjacent threads. */
  aContiguous: 'k' | 'm';
  bContiguous: 'n' | 'k';
  bindings: readonly GemmBinding[];
  params: KernelSource['params'];
  functions: string;
  tile?: TileShape;
  /**
   * Replaces the default epilogue (storeC per output). It sees t, tx, ty, li, wg and the
   * accumulators: output (i, j) of this thread, i < RM, j < RN, is row t.m0 + accRow(ty, i),
   * column t.n0 + accCol(tx, j), value acc[i * RN4 + j / 4u][j % 4u] (acc2 likewise).
   */
  epilogue?: string;
  /** Extra module-scope WGSL (workgroup arrays for custom epilogues). */
  moduleScope?: string;
}

/**
 * Register-staged tile loads: thread li loads elements li, li + 256, … of the TK×outer tile
 * into registers (adjacent threads on the memory-contiguous index), later stored to workgroup
 * memory. Loading the next tile while the current one is multiplied hides global latency.
 */
function stageLoad(reg: string, count: number, contiguous: 'inner' | 'outer', outer: number, load: string, outerIdx: string, end: string, TILE_K: number): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const e = `(li + ${i * THREADS}u)`;
    const kk = contiguous === 'inner' ? `${e} % ${TILE_K}u` : `${e} / ${outer}u`;
    const oo = contiguous === 'inner' ? `${e} / ${TILE_K}u` : `${e} % ${outer}u`;
    lines.push(`{ let ${outerIdx} = ${outerIdx}0 + ${oo}; let k = k0 + ${kk}; ${reg}[${i}] = select(0.0, ${load.replace('%M%', outerIdx)}, ${outerIdx} < ${end} && k < t.kEnd); }`);
  }
  return lines.join('\n      ');
}

function stageStore(reg: string, target: string, count: number, contiguous: 'inner' | 'outer', outer: number, TILE_K: number, base: string, rowFloats: number): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const e = `(li + ${i * THREADS}u)`;
    const kk = contiguous === 'inner' ? `${e} % ${TILE_K}u` : `${e} / ${outer}u`;
    const oo = contiguous === 'inner' ? `${e} / ${TILE_K}u` : `${e} % ${outer}u`;
    lines.push(`{ let s = ${kk} * ${rowFloats}u + ${oo}; ${target}[${base} + s / 4u][s % 4u] = ${reg}[${i}]; }`);
  }
  return lines.join('\n    ');
}

export function gemmSource(spec: GemmSpec): KernelSource {
  const dual = spec.dual ?? false;
  const tile = spec.tile ?? DEFAULT_TILE;
  const TILE_K = tile.k ?? 8;
  const stages = tile.stages ?? 1;
  const pad = tile.pad ?? 4;
  const A_ROW = (tile.m + pad) / 4;
  const B_ROW = (tile.n + pad) / 4;
  const A_VECS = TILE_K * A_ROW;
  const B_VECS = TILE_K * B_ROW;
  const RM = tile.m / 16;
  const RN = tile.n / 16;
  const RM4 = RM / 4;
  const RN4 = RN / 4;
  const LA = (TILE_K * tile.m) / THREADS;
  const LB = (TILE_K * tile.n) / THREADS;
  const aMode = spec.aContiguous === 'k' ? 'inner' : 'outer';
  const bMode = spec.bContiguous === 'k' ? 'inner' : 'outer';
  const storage = spec.bindings.map((b) => b.access);
  const prelude = bindingPrelude({ bindings: storage, params: spec.params }, spec.bindings.map((b) => b.name), spec.bindings.map((b) => b.type), spec.dtype ?? 'f32');
  const defaultEpilogue = `
  for (var i = 0u; i < RM; i++) {
    let m = t.m0 + accRow(ty, i);
    if (m >= t.mEnd) { continue; }
    for (var j = 0u; j < RN; j++) {
      let n = t.n0 + accCol(tx, j);
      if (n < t.nEnd) { storeC(t, m, n, acc[i * RN4 + j / 4u][j % 4u]${dual ? ', acc2[i * RN4 + j / 4u][j % 4u]' : ''}); }
    }
  }`;
  const fmas: string[] = [];
  for (let qa = 0; qa < RM4; qa++)
    for (let r = 0; r < 4; r++)
      for (let qb = 0; qb < RN4; qb++) {
        const i = (qa * 4 + r) * RN4 + qb;
        const comp = 'xyzw'[r];
        fmas.push(`acc[${i}] = fma(vec4f(a${qa}.${comp}), b${qb}, acc[${i}]);`);
        if (dual) fmas.push(`acc2[${i}] = fma(vec4f(a${qa}.${comp}), c${qb}, acc2[${i}]);`);
      }
  const reads = [
    ...Array.from({ length: RM4 }, (_, q) => `let a${q} = As[aBase + kk * ${A_ROW}u + ty + ${q * 16}u];`),
    ...Array.from({ length: RN4 }, (_, q) => `let b${q} = Bs[bBase + kk * ${B_ROW}u + tx + ${q * 16}u];`),
    ...(dual ? Array.from({ length: RN4 }, (_, q) => `let c${q} = Bs2[bBase + kk * ${B_ROW}u + tx + ${q * 16}u];`) : []),
  ];
  const loads = (k0: string) =>
    [
      stageLoad('ra', LA, aMode, tile.m, 'loadA(t, m, k)', 'm', 'mEnd', TILE_K),
      stageLoad('rb', LB, bMode, tile.n, 'loadB(t, k, n)', 'n', 'nEnd', TILE_K),
      dual ? stageLoad('rc', LB, bMode, tile.n, 'loadB2(t, k, n)', 'n', 'nEnd', TILE_K) : '',
    ]
      .join('\n      ')
      .replaceAll('k0 +', `${k0} +`);
  const stores = (buffer: string) =>
    [
      stageStore('ra', 'As', LA, aMode, tile.m, TILE_K, `${buffer} * ${A_VECS}u`, tile.m + pad),
      stageStore('rb', 'Bs', LB, bMode, tile.n, TILE_K, `${buffer} * ${B_VECS}u`, tile.n + pad),
      dual ? stageStore('rc', 'Bs2', LB, bMode, tile.n, TILE_K, `${buffer} * ${B_VECS}u`, tile.n + pad) : '',
    ].join('\n    ');
  const multiply = `for (var kk = 0u; kk < ${TILE_K}u; kk++) {
      ${reads.join('\n      ')}
      ${fmas.join('\n      ')}
    }`;
  // Store, barrier, fetch the next step into registers, multiply, barrier.
  const singleBuffered = `for (var k0 = t.kBegin; k0 < t.kEnd; k0 += ${TILE_K}u) {
    ${stores('0u')}
    workgroupBarrier();
    if (k0 + ${TILE_K}u < t.kEnd) {
      let kn = k0 + ${TILE_K}u;
      ${loads('kn')}
    }
    let aBase = 0u;
    let bBase = 0u;
    ${multiply}
    workgroupBarrier();
  }`;
  // Buffer \`cur\` is read while the next step goes into the other; the one barrier per step both
  // publishes the next step and tells every thread that the buffer it overwrites next is free.
  const doubleBuffered = `${stores('0u')}
  workgroupBarrier();
  var cur = 0u;
  for (var k0 = t.kBegin; k0 < t.kEnd; k0 += ${TILE_K}u) {
    let more = k0 + ${TILE_K}u < t.kEnd;
    if (more) {
      let kn = k0 + ${TILE_K}u;
      ${loads('kn')}
    }
    let aBase = cur * ${A_VECS}u;
    let bBase = cur * ${B_VECS}u;
    ${multiply}
    if (more) {
      let next = 1u - cur;
      ${stores('next')}
    }
    workgroupBarrier();
    cur = 1u - cur;
  }`;
  const code = `
${prelude}

const TM = ${tile.m}u;
const TN = ${tile.n}u;
const RM = ${RM}u;
const RN = ${RN}u;
const RN4 = ${RN4}u;

struct Tile {
  valid: bool,
  seg: u32,
  m0: u32, mEnd: u32,
  n0: u32, nEnd: u32,
  kBegin: u32, kEnd: u32,
}

// Thread (tx, ty) owns rows ty·4 + 64·q + r and columns tx·4 + 64·q + c: vec4 reads of
// workgroup memory are then contiguous across a warp.
fn accRow(ty: u32, i: u32) -> u32 { return (i / 4u) * 64u + ty * 4u + i % 4u; }
fn accCol(tx: u32, j: u32) -> u32 { return (j / 4u) * 64u + tx * 4u + j % 4u; }

var<workgroup> As: array<vec4f, ${stages * A_VECS}>;
var<workgroup> Bs: array<vec4f, ${stages * B_VECS}>;
${dual ? `var<workgroup> Bs2: array<vec4f, ${stages * B_VECS}>;` : ''}
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
  var acc: array<vec4f, ${RM * RN4}>;
  ${dual ? `var acc2: array<vec4f, ${RM * RN4}>;` : ''}
  var ra: array<f32, ${LA}>;
  var rb: array<f32, ${LB}>;
  ${dual ? `var rc: array<f32, ${LB}>;` : ''}
  {
    let k0 = t.kBegin;
      ${loads('k0')}
  }
  ${stages === 1 ? singleBuffered : doubleBuffered}
  ${spec.epilogue ?? defaultEpilogue}
}
`;
  return { name: spec.name, code, bindings: storage, params: spec.params };
}
