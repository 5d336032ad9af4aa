import type { DType } from '../../src/config.js';
import { perDtype } from '../../kernels/program.js';
import { DISPATCH_WORKGROUP as WG, DROPPED, kernel } from './dispatch-kernels.js';

/**
 * DeepSpeed's gating tensors (deepspeed/moe/sharded_moe.py), dense over [T, E·C] (q = e·C + c,
 * one token row per workgroup of the chunk [tokenBegin, tokenEnd)), from the capacity slots of the
 * routing metadata (slot = e·C + location, DROPPED when over capacity):
 * - `gatingSec`: the f32 product einsum('se,sc->sec', gates_s, locations_sc) of the pairs
 *   s ∈ [sBegin, sEnd): top2gating's combine1_sec / combine2_sec (one pair each), or
 *   top1gating's and topkgating's combine_weights (every pair);
 * - `addRows`: combine1_sec + combine2_sec, top2gating's combine_weights;
 * - `locationsOneHot`: `_one_hot_to_float(locations_s, capacity)`, the f32 [T, C] one-hot of a
 *   pair's location (top1/top2gating; a dropped pair's location is 0, as upstream's masked
 *   sum gives), or topkgating's [T, E, C] one-hot of every (token, expert)'s location (0 where
 *   the token did not choose the expert or was dropped);
 * - `castCombine`: combine_weights.type_as(input) (values) and dispatch_mask.type_as(input)
 *   (1 where the f32 weight is nonzero), at the layer's dtype;
 * - `packNonzero`: combine_weights.bool(), one byte a slot, four to a u32, rows padded to words.
 * Every element is written by one invocation: no atomics, bitwise reproducible.
 */
const ROW = `  let t = P.tokenBegin + linear;
  if (t >= P.tokenEnd) { return; }
  let row = (t - P.tokenBegin) * P.slotCount;`;

export const gatingSec = kernel(
  'gshard-gating-sec',
  [
    ['slots', 'u32', 'read'],
    ['gates', 'f32', 'read'],
    ['out', 'f32', 'read_write'],
  ],
  ['tokenBegin', 'tokenEnd', 'k', 'slotCount', 'sBegin', 'sEnd'],
  `${ROW}
  for (var q = li; q < P.slotCount; q += ${WG}u) {
    var w = 0.0;
    for (var s = P.sBegin; s < P.sEnd; s++) { if (slots[t * P.k + s] == q) { w = gates[t * P.k + s]; } }
    out[row + q] = w;
  }`,
);

/** c = a + b over `count` elements of one chunk. One thread an element. */
export const addRows = kernel(
  'gshard-add',
  [
    ['a', 'f32', 'read'],
    ['b', 'f32', 'read'],
    ['c', 'f32', 'read_write'],
  ],
  ['count'],
  `  let i = linear * ${WG}u + li;
  if (i >= P.count) { return; }
  c[i] = a[i] + b[i];`,
);

export const locationsOneHot = kernel(
  'gshard-locations',
  [
    ['slots', 'u32', 'read'],
    ['tokenExperts', 'u32', 'read'],
    ['out', 'f32', 'read_write'],
  ],
  ['tokenBegin', 'tokenEnd', 'k', 'C', 'pair', 'perExpert', 'experts'],
  `  let t = P.tokenBegin + linear;
  if (t >= P.tokenEnd) { return; }
  let width = select(1u, P.experts, P.perExpert == 1u) * P.C;
  let row = (t - P.tokenBegin) * width;
  for (var i = li; i < width; i += ${WG}u) {
    let e = i / P.C;
    let c = i % P.C;
    var loc = 0u;
    for (var s = 0u; s < P.k; s++) {
      let slot = slots[t * P.k + s];
      let mine = select(s == P.pair, tokenExperts[t * P.k + s] == e, P.perExpert == 1u);
      if (mine && slot != ${DROPPED}u) { loc = slot % P.C; }
    }
    out[row + i] = select(0.0, 1.0, c == loc);
  }`,
);

/** dst = dt(src) (mode 0, the combine weights) or dt(src ≠ 0) (mode 1, the dispatch mask), `count` elements. */
export const castCombine = perDtype((dtype: DType) => kernel(
  'gshard-type-as',
  [
    ['src', 'f32', 'read'],
    ['dst', 'dt', 'read_write'],
  ],
  ['count', 'mode'],
  `  let i = linear * ${WG}u + li;
  if (i >= P.count) { return; }
  let v = src[i];
  dst[i] = dt(select(v, select(0.0, 1.0, v != 0.0), P.mode == 1u));`,
  '',
  dtype,
));

export const packNonzero = kernel(
  'gshard-bool',
  [
    ['src', 'f32', 'read'],
    ['mask', 'u32', 'read_write'],
  ],
  ['tokenBegin', 'tokenEnd', 'slotCount', 'rowWords'],
  `${ROW}
  for (var w = li; w < P.rowWords; w += ${WG}u) {
    var word = 0u;
    for (var b = 0u; b < 4u; b++) {
      let q = w * 4u + b;
      if (q < P.slotCount && src[row + q] != 0.0) { word |= 1u << (8u * b); }
    }
    mask[(t - P.tokenBegin) * P.rowWords + w] = word;
  }`,
);

