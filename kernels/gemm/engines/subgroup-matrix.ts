import { kLoop, specializedKLoop } from '../k-loop.js';
import { epilogueOf, THREADS, TileRefusedError, type EngineTarget, type GemmBinding, type GemmEngineImpl, type GemmSpec, type SubgroupMatrixOptions } from '../spec.js';
import { stagingOf, type Operand } from './staging.js';
import { emulationWgsl } from './emulation.js';
import { DEFAULT_FRAGMENT, fragmentLabel, fragmentRefusal, type FragmentShape } from './fragment.js';

/**
 * The GEMM core's matrix engine: the K loop on subgroup matrices (tensor cores on NVIDIA, WGSL
 * `chromium_experimental_subgroup_matrix`, docs/design.md#tensor-cores). It keeps the core's
 * contract whole: the same tileOf / load hooks stage each K step of the tile into workgroup
 * memory as f16 (gathers through index lists and operands computed on load happen there);
 * the workgroup's subgroups multiply fragments of the adapter's shape (engines/fragment.ts; 16×16×16
 * with 8 subgroups of 32 on NVIDIA) from those tiles into f32 accumulators; after the
 * K loop the accumulators go back through workgroup memory, band by band, into the per-thread
 * `acc` registers the SIMT engine leaves, so every epilogue runs unchanged.
 *
 * Staging (engines/staging.ts) follows the operand's contiguous index, 8 halves per vector where
 * the spec has vector hooks; the workgroup tiles are arrays of vec4<f16> (one store per four
 * halves), so fragment offsets and strides are counted in vectors. A contiguous along k is
 * staged [m][k] and loaded row-major; A contiguous along m is staged [k][m] and loaded
 * column-major (the transpose is free). B likewise. Edge tiles are zero-filled: fragment loads
 * have no masks.
 *
 * `emulated` is the software stand-in CI runs (lavapipe has no subgroup matrices): the same
 * staging, tile order, fragment offsets, strides and majorness, band epilogue and accumulator
 * hand-off, with each fragment product and fragment store done by plain loops, a "subgroup" being
 * `subgroupSize` consecutive invocations. Only the three intrinsics differ.
 */

/** Halves of padding after each staged row: rows then start 16 bytes apart in bank order. */
const STAGE_PAD = 8;
/** Workgroup bytes every adapter offers (lavapipe 32 KiB; NVIDIA 48 KiB). */
const WORKGROUP_BUDGET = 32768;

/**
 * Subgroup grid over the tile (rows × columns of subgroups, all of the workgroup's): the
 * per-subgroup block of whole fragments with the fewest fragment loads per product, taller first.
 */
