import type { DType } from '../../src/config.js';
import { bindingPrelude, LINEAR_WORKGROUP, perDtype, type KernelSource } from '../../kernels/program.js';

/**
 * The non-GEMM kernels of the capacity strategies (Tutel, GShard). A routed pair (t, s) owns one
 * capacity slot e·C + loc of the [E, C] grid or none (dropped): `slots` [T·k] holds it, with
 * DROPPED for a dropped pair. Every kernel here writes each output element from exactly one
 * invocation, in a fixed order, so no atomics are needed and results are bitwise reproducible.
 * Kernels that touch an [E·C, ·] tensor see one chunk of its rows, [rowBegin, rowEnd).
 *
 * Float tensors stored at the layer's dtype are bound as `dt` (loads widened with f32(), stores
 * narrowed with dt()); gates and dg partial sums stay f32. Every sum runs in f32.
 */
export const DROPPED = 0xffffffff;
const WG = 64;

type Binding = [name: string, type: 'f32' | 'u32' | 'dt', access: 'read' | 'read_write'];

export function kernel(name: string, buffers: Binding[], params: string[], body: string, moduleScope = '', dtype: DType = 'f32'): KernelSource {
  const bindings = buffers.map(([name, type, access]) => ({ name, type, access }));
  const paramList = params.map((p) => ({ name: p, type: 'u32' as const }));
  const code = `${bindingPrelude({ bindings, params: paramList }, dtype)}
${moduleScope}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let linear = ${LINEAR_WORKGROUP};
${body}
}`;
  return { name, code, bindings, params: paramList };
}

/** Threads per workgroup of every kernel here: one thread per item, or one workgroup per row. */
export const DISPATCH_WORKGROUP = WG;

const IN_CHUNK = (slot: string) => `(${slot} != ${DROPPED}u && ${slot} >= P.rowBegin && ${slot} < P.rowEnd)`;

/**
 * Tutel's location rule applied to the expert-major, slot-minor rows of the routing metadata:
 * within expert e, rows are ordered slot 0 first then by token, which is exactly the order of
 * Tutel's per-slot cumsum, so loc = row − expertOffsets[e] and the pair is kept iff loc < C.
 * Rewrites the row map in place into slots. One thread per pair.
 */
export const capacitySlots = kernel(
  'capacity-slots',
  [
    ['tokenExperts', 'u32', 'read'],
    ['expertOffsets', 'u32', 'read'],
    ['slots', 'u32', 'read_write'],
  ],
  ['pairs', 'C'],
  `  let i = linear * ${WG}u + li;
  if (i >= P.pairs) { return; }
  let e = tokenExperts[i];
  let loc = slots[i] - expertOffsets[e];
  slots[i] = select(${DROPPED}u, e * P.C + loc, loc < P.C);`,
);

/**
 * Encode (scatter): dst[slot] = scale·src[token] for each kept pair whose slot lies in this chunk;
 * scale is the gate when `gated` (the gradient of the decode), else 1 (the dispatch of X).
 * dst must be zero-filled first: capacity slots no pair took stay zero. One workgroup per pair.
 */
export const encodeScatter = perDtype((dtype) => kernel(
  'capacity-encode',
  [
    ['slots', 'u32', 'read'],
    ['gates', 'f32', 'read'],
    ['src', 'dt', 'read'],
    ['dst', 'dt', 'read_write'],
  ],
  ['pairs', 'k', 'cols', 'rowBegin', 'rowEnd', 'gated'],
  `  if (linear >= P.pairs) { return; }
  let slot = slots[linear];
  if (!${IN_CHUNK('slot')}) { return; }
  let scale = select(1.0, gates[linear], P.gated == 1u);
  let src0 = (linear / P.k) * P.cols;
  let dst0 = (slot - P.rowBegin) * P.cols;
  for (var n = li; n < P.cols; n += ${WG}u) { dst[dst0 + n] = dt(scale * f32(src[src0 + n])); }`,
  '',
  dtype,
));

