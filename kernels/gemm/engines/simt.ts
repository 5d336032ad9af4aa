import { kLoop } from '../k-loop.js';
import { epilogueOf, THREADS, type GemmEngineImpl, type GemmSpec } from '../spec.js';

/**
 * The portable engine: f32 FMAs on 16×16 threads, each (m/16)×(n/16) outputs, K in steps of
 * `tile.k` through f32 workgroup tiles stored [k][outer] (docs/design.md#tensor-cores). Every
 * operand is loaded through the scalar hooks: thread li loads elements li, li + 256, … of the
 * TK×outer tile into registers (adjacent threads on the memory-contiguous index), and stores
 * them to workgroup memory at the next step. The range test is a select, not a branch, so a
 * step's loads are issued together.
 */
function stageLoad(reg: string, count: number, contiguous: 'inner' | 'outer', outer: number, load: string, outerIdx: string, end: string, TILE_K: number): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const e = `(li + ${i * THREADS}u)`;
    const kk = contiguous === 'inner' ? `${e} % ${TILE_K}u` : `${e} / ${outer}u`;
    const oo = contiguous === 'inner' ? `${e} / ${TILE_K}u` : `${e} % ${outer}u`;
    lines.push(`{ let ${outerIdx} = ${outerIdx}0 + ${oo}; let k = k0 + ${kk}; ${reg}[${i}] = select(0.0, ${load}, ${outerIdx} < ${end} && k < t.kEnd); }`);
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

function emit(spec: GemmSpec) {
  const dual = spec.dual ?? false;
  const tile = spec.tile ?? { m: 64, n: 64 };
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
  const load = [
    stageLoad('ra', LA, aMode, tile.m, 'loadA(t, m, k)', 'm', 'mEnd', TILE_K),
    stageLoad('rb', LB, bMode, tile.n, 'loadB(t, k, n)', 'n', 'nEnd', TILE_K),
    dual ? stageLoad('rc', LB, bMode, tile.n, 'loadB2(t, k, n)', 'n', 'nEnd', TILE_K) : '',
  ].join('\n      ');
  const store = [
    stageStore('ra', 'As', LA, aMode, tile.m, TILE_K, `buf * ${A_VECS}u`, tile.m + pad),
    stageStore('rb', 'Bs', LB, bMode, tile.n, TILE_K, `buf * ${B_VECS}u`, tile.n + pad),
    dual ? stageStore('rc', 'Bs2', LB, bMode, tile.n, TILE_K, `buf * ${B_VECS}u`, tile.n + pad) : '',
  ].join('\n    ');
  const multiply = `let aBase = buf * ${A_VECS}u;
      let bBase = buf * ${B_VECS}u;
      for (var kk = 0u; kk < ${TILE_K}u; kk++) {
        ${reads.join('\n        ')}
        ${fmas.join('\n        ')}
      }`;
  const main = `@compute @workgroup_size(16, 16, 1)
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
  ${kLoop({ step: TILE_K, stages, load, store, multiply })}
  ${epilogueOf(spec)}
}`;
  const moduleScope = `var<workgroup> As: array<vec4f, ${stages * A_VECS}>;
var<workgroup> Bs: array<vec4f, ${stages * B_VECS}>;
${dual ? `var<workgroup> Bs2: array<vec4f, ${stages * B_VECS}>;` : ''}`;
  return { enables: '', bindings: [], moduleScope, main };
}

export const simtEngine: GemmEngineImpl = {
  id: 'simt',
  applies: () => null,
  emit,
};
