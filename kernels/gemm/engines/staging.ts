import { THREADS, TileRefusedError, type StagingGuards } from '../spec.js';

/**
 * Staging of one operand of the subgroup-matrix engine: a K step of the tile, global memory →
 * registers (`load`, issued before the previous step's multiply) → workgroup tile (`store`).
 * The tile is [rows][inner] halves with `inner` the operand's contiguous index, each row `stride`
 * halves apart, held as vec4<f16> so that a thread stores four halves per instruction.
 *
 * Two load paths fill the same registers in the same order:
 * - vector: where the spec has a vector hook for the operand, its rows are 16-byte aligned
 *   (`when`) and the tile's range along the contiguous index starts and ends on a multiple of 8,
 *   each thread loads whole 8-half vectors (one hook call, one range test, gathers resolved once);
 * - scalar: one hook call per element, each range-tested.
 * The range tests are selects on clamped indices, not branches: with a branch around each load
 * the loads of a step were not issued together (zero-buffer's conf4 step 629 ms instead of 362 on
 * the H100, docs/performance.md), and clamping keeps every hook call inside the tile's rows.
 */
export interface Operand {
  /** Workgroup array and register array names. */
  name: string;
  reg: string;
  /** Staged [outer][k] (k contiguous) or [k][outer]. */
  kInner: boolean;
  inner: number;
  rows: number;
  /** Halves from one staged row to the next (inner + padding). */
  stride: number;
  halves: number;
  which: 'a' | 'b' | 'b2';
  /** The spec has a vector hook for this operand. */
  vector: boolean;
}

interface Axis {
  begin: string;
  /** This step's first index along the axis (k0 for k, the tile's origin otherwise). */
  base: string;
  end: string;
}

const K_AXIS: Axis = { begin: 't.kBegin', base: 'k0', end: 't.kEnd' };
const AXES: Record<'m' | 'n', Axis> = { m: { begin: 't.m0', base: 't.m0', end: 't.mEnd' }, n: { begin: 't.n0', base: 't.n0', end: 't.nEnd' } };

/**
 * `unrolled` false (the emulated engine) writes the same chunks and elements as loops: unrolled,
 * lavapipe's LLVM takes minutes per kernel; the real engine unrolls so registers stay registers.
 */
/** The threads that stage, and the WGSL name of each one's index among them (all 256 by default; producers only under warp specialization). */
export interface Stagers {
  threads: number;
  index: string;
}

export function stagingOf(o: Operand, K: number, when: string, unrolled = true, guards: StagingGuards = 'always', stagers: Stagers = { threads: THREADS, index: 'li' }) {
  const { threads, index } = stagers;
  const outerName = o.which === 'a' ? 'm' : 'n';
  const row = o.kInner ? AXES[outerName] : K_AXIS;
  const col = o.kInner ? K_AXIS : AXES[outerName];
  const hook = { a: 'loadA', b: 'loadB', b2: 'loadB2' }[o.which];
  // Hook arguments from a (row, column) pair of the staged tile.
  const args = (r: string, c: string) => {
    const [outer, k] = o.kInner ? [r, c] : [c, r];
    return o.which === 'a' ? `t, ${outer}, ${k}` : `t, ${k}, ${outer}`;
  };
  const regs = (o.rows * o.inner) / (4 * threads);
  if (!Number.isInteger(regs)) throw new TileRefusedError(`staging ${o.name}: a ${o.rows}×${o.inner} tile does not split into 4 halves for each of ${threads} threads`);
  const vectorCapable = o.vector && (o.rows * o.inner) % (8 * threads) === 0;
  const flag = `vec${o.reg}`;
  const tileBase = `buf * ${o.halves / 4}u`;
  const rowVecs = o.stride / 4;

  const scalar = (r: string, c: string) =>
    guards === 'never' ? `f16(${hook}(${args(r, c)}))` : `f16(select(0.0, ${hook}(${args(`min(${r}, max(${row.end}, 1u) - 1u)`, `min(${c}, max(${col.end}, 1u) - 1u)`)}), ${r} < ${row.end} && ${c} < ${col.end}))`;

  const loads: string[] = [];
  const stores: string[] = [];
  if (!unrolled) return { ...loopStaging(o, when, row, col, hook, args, regs, vectorCapable, flag, tileBase, rowVecs, scalar, guards, stagers), registers: `var ${o.reg}: array<vec4<f16>, ${regs}>;` };
  if (vectorCapable) {
    const per = o.inner / 8;
    const vector: string[] = [];
    const unguarded: string[] = [];
    const scalar8: string[] = [];
    for (let c = 0; c < regs / 2; c++) {
      const pos = `let e = ${index} + ${c * threads}u; let r = ${row.base} + e / ${per}u; let c = ${col.base} + (e % ${per}u) * 8u;`;
      unguarded.push(`{ ${pos} let v = ${hook}8(${args('r', 'c')}); ${o.reg}[${2 * c}] = v[0]; ${o.reg}[${2 * c + 1}] = v[1]; }`);
      vector.push(`{ ${pos}
        let v = ${hook}8(${args(`min(r, max(${row.end}, 1u) - 1u)`, `min(c, max(${col.end}, 8u) - 8u)`)});
        let ok = r < ${row.end} && c < ${col.end};
        ${o.reg}[${2 * c}] = select(vec4<f16>(), v[0], ok); ${o.reg}[${2 * c + 1}] = select(vec4<f16>(), v[1], ok); }`);
      const xs = Array.from({ length: 8 }, (_, v) => scalar('r', `c + ${v}u`));
      scalar8.push(`{ ${pos}
        ${o.reg}[${2 * c}] = vec4<f16>(${xs.slice(0, 4).join(', ')});
        ${o.reg}[${2 * c + 1}] = vec4<f16>(${xs.slice(4).join(', ')}); }`);
      stores.push(`{ let e = ${index} + ${c * threads}u; let s = ${tileBase} + (e / ${per}u) * ${rowVecs}u + (e % ${per}u) * 2u; ${o.name}[s] = ${o.reg}[${2 * c}]; ${o.name}[s + 1u] = ${o.reg}[${2 * c + 1}]; }`);
    }
    const [all, none] = [vector.join('\n        '), unguarded.join('\n        ')];
    const vectors = { always: all, never: none, edges: `if (wholeTile) {\n        ${none}\n        } else {\n        ${all}\n        }` }[guards];
    loads.push(`if (${flag}) {
        ${vectors}
      } else {
        ${scalar8.join('\n        ')}
      }`);
  } else {
    const per = o.inner / 4;
    for (let c = 0; c < regs; c++) {
      const pos = `let e = ${index} + ${c * threads}u; let r = ${row.base} + e / ${per}u; let c = ${col.base} + (e % ${per}u) * 4u;`;
      loads.push(`{ ${pos} ${o.reg}[${c}] = vec4<f16>(${[0, 1, 2, 3].map((v) => scalar('r', `c + ${v}u`)).join(', ')}); }`);
      stores.push(`{ let e = ${index} + ${c * threads}u; ${o.name}[${tileBase} + (e / ${per}u) * ${rowVecs}u + e % ${per}u] = ${o.reg}[${c}]; }`);
    }
  }
  return {
    setup: vectorCapable ? `let ${flag} = (${when}) && ${col.begin} % 8u == 0u && ${col.end} % 8u == 0u;` : '',
    registers: `var ${o.reg}: array<vec4<f16>, ${regs}>;`,
    load: loads.join('\n      '),
    store: stores.join('\n      '),
  };
}

