import type { GemmSpec } from './core.js';

/**
 * The GEMM core's second engine: the K loop on subgroup matrices (tensor cores on NVIDIA,
 * WGSL `chromium_experimental_subgroup_matrix`, docs/design.md#tensor-cores). It keeps the
 * core's contract whole: the same tileOf / loadA / loadB hooks stage each K step of the tile
 * into workgroup memory, rounded to f16 (gathers through index lists and operands computed on
 * load happen there, as in the SIMT engine); 8 subgroups of 32 multiply 16×16×16 fragments
 * from those tiles into f32 accumulators; after the K loop the accumulators go back through
 * workgroup memory, band by band, into the per-thread `acc` registers the SIMT engine leaves,
 * so every epilogue (storeC, or a strategy's own) runs unchanged.
 *
 * Staging follows the operand's contiguous index in memory, so that adjacent threads read
 * adjacent addresses and write adjacent workgroup halves: A contiguous along k is staged
 * [m][k] and loaded row-major; A contiguous along m is staged [k][m] and loaded with the
 * column-major flag (the transpose is free). B likewise ([k][n], or [n][k] column-major).
 * Edge tiles are zero-filled in workgroup memory: fragment loads have no masks.
 *
 * `emulated` is the software stand-in CI runs (lavapipe has no subgroup matrices): the same
 * staging, tile order, fragment offsets, strides and column-major flags, band epilogue and
 * accumulator hand-off, with each 16×16×16 fragment product and fragment store done by plain
 * loops, a "subgroup" being 32 consecutive invocations. Only the three intrinsics differ.
 */

/** 8 subgroups of 32 (the engine runs only where subgroups are exactly 32 wide). */
const THREADS = 256;
/** Halves of padding after each staged row: rows then start 16 bytes apart in bank order. */
const STAGE_PAD = 8;
/** Workgroup bytes every adapter offers (lavapipe 32 KiB; NVIDIA 48 KiB). */
const WORKGROUP_BUDGET = 32768;

export interface SubgroupMatrixOptions {
  /** K step staged per barrier [default 32]. */
  k?: 16 | 32 | 64;
  /** Staging buffers [default 1]: with 2, the next step is staged while this one multiplies. */
  stages?: 1 | 2;
  /** Workgroup bytes the kernel may use [default 32 KiB, what every adapter offers]. */
  workgroupBytes?: number;
}

interface Layout {
  /** Staged as [outer][k] (row-major for A, column-major for B) when k is contiguous. */
  kInner: boolean;
  outer: number;
  stride: number;
  halves: number;
}

function layoutOf(kInner: boolean, outer: number, K: number): Layout {
  const stride = (kInner ? K : outer) + STAGE_PAD;
  return { kInner, outer, stride, halves: (kInner ? outer : K) * stride };
}

/** Subgroup grid over the tile: 8 subgroups, each an (m/SGM)×(n/SGN) block of 16×16 fragments. */
function subgroupGrid(m: number, n: number): [number, number] {
  if (m === n) return m === 128 ? [2, 4] : [4, 2];
  return m > n ? [4, 2] : [2, 4];
}

/**
 * Staging of one operand: registers → workgroup, 4 contiguous elements per thread per chunk,
 * zero outside the tile's range. The range test is a select, as in the SIMT engine, not a
 * branch: with a branch around each load the loads of a step were not issued together, and
 * zero-buffer's conf4 step took 629 ms instead of 362 on the H100 (docs/performance.md).
 * The hook is then called out of range too; Dawn's robustness clamps such reads.
 */
function staging(name: string, reg: string, lay: Layout, K: number, load: string, outerVar: string, outerEnd: string) {
  const inner = lay.kInner ? K : lay.outer;
  const chunks = (K * lay.outer) / (4 * THREADS);
  const loads: string[] = [];
  const stores: string[] = [];
  for (let c = 0; c < chunks; c++) {
    const e = `(li + ${c * THREADS}u)`;
    const i0 = `(${e} % ${inner / 4}u) * 4u`;
    const o = `${e} / ${inner / 4}u`;
    for (let v = 0; v < 4; v++) {
      const [kIdx, oIdx] = lay.kInner ? [`${i0} + ${v}u`, o] : [o, `${i0} + ${v}u`];
      const r = `${reg}[${c * 4 + v}]`;
      loads.push(`{ let ${outerVar} = ${outerVar}0 + ${oIdx}; let k = k0 + ${kIdx}; ${r} = f16(select(0.0, ${load}, ${outerVar} < ${outerEnd} && k < t.kEnd)); }`);
    }
    stores.push(`{ let s = buf * ${lay.halves}u + (${o}) * ${lay.stride}u + ${i0}; ${[0, 1, 2, 3].map((v) => `${name}[s + ${v}u] = ${reg}[${c * 4 + v}];`).join(' ')} }`);
  }
  return { count: chunks * 4, loads: loads.join('\n      '), stores: stores.join('\n    ') };
}

