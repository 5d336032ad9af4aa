import type { FragmentShape } from '../spec.js';
import type { Operand } from './staging.js';

const half = (arr: string, idx: string) => `${arr}[(${idx}) / 4u][(${idx}) % 4u]`;

/**
 * The emulated engine's stand-ins for subgroupMatrixMultiplyAccumulate and subgroupMatrixStore
 * (engines/subgroup-matrix.ts): plain loops over the same staged vec4<f16> tiles, offsets and
 * strides, so that CI checks the real engine's layout on adapters without matrix units.
 */
export function emulationWgsl(o: { A: Operand; B: Operand; dual: boolean; F: FragmentShape; fragments: number; tileN: number }): string {
  const perLane = (o.F.m * o.F.n) / o.F.subgroupSize;
  return `
// Stand-in for subgroupMatrixMultiplyAccumulate and subgroupMatrixStore: lane l of a ${o.F.subgroupSize}-lane
// group owns elements l, l + ${o.F.subgroupSize}, … (row e / ${o.F.n}, column e % ${o.F.n}) of each ${o.F.m}×${o.F.n} fragment.
fn emulatedMma(acc: ptr<function, array<f32, ${o.fragments * perLane}>>, frag: u32, aVec: u32, second: u32, bVec: u32, lane: u32) {
  let aOff = aVec * 4u;
  let bOff = bVec * 4u;
  for (var r = 0u; r < ${perLane}u; r++) {
    let e = lane + ${o.F.subgroupSize}u * r;
    let row = e / ${o.F.n}u;
    let col = e % ${o.F.n}u;
    var s = 0.0;
    for (var kk = 0u; kk < ${o.F.k}u; kk++) {
      let a = ${half('As', o.A.kInner ? `aOff + row * ${o.A.stride}u + kk` : `aOff + kk * ${o.A.stride}u + row`)};
      let bi = ${o.B.kInner ? `bOff + col * ${o.B.stride}u + kk` : `bOff + kk * ${o.B.stride}u + col`};
      let b = ${o.dual ? `select(${half('Bs', 'bi')}, ${half('Bs2', 'bi')}, second == 1u)` : half('Bs', 'bi')};
      s = fma(f32(a), f32(b), s);
    }
    (*acc)[frag * ${perLane}u + r] += s;
  }
}
fn emulatedStore(acc: ptr<function, array<f32, ${o.fragments * perLane}>>, frag: u32, off: u32, lane: u32) {
  for (var r = 0u; r < ${perLane}u; r++) {
    let e = lane + ${o.F.subgroupSize}u * r;
    Cs[off + (e / ${o.F.n}u) * ${o.tileN}u + e % ${o.F.n}u] = (*acc)[frag * ${perLane}u + r];
  }
}`;
}