/** The same staging as loops over chunks and elements (see stagingOf). */
function loopStaging(
  o: Operand,
  when: string,
  row: Axis,
  col: Axis,
  hook: string,
  args: (r: string, c: string) => string,
  regs: number,
  vectorCapable: boolean,
  flag: string,
  tileBase: string,
  rowVecs: number,
  scalar: (r: string, c: string) => string,
  guards: StagingGuards,
  { threads, index }: Stagers,
) {
  const W = vectorCapable ? 8 : 4;
  const per = o.inner / W;
  const chunks = regs / (W / 4);
  const pos = `let e = ${index} + ci * ${threads}u; let r = ${row.base} + e / ${per}u; let c = ${col.base} + (e % ${per}u) * ${W}u;`;
  const scalars = `var x: array<f16, ${W}>;
        for (var v = 0u; v < ${W}u; v++) { x[v] = ${scalar('r', 'c + v')}; }`;
  const scalarLoop = vectorCapable
    ? `for (var ci = 0u; ci < ${chunks}u; ci++) { ${pos}
        ${scalars}
        ${o.reg}[2u * ci] = vec4<f16>(x[0], x[1], x[2], x[3]); ${o.reg}[2u * ci + 1u] = vec4<f16>(x[4], x[5], x[6], x[7]); }`
    : `for (var ci = 0u; ci < ${chunks}u; ci++) { ${pos}
        ${scalars}
        ${o.reg}[ci] = vec4<f16>(x[0], x[1], x[2], x[3]); }`;
  const guardedVectors = `for (var ci = 0u; ci < ${chunks}u; ci++) { ${pos}
          let v = ${hook}8(${args(`min(r, max(${row.end}, 1u) - 1u)`, `min(c, max(${col.end}, 8u) - 8u)`)});
          let ok = r < ${row.end} && c < ${col.end};
          ${o.reg}[2u * ci] = select(vec4<f16>(), v[0], ok); ${o.reg}[2u * ci + 1u] = select(vec4<f16>(), v[1], ok); }`;
  const unguardedVectors = `for (var ci = 0u; ci < ${chunks}u; ci++) { ${pos}
          let v = ${hook}8(${args('r', 'c')}); ${o.reg}[2u * ci] = v[0]; ${o.reg}[2u * ci + 1u] = v[1]; }`;
  const vectors = { always: guardedVectors, never: unguardedVectors, edges: `if (wholeTile) { ${unguardedVectors} } else { ${guardedVectors} }` }[guards];
  const load = vectorCapable
    ? `if (${flag}) {
        ${vectors}
      } else {
        ${scalarLoop}
      }`
    : scalarLoop;
  const store = vectorCapable
    ? `for (var ci = 0u; ci < ${chunks}u; ci++) { let e = ${index} + ci * ${threads}u; let s = ${tileBase} + (e / ${per}u) * ${rowVecs}u + (e % ${per}u) * 2u; ${o.name}[s] = ${o.reg}[2u * ci]; ${o.name}[s + 1u] = ${o.reg}[2u * ci + 1u]; }`
    : `for (var ci = 0u; ci < ${chunks}u; ci++) { let e = ${index} + ci * ${threads}u; ${o.name}[${tileBase} + (e / ${per}u) * ${rowVecs}u + e % ${per}u] = ${o.reg}[ci]; }`;
  return { setup: vectorCapable ? `let ${flag} = (${when}) && ${col.begin} % 8u == 0u && ${col.end} % 8u == 0u;` : '', load, store };
}