const SCALAR_BYTES: Record<string, number> = { f16: 2, f32: 4, u32: 4, i32: 4, vec4f: 16, vec4u: 16 };

/** Workgroup bytes a spec's own module scope declares (custom epilogues' arrays). */
export function workgroupBytesOf(wgsl: string): number {
  let bytes = 0;
  for (const m of wgsl.matchAll(/var<workgroup>\s*\w+\s*:\s*array<(\w+),\s*(\d+)>/g)) {
    const size = SCALAR_BYTES[m[1]];
    if (!size) throw new Error(`workgroup array of ${m[1]}: add its size to SCALAR_BYTES`);
    bytes += size * Number(m[2]);
  }
  return bytes;
}

export function subgroupMatrixMain(spec: GemmSpec, emulated: boolean): { enables: string; moduleScope: string; main: string } {
  const tile = spec.tile ?? { m: 64, n: 64 };
  const opts = spec.subgroupMatrix ?? {};
  // One staging buffer, K step 32: on the H100 the best of {1, 2} × {16, 32} for zero-buffer's
  // kernels at moeblaze-conf4 (docs/performance.md; measured with branch-guarded loads).
  const stages = opts.stages ?? 1;
  const dual = spec.dual ?? false;
  const budget = (opts.workgroupBytes ?? WORKGROUP_BUDGET) - workgroupBytesOf(spec.moduleScope ?? '');
  // K step 32 unless its staging and the smallest band do not fit: then 16.
  const fits = (k: number) => 2 * stages * (layoutOf(spec.aContiguous === 'k', tile.m, k).halves + (dual ? 2 : 1) * layoutOf(spec.bContiguous === 'k', tile.n, k).halves) + 16 * tile.n * 4 <= budget;
  const K = opts.k ?? (fits(32) ? 32 : 16);
  const [SGM, SGN] = subgroupGrid(tile.m, tile.n);
  const SUBM = tile.m / SGM;
  const SUBN = tile.n / SGN;
  const FM = SUBM / 16;
  const FN = SUBN / 16;
  const A = layoutOf(spec.aContiguous === 'k', tile.m, K);
  const B = layoutOf(spec.bContiguous === 'k', tile.n, K);
  const stagingBytes = 2 * stages * (A.halves + (dual ? 2 : 1) * B.halves);
  // Rows of the tile handed from fragments to registers per band: as many as the budget allows.
  const band = [128, 64, 32, 16].find((r) => r <= tile.m && stagingBytes + r * tile.n * 4 <= budget);
  if (!band) throw new Error(`GEMM "${spec.name}": subgroup-matrix tiles need ${stagingBytes} workgroup bytes, over ${budget}`);
  const sa = staging('As', 'ra', A, K, 'loadA(t, m, k)', 'm', 'mEnd');
  const sb = staging('Bs', 'rb', B, K, 'loadB(t, k, n)', 'n', 'nEnd');
  const sc = dual ? staging('Bs2', 'rc', B, K, 'loadB2(t, k, n)', 'n', 'nEnd') : null;
  const loads = (k0: string) => [sa.loads, sb.loads, sc?.loads ?? ''].join('\n      ').replaceAll('k0 +', `${k0} +`);

  const stores = () => [sa.stores, sb.stores, sc?.stores ?? ''].join('\n    ');

  // Offsets of fragment (row block i, column block j, k block kk) in the staged tiles; element
  // (r, c) of a fragment at offset o with stride s is o + r·s + c row-major, o + c·s + r
  // column-major (Dawn's subgroup_matrix.md).
  // Offsets of fragment (row block i, column block j, k block kk; WGSL expressions, so the
  // emulation can loop where the real engine unrolls) in the staged tiles. Element (r, c) of a
  // fragment at offset o with stride s is o + r·s + c row-major, o + c·s + r column-major
  // (Dawn's subgroup_matrix.md).
  const u = (x: string | number) => (typeof x === 'number' ? `${x}u` : x);
  const aOff = (i: string | number, kk: string | number) =>
    A.kInner ? `buf * ${A.halves}u + (sm * ${SUBM}u + (${u(i)}) * 16u) * ${A.stride}u + (${u(kk)}) * 16u` : `buf * ${A.halves}u + (${u(kk)}) * 16u * ${A.stride}u + sm * ${SUBM}u + (${u(i)}) * 16u`;
  const bOff = (j: string | number, kk: string | number) =>
    B.kInner ? `buf * ${B.halves}u + (sn * ${SUBN}u + (${u(j)}) * 16u) * ${B.stride}u + (${u(kk)}) * 16u` : `buf * ${B.halves}u + (${u(kk)}) * 16u * ${B.stride}u + sn * ${SUBN}u + (${u(j)}) * 16u`;
  const bandOff = (i: string | number, j: string | number) => `(sm * ${SUBM}u + (${u(i)}) * 16u - p * ${band}u) * ${tile.n}u + sn * ${SUBN}u + (${u(j)}) * 16u`;
  const inBand = (i: string | number) => `(sm * ${SUBM}u + (${u(i)}) * 16u) / ${band}u == p`;
  const accs = dual ? ['f', 'g'] : ['f'];
  const frags: string[] = [];
  const multiply: string[] = [];
  if (emulated) {
    // Loops, not one call per fragment: unrolled, lavapipe's LLVM took minutes per kernel.
    multiply.push(`for (var kk = 0u; kk < ${K / 16}u; kk++) {
      for (var f = 0u; f < ${FM * FN}u; f++) {
        let i = f / ${FN}u;
        let j = f % ${FN}u;
        ${accs.map((acc, second) => `emulatedMma(&${acc}E, f, ${aOff('i', 'kk')}, ${second}u, ${bOff('j', 'kk')}, lane);`).join('\n        ')}
      }
    }`);
  } else {
    for (let kk = 0; kk < K / 16; kk++) {
      for (let i = 0; i < FM; i++) multiply.push(`let a${kk}_${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&As, ${aOff(i, kk)}, ${!A.kInner}, ${A.stride}u);`);
      for (let j = 0; j < FN; j++) multiply.push(`let b${kk}_${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&Bs, ${bOff(j, kk)}, ${B.kInner}, ${B.stride}u);`);
      if (dual) for (let j = 0; j < FN; j++) multiply.push(`let c${kk}_${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&Bs2, ${bOff(j, kk)}, ${B.kInner}, ${B.stride}u);`);
      for (const acc of accs)
        for (let i = 0; i < FM; i++)
          for (let j = 0; j < FN; j++) {
            const idx = i * FN + j;
            if (kk === 0) frags.push(`var ${acc}${idx}: subgroup_matrix_result<f32, 16, 16>;`);
            multiply.push(`${acc}${idx} = subgroupMatrixMultiplyAccumulate(a${kk}_${i}, ${acc === 'f' ? 'b' : 'c'}${kk}_${j}, ${acc}${idx});`);
          }
    }
  }

  // Band hand-off: fragments whose rows lie in band p go to Cs, then each thread copies the
  // outputs it owns in the SIMT layout (accRow/accCol) into acc (acc2 for the second product).
  const handoff: string[] = [];
  for (const acc of accs) {
    const target = acc === 'f' ? 'acc' : 'acc2';
    const fragStores: string[] = [];
    if (emulated) {
      fragStores.push(`for (var f = 0u; f < ${FM * FN}u; f++) {
      let i = f / ${FN}u;
      let j = f % ${FN}u;
      if (${inBand('i')}) { emulatedStore(&${acc}E, f, ${bandOff('i', 'j')}, lane); }
    }`);
    } else {
      for (let i = 0; i < FM; i++)
        for (let j = 0; j < FN; j++) fragStores.push(`if (${inBand(i)}) { subgroupMatrixStore(&Cs, ${bandOff(i, j)}, ${acc}${i * FN + j}, false, ${tile.n}u); }`);
    }
    handoff.push(`for (var p = 0u; p < ${tile.m / band}u; p++) {
    workgroupBarrier();
    ${fragStores.join('\n    ')}
    workgroupBarrier();
    for (var i = 0u; i < RM; i++) {
      let row = accRow(ty, i);
      if (row / ${band}u != p) { continue; }
      for (var j = 0u; j < RN; j++) { ${target}[i * RN4 + j / 4u][j % 4u] = Cs[(row % ${band}u) * ${tile.n}u + accCol(tx, j)]; }
    }
  }`);
  }

  const emulation = emulated
    ? `
// Stand-in for subgroupMatrixMultiplyAccumulate and subgroupMatrixStore: lane l of a 32-lane
// group owns elements l, l + 32, … (row e / 16, column e % 16) of each 16×16 fragment.
fn emulatedMma(acc: ptr<function, array<f32, ${FM * FN * 8}>>, frag: u32, aOff: u32, second: u32, bOff: u32, lane: u32) {
  for (var r = 0u; r < 8u; r++) {
    let e = lane + 32u * r;
    let row = e / 16u;
    let col = e % 16u;
    var s = 0.0;
    for (var kk = 0u; kk < 16u; kk++) {
      let a = ${A.kInner ? 'As[aOff + row * ' + A.stride + 'u + kk]' : 'As[aOff + kk * ' + A.stride + 'u + row]'};
      let bi = ${B.kInner ? 'bOff + col * ' + B.stride + 'u + kk' : 'bOff + kk * ' + B.stride + 'u + col'};
      let b = ${dual ? 'select(Bs[bi], Bs2[bi], second == 1u)' : 'Bs[bi]'};
      s = fma(f32(a), f32(b), s);
    }
    (*acc)[frag * 8u + r] += s;
  }
}
fn emulatedStore(acc: ptr<function, array<f32, ${FM * FN * 8}>>, frag: u32, off: u32, lane: u32) {
  for (var r = 0u; r < 8u; r++) {
    let e = lane + 32u * r;
    Cs[off + (e / 16u) * ${tile.n}u + e % 16u] = (*acc)[frag * 8u + r];
  }
}`
    : '';

  const loop =
    stages === 1
      ? `for (var k0 = t.kBegin; k0 < t.kEnd; k0 += ${K}u) {
    let buf = 0u;
    ${stores()}
    workgroupBarrier();
    if (k0 + ${K}u < t.kEnd) {
      let kn = k0 + ${K}u;
      ${loads('kn')}
    }
    ${multiply.join('\n    ')}
    workgroupBarrier();
  }`
      : `{
    let buf = 0u;
    ${stores()}
  }
  workgroupBarrier();
  var cur = 0u;
  for (var k0 = t.kBegin; k0 < t.kEnd; k0 += ${K}u) {
    let more = k0 + ${K}u < t.kEnd;
    if (more) {
      let kn = k0 + ${K}u;
      ${loads('kn')}
    }
    {
      let buf = cur;
      ${multiply.join('\n      ')}
    }
    if (more) {
      let buf = 1u - cur;
      ${stores()}
    }
    workgroupBarrier();
    cur = 1u - cur;
  }`;

  const main = `@compute @workgroup_size(${THREADS}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32${emulated ? '' : ', @builtin(subgroup_id) sg: u32'}) {
  let t = tileOf(wg);
  if (!t.valid) { return; }
  let tx = li % 16u;
  let ty = li / 16u;
  ${emulated ? `let sg = li / 32u;\n  let lane = li % 32u;` : ''}
  let sm = sg / ${SGN}u;
  let sn = sg % ${SGN}u;
  let m0 = t.m0;
  let mEnd = t.mEnd;
  let n0 = t.n0;
  let nEnd = t.nEnd;
  ${emulated ? accs.map((a) => `var ${a}E: array<f32, ${FM * FN * 8}>;`).join('\n  ') : frags.join('\n  ')}
  var ra: array<f16, ${sa.count}>;
  var rb: array<f16, ${sb.count}>;
  ${dual ? `var rc: array<f16, ${sc!.count}>;` : ''}
  {
    let k0 = t.kBegin;
      ${loads('k0')}
  }
  ${loop}
  // The SIMT engine's per-thread outputs, declared only now so they are not live in the K loop.
  var acc: array<vec4f, ${(tile.m / 16) * (tile.n / 64)}>;
  ${dual ? `var acc2: array<vec4f, ${(tile.m / 16) * (tile.n / 64)}>;` : ''}
  ${handoff.join('\n  ')}
  ${spec.epilogue ?? '%DEFAULT_EPILOGUE%'}
}`;
  const moduleScope = `var<workgroup> As: array<f16, ${stages * A.halves}>;
var<workgroup> Bs: array<f16, ${stages * B.halves}>;
${dual ? `var<workgroup> Bs2: array<f16, ${stages * B.halves}>;` : ''}
var<workgroup> Cs: array<f32, ${band * tile.n}>;
${emulation}`;
  const enables = emulated ? '' : `enable subgroups;\nenable chromium_experimental_subgroup_matrix;\ndiagnostic(off, chromium_experimental.subgroup_matrix_uniformity);`;
  return { enables, moduleScope, main };
}