/**
 * Decode (gather-sum per token): dst[t] (+)= Σ_s scale_s·src[slot_s] over the token's kept pairs
 * whose slot lies in this chunk, slots in order; `accumulate` = 0 overwrites (first chunk of the
 * combine), 1 adds (later chunks, and dX onto the router's share). One workgroup per token.
 */
export const decodeGather = perDtype((dtype) => kernel(
  'capacity-decode',
  [
    ['slots', 'u32', 'read'],
    ['gates', 'f32', 'read'],
    ['src', 'dt', 'read'],
    ['dst', 'dt', 'read_write'],
  ],
  ['tokens', 'k', 'cols', 'rowBegin', 'rowEnd', 'gated', 'accumulate'],
  `  if (linear >= P.tokens) { return; }
  let t = linear;
  for (var n = li; n < P.cols; n += ${WG}u) {
    var acc = 0.0;
    if (P.accumulate == 1u) { acc = f32(dst[t * P.cols + n]); }
    for (var s = 0u; s < P.k; s++) {
      let slot = slots[t * P.k + s];
      if (${IN_CHUNK('slot')}) {
        acc += select(1.0, gates[t * P.k + s], P.gated == 1u) * f32(src[(slot - P.rowBegin) * P.cols + n]);
      }
    }
    dst[t * P.cols + n] = dt(acc);
  }`,
  '',
  dtype,
));

/**
 * The gate gradient of a kept pair from the saved expert output: dg = ⟨dO_t, y[slot]⟩, written to
 * dgPartial[slot] (the router backward reads it through pairRows = slots, one part per row).
 * One workgroup per pair; a fixed-shape tree reduction keeps the sum order fixed.
 */
export const gateGradFromOutput = perDtype((dtype) => kernel(
  'capacity-gate-grad',
  [
    ['slots', 'u32', 'read'],
    ['dO', 'dt', 'read'],
    ['y', 'dt', 'read'],
    ['dgPartial', 'f32', 'read_write'],
  ],
  ['pairs', 'k', 'cols', 'rowBegin', 'rowEnd'],
  `  if (linear >= P.pairs) { return; }
  let slot = slots[linear];
  let live = ${IN_CHUNK('slot')};
  var sum = 0.0;
  if (live) {
    let x = (linear / P.k) * P.cols;
    let r = (slot - P.rowBegin) * P.cols;
    for (var n = li; n < P.cols; n += ${WG}u) { sum += f32(dO[x + n]) * f32(y[r + n]); }
  }
  part[li] = sum;
  workgroupBarrier();
  for (var stride = ${WG / 2}u; stride > 0u; stride /= 2u) {
    if (li < stride) { part[li] += part[li + stride]; }
    workgroupBarrier();
  }
  if (li == 0u && live) { dgPartial[slot] = part[0]; }`,
  `var<workgroup> part: array<f32, ${WG}>;`,
  dtype,
));

/**
 * dg of a kept pair read from GShard's dense gradient of the combine weights: combine = gate at the
 * pair's slot, so dg = dcombine[t, slot]. One thread per pair; pairs of tokens outside the chunk skip.
 */
export const gateGradFromCombine = perDtype((dtype) => kernel(
  'gshard-gate-grad',
  [
    ['slots', 'u32', 'read'],
    ['dcombine', 'dt', 'read'],
    ['dgPartial', 'f32', 'read_write'],
  ],
  ['pairs', 'k', 'slotCount', 'tokenBegin', 'tokenEnd'],
  `  let i = linear * ${WG}u + li;
  if (i >= P.pairs) { return; }
  let t = i / P.k;
  let slot = slots[i];
  if (t < P.tokenBegin || t >= P.tokenEnd || slot == ${DROPPED}u) { return; }
  dgPartial[slot] = f32(dcombine[(t - P.tokenBegin) * P.slotCount + slot]);`,
  '',
  dtype,
));