function subgroupGrid(m: number, n: number, f: FragmentShape, count: number): [number, number] | undefined {
  const options: [number, number][] = [];
  for (let r = 1; r <= count; r++) if (count % r === 0) options.push([r, count / r]);
  const valid = options.filter(([r, c]) => (m / r) % f.m === 0 && (n / c) % f.n === 0 && m / r >= f.m && n / c >= f.n);
  const cost = ([r, c]: [number, number]) => (m / r / f.m + n / c / f.n) / ((m / r / f.m) * (n / c / f.n));
  return valid.sort((x, y) => cost(x) - cost(y) || y[0] - x[0])[0];
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

function operand(name: string, reg: string, kInner: boolean, outer: number, K: number, which: 'a' | 'b' | 'b2', vector: boolean): Operand {
  const inner = kInner ? K : outer;
  const stride = inner + STAGE_PAD;
  const rows = kInner ? outer : K;
  return { name, reg, kInner, inner, rows, stride, halves: rows * stride, which, vector };
}

function emit(spec: GemmSpec, target: EngineTarget, emulated: boolean) {
  const tile = spec.tile ?? { m: 64, n: 64 };
  const opts = spec.subgroupMatrix ?? {};
  const F = target.fragment ?? DEFAULT_FRAGMENT;
  const SUBGROUPS = THREADS / F.subgroupSize;
  // Warp specialization: P subgroups stage into two buffers while the other C multiply.
  const P = opts.producers ?? 0;
  const C = SUBGROUPS - P;
  if (!Number.isInteger(P) || P < 0 || C < 1) throw new TileRefusedError(`GEMM "${spec.name}": ${P} producer subgroups of ${SUBGROUPS}; allowed: 0 to ${SUBGROUPS - 1}`);
  if (P && opts.diagnostic) throw new Error(`GEMM "${spec.name}": diagnostics run without producer subgroups`);
  const stages = P ? 2 : (opts.stages ?? 1);
  const dual = spec.dual ?? false;
  const budget = (opts.workgroupBytes ?? target.workgroupBytes ?? WORKGROUP_BUDGET) - workgroupBytesOf(spec.moduleScope ?? '');
  const vl = opts.vectors !== false ? spec.vectorLoads : undefined;
  const ops = (K: number) => {
    const a = operand('As', 'ra', spec.aContiguous === 'k', tile.m, K, 'a', !!vl && vl.a !== false);
    const b = operand('Bs', 'rb', spec.bContiguous === 'k', tile.n, K, 'b', !!vl && vl.b !== false);
    return dual ? [a, b, { ...b, name: 'Bs2', reg: 'rc', which: 'b2' as const }] : [a, b];
  };
  const stagingBytes = (K: number) => 2 * stages * ops(K).reduce((s, o) => s + o.halves, 0);
  // The longest K step whose staging and the smallest band fit: fewer barriers per product.
  // K 64 against 32 took the dense 8192³ product from 82 to 109 TFLOP/s (H100, robust; session 5).
  const fits = (k: number) => stagingBytes(k) + 16 * tile.n * 4 <= budget;
  const longest = opts.k === undefined || opts.fitK ? (opts.k ?? 64) : null;
  const K = longest === null ? opts.k! : (([64, 32, 16] as const).filter((k) => k <= longest).find(fits) ?? 16);
  const grid = opts.grid ?? subgroupGrid(tile.m, tile.n, F, C);
  if (!grid) throw new TileRefusedError(`GEMM "${spec.name}": a ${tile.m}×${tile.n} tile has no grid of ${C} subgroups on whole ${fragmentLabel(F)} fragments`);
  const [SGM, SGN] = grid;
  if (SGM * SGN !== C) throw new TileRefusedError(`GEMM "${spec.name}": subgroup grid ${SGM}×${SGN} is not ${C} subgroups`);
  if ((tile.m / SGM) % F.m !== 0 || (tile.n / SGN) % F.n !== 0) throw new TileRefusedError(`GEMM "${spec.name}": subgroup grid ${SGM}×${SGN} does not split a ${tile.m}×${tile.n} tile into whole ${fragmentLabel(F)} fragments`);
  const SUBM = tile.m / SGM;
  const SUBN = tile.n / SGN;
  const FM = SUBM / F.m;
  const FN = SUBN / F.n;
  // Accumulator elements each lane holds per fragment (the emulation's lane ownership).
  const PER_LANE = (F.m * F.n) / F.subgroupSize;
  const [A, B] = ops(K);
  const all = ops(K);
  // Rows of the tile handed from fragments to registers per band: as many as the budget allows.
  const band = [128, 64, 32, 16].find((r) => r <= tile.m && stagingBytes(K) + r * tile.n * 4 <= budget);
  if (!band) throw new TileRefusedError(`GEMM "${spec.name}": subgroup-matrix tiles need ${stagingBytes(K)} workgroup bytes of staging and ${16 * tile.n * 4} for the smallest hand-off band, over ${budget}`);
  const guards = opts.guards ?? 'edges';
  const staged = all.map((o) => stagingOf(o, K, vl?.when ?? 'false', !emulated, guards, P ? { threads: P * F.subgroupSize, index: 'pi' } : undefined));

  // Offsets (in vec4<f16> units) of fragment (row block i, column block j, k block kk) in the
  // staged tiles; WGSL expressions, so the emulation can loop where the real engine unrolls.
  // Element (r, c) of a fragment at offset o with stride s (halves) is o + r·s + c row-major,
  // o + c·s + r column-major (Dawn's subgroup_matrix.md).
  const u = (x: string | number) => (typeof x === 'number' ? `${x}u` : x);
  const aOff = (i: string | number, kk: string | number) =>
    A.kInner ? `(buf * ${A.halves}u + (sm * ${SUBM}u + (${u(i)}) * ${F.m}u) * ${A.stride}u + (${u(kk)}) * ${F.k}u) / 4u` : `(buf * ${A.halves}u + (${u(kk)}) * ${F.k}u * ${A.stride}u + sm * ${SUBM}u + (${u(i)}) * ${F.m}u) / 4u`;
  const bOff = (j: string | number, kk: string | number) =>
    B.kInner ? `(buf * ${B.halves}u + (sn * ${SUBN}u + (${u(j)}) * ${F.n}u) * ${B.stride}u + (${u(kk)}) * ${F.k}u) / 4u` : `(buf * ${B.halves}u + (${u(kk)}) * ${F.k}u * ${B.stride}u + sn * ${SUBN}u + (${u(j)}) * ${F.n}u) / 4u`;
  const bandOff = (i: string | number, j: string | number) => `(sm * ${SUBM}u + (${u(i)}) * ${F.m}u - p * ${band}u) * ${tile.n}u + sn * ${SUBN}u + (${u(j)}) * ${F.n}u`;
  const inBand = (i: string | number) => `(sm * ${SUBM}u + (${u(i)}) * ${F.m}u) / ${band}u == p`;
  const accs = dual ? ['f', 'g'] : ['f'];
  const frags: string[] = [];
  const multiply: string[] = [];
  if (emulated) {
    // Loops, not one call per fragment: unrolled, lavapipe's LLVM took minutes per kernel.
    multiply.push(`for (var kk = 0u; kk < ${K / F.k}u; kk++) {
        for (var f = 0u; f < ${FM * FN}u; f++) {
          let i = f / ${FN}u;
          let j = f % ${FN}u;
          ${accs.map((acc, second) => `emulatedMma(&${acc}E, f, ${aOff('i', 'kk')}, ${second}u, ${bOff('j', 'kk')}, lane);`).join('\n          ')}
        }
      }`);
  } else {
    const major = (col: boolean) => (col ? 'col_major' : 'row_major');
    // Dawn's types: left<T, K, M> is M×K, right<T, N, K> is K×N, result<T, N, M> is M×N.
    const left = `subgroup_matrix_left<f16, ${F.k}, ${F.m}>`;
    const right = `subgroup_matrix_right<f16, ${F.n}, ${F.k}>`;
    // 'fragments-once' (a measurement switch) loads the first step's fragments into variables
    // declared before the K loop and only multiplies in it.
    const once = opts.diagnostic === 'fragments-once';
    const fragLoads: string[] = [];
    const load = (name: string, type: string, call: string) => {
      if (once) frags.push(`var ${name}: ${type};`);
      (once ? fragLoads : multiply).push(`${once ? '' : 'let '}${name} = ${call};`);
    };
    for (let kk = 0; kk < K / F.k; kk++) {
      for (let i = 0; i < FM; i++) load(`a${kk}_${i}`, left, `subgroupMatrixLoad<${left}, ${major(!A.kInner)}>(&As, ${aOff(i, kk)}, ${A.stride / 4}u)`);
      for (let j = 0; j < FN; j++) load(`b${kk}_${j}`, right, `subgroupMatrixLoad<${right}, ${major(B.kInner)}>(&Bs, ${bOff(j, kk)}, ${B.stride / 4}u)`);
      if (dual) for (let j = 0; j < FN; j++) load(`c${kk}_${j}`, right, `subgroupMatrixLoad<${right}, ${major(B.kInner)}>(&Bs2, ${bOff(j, kk)}, ${B.stride / 4}u)`);
      for (const acc of accs)
        for (let i = 0; i < FM; i++)
          for (let j = 0; j < FN; j++) {
            const idx = i * FN + j;
            if (kk === 0) frags.push(`var ${acc}${idx}: subgroup_matrix_result<f32, ${F.n}, ${F.m}>;`);
            multiply.push(`${acc}${idx} = subgroupMatrixMultiplyAccumulate(a${kk}_${i}, ${acc === 'f' ? 'b' : 'c'}${kk}_${j}, ${acc}${idx});`);
          }
    }
    if (once) multiply.unshift(`if (kb == t.kBegin) {\n${fragLoads.join('\n')}\n}`);
  }

  // Band hand-off: fragments whose rows lie in band p go to Cs, then each thread copies the
  // outputs it owns in the SIMT layout (accRow/accCol) into acc (acc2 for the second product).
  const handoff: string[] = [];
  for (const acc of accs) {
    const dst = acc === 'f' ? 'acc' : 'acc2';
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
    const stores = P ? `if (!producer) {\n    ${fragStores.join('\n    ')}\n    }` : fragStores.join('\n    ');
    handoff.push(`for (var p = 0u; p < ${tile.m / band}u; p++) {
    workgroupBarrier();
    ${stores}
    workgroupBarrier();
    for (var i = 0u; i < RM; i++) {
      let row = accRow(ty, i);
      if (row / ${band}u != p) { continue; }
      for (var j = 0u; j < RN; j++) { ${dst}[i * RN4 + j / 4u][j % 4u] = Cs[(row % ${band}u) * ${tile.n}u + accCol(tx, j)]; }
    }
  }`);
  }

  const emulation = emulated ? emulationWgsl({ A, B, dual, F, fragments: FM * FN, tileN: tile.n }) : '';

  const parts = diagnosed(opts.diagnostic, staged.map((s) => s.load).join('\n      '), staged.map((s) => s.store).join('\n      '), multiply.join('\n      '));
  const loop = P ? specializedKLoop({ step: K, ...parts, producer: 'producer' }) : kLoop({ step: K, stages, ...parts, constantBuffers: true });
  const main = `@compute @workgroup_size(${THREADS}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32${emulated ? '' : ', @builtin(subgroup_id) sg: u32'}) {
  let t = tileOf(wg);
  if (!t.valid) { return; }
  let tx = li % 16u;
  let ty = li / 16u;
  ${emulated ? `let sg = li / ${F.subgroupSize}u;\n  let lane = li % ${F.subgroupSize}u;` : ''}
  let sm = sg / ${SGN}u;
  let sn = sg % ${SGN}u;${P ? `\n  let producer = sg >= ${C}u;\n  // The producers' own thread index (wraps for the others, who never stage).\n  let pi = li - ${C * F.subgroupSize}u;` : ''}
  ${staged.map((s) => s.setup).join('\n  ')}
  ${guards === 'edges' ? `let wholeTile = t.m0 + TM <= t.mEnd && t.n0 + TN <= t.nEnd && (t.kEnd - t.kBegin) % ${K}u == 0u;` : ''}
  ${emulated ? accs.map((a) => `var ${a}E: array<f32, ${FM * FN * PER_LANE}>;`).join('\n  ') : frags.join('\n  ')}
  ${staged.map((s) => s.registers).join('\n  ')}
  ${loop}
  // The SIMT engine's per-thread outputs, declared only now so they are not live in the K loop.
  var acc: array<vec4f, ${(tile.m / 16) * (tile.n / 64)}>;
  ${dual ? `var acc2: array<vec4f, ${(tile.m / 16) * (tile.n / 64)}>;` : ''}
  ${handoff.join('\n  ')}
  ${epilogueOf(spec)}
}`;
  const moduleScope = `${all.map((o) => `var<workgroup> ${o.name}: array<vec4<f16>, ${(stages * o.halves) / 4}>;`).join('\n')}
var<workgroup> Cs: array<f32, ${band * tile.n}>;
${vectorHelpers(spec, opts.views !== false && !!vl)}
${vl?.functions ?? ''}
${emulation}`;
  const enables = emulated ? '' : `enable subgroups;\nenable chromium_experimental_subgroup_matrix;\ndiagnostic(off, chromium_experimental.subgroup_matrix_uniformity);`;
  return { enables, bindings: vl && opts.views !== false ? viewBindings(spec) : [], moduleScope, main };
}

/** The K loop's parts under a measurement switch (SubgroupMatrixOptions.diagnostic); `kb` is the single-stage loop's step. */
function diagnosed(diagnostic: SubgroupMatrixOptions['diagnostic'], load: string, store: string, multiply: string) {
  if (diagnostic === 'no-multiply') return { load, store, multiply: '' };
  // 'fragments-once' stages once too: the loop is the multiply and barriers alone (the emulation has no separate fragment loads: it is 'stage-once' there).
  if (diagnostic === 'stage-once' || diagnostic === 'fragments-once') return { load: `if (k0 == t.kBegin) {\n${load}\n}`, store: `if (kb == t.kBegin) {\n${store}\n}`, multiply };
  return { load, store, multiply };
}

/** The 16-byte views of the spec's vector operands: read-only vec4<u32> bindings of the same buffers. */
function viewBindings(spec: GemmSpec): GemmBinding[] {
  return spec.bindings.filter((b) => b.vector).map((b) => {
    if (b.access !== 'read' || b.type !== 'dt') throw new Error(`GEMM "${spec.name}": vector operand ${b.name} must be a read-only 'dt' binding`);
    return { name: `${b.name}_v8`, type: 'vec4<u32>', access: 'read', view: b.name };
  });
}

/** `NAME8(i)`: halves i … i + 7 of a vector operand, through its view (one 16-byte load) or as 8 scalar loads. */
function vectorHelpers(spec: GemmSpec, views: boolean): string {
  return spec.bindings
    .filter((b) => b.vector)
    .map((b) =>
      views
        ? `fn ${b.name}8(i: u32) -> mat2x4<f16> { let q = ${b.name}_v8[i / 8u]; return mat2x4<f16>(bitcast<vec4<f16>>(q.xy), bitcast<vec4<f16>>(q.zw)); }`
        : `fn ${b.name}8(i: u32) -> mat2x4<f16> { return mat2x4<f16>(${Array.from({ length: 8 }, (_, e) => `${b.name}[i + ${e}u]`).join(', ')}); }`,
    )
    .join('\n');
}

function applies(spec: GemmSpec, target: EngineTarget): string | null {
  if (spec.dtype !== 'f16') return 'operands are not f16';
  if (spec.tensorCores === false) return 'the spec keeps f32 operands (tensorCores: false)';
  return fragmentRefusal(target.fragment ?? DEFAULT_FRAGMENT);
}

export const subgroupMatrixEngine: GemmEngineImpl = { id: 'subgroup-matrix', applies, emit: (spec, target) => emit(spec, target, false) };
export const emulatedSubgroupMatrixEngine: GemmEngineImpl = { id: 'subgroup-matrix-emulated', applies, emit: (spec, target) => emit(spec, target, true) };
