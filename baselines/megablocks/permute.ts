import type { DType } from '../../src/config.js';
import { bindingPrelude, LINEAR_WORKGROUP, perDtype, type KernelSource } from '../../kernels/program.js';

/**
 * MegaBlocks' permutation kernels (padded_gather, padded_scatter, padded_scatter_wgrad and the
 * sum over top-k), for a sort of the flattened [T·k] expert ids:
 *   indices[i]  pair (t·k + s) at sorted position i;   binIds[i]  its expert;
 *   bins[E+1]   0 then the inclusive cumsum of the expert loads;
 *   paddedBins  the same with each load rounded up (= bins when there is no padding).
 * Sorted position i lives in row paddedBins[e] + i − bins[e] of the padded [P, d] buffers.
 *
 * One workgroup per sorted position (MegaBlocks' "one threadblock per row"), its threads
 * striding over the columns. Row-chunked buffers are bound one chunk at a time: a dispatch
 * covers the rows [base, end) of the chunk it sees and skips everything else, so the host
 * dispatches once per chunk (or per pair of source and destination chunks).
 *
 * The copied rows (X, dO, Y, the [T,k,d] transients, O, dX) are stored at the layer's dtype
 * (WGSL `dt`); gates and dg stay f32. Scaling and sums run in f32 and are rounded once on store.
 */
const WG = 64;

type Binding = [string, 'f32' | 'u32' | 'dt', 'read' | 'read_write'];

const ROUTE_BINDINGS: Binding[] = [
  ['indices', 'u32', 'read'],
  ['binIds', 'u32', 'read'],
  ['bins', 'u32', 'read'],
  ['paddedBins', 'u32', 'read'],
];

const PADDED_ROW = `
fn paddedRow(i: u32) -> u32 {
  let e = binIds[i];
  return paddedBins[e] + i - bins[e];
}`;

function kernel(name: string, dtype: DType, buffers: Binding[], params: KernelSource['params'], body: string): KernelSource {
  const bindings = buffers.map(([name, type, access]) => ({ name, type, access }));
  const code = `${bindingPrelude({ bindings, params }, dtype)}
${PADDED_ROW}
${body}`;
  return { name, code, bindings, params };
}

const u32 = (name: string) => ({ name, type: 'u32' as const });

/**
 * padded_gather: dst[paddedRow(i)] = scale·src[indices[i] / k] for the token rows of src [T, d]
 * (X forward; dO backward, scaled by the pair's gate). Padding rows are not written: the caller
 * clears dst first, as MegaBlocks allocates it with torch.zeros.
 * Params: count (R), d, k, rowBase, rowEnd (dst chunk rows), scaled.
 */
export const paddedGather = perDtype((dtype) => kernel(
  'mb-padded-gather',
  dtype,
  [['src', 'dt', 'read'], ...ROUTE_BINDINGS, ['gates', 'f32', 'read'], ['dst', 'dt', 'read_write']],
  ['count', 'd', 'k', 'rowBase', 'rowEnd', 'scaled'].map(u32),
  `
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = ${LINEAR_WORKGROUP};
  if (i >= P.count) { return; }
  let row = paddedRow(i);
  if (row < P.rowBase || row >= P.rowEnd) { return; }
  let pair = indices[i];
  let scale = select(1.0, gates[pair], P.scaled == 1u);
  let src0 = (pair / P.k) * P.d;
  let dst0 = (row - P.rowBase) * P.d;
  for (var n = li; n < P.d; n += ${WG}u) { dst[dst0 + n] = dt(scale * f32(src[src0 + n])); }
}`,
));

/**
 * padded_scatter's copy: dst[indices[i]] (=, or += when accumulating) scale·src[paddedRow(i)],
 * src a chunk of [P, d] (rows [srcBase, srcEnd)) and dst a chunk of the per-pair [T·k, d]
 * buffer (rows [dstBase, dstEnd)); with k = 1 the pair rows are the token rows of [T, d].
 * Params: count, d, srcBase, srcEnd, dstBase, dstEnd, scaled, accumulate.
 */
export const paddedScatter = perDtype((dtype) => kernel(
  'mb-padded-scatter',
  dtype,
  [['src', 'dt', 'read'], ...ROUTE_BINDINGS, ['gates', 'f32', 'read'], ['dst', 'dt', 'read_write']],
  ['count', 'd', 'srcBase', 'srcEnd', 'dstBase', 'dstEnd', 'scaled', 'accumulate'].map(u32),
  `
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = ${LINEAR_WORKGROUP};
  if (i >= P.count) { return; }
  let row = paddedRow(i);
  let pair = indices[i];
  if (row < P.srcBase || row >= P.srcEnd || pair < P.dstBase || pair >= P.dstEnd) { return; }
  let scale = select(1.0, gates[pair], P.scaled == 1u);
  let src0 = (row - P.srcBase) * P.d;
  let dst0 = (pair - P.dstBase) * P.d;
  for (var n = li; n < P.d; n += ${WG}u) {
    let v = scale * f32(src[src0 + n]);
    if (P.accumulate == 1u) { dst[dst0 + n] = dt(f32(dst[dst0 + n]) + v); } else { dst[dst0 + n] = dt(v); }
  }
}`,
));

/**
 * The sum over k of padded_scatter's [T, k, d] result, for the tokens of one chunk of it
 * (chunks hold whole tokens): dst[t] (=, or +=) Σ_s src[t·k + s], s in order.
 * Params: tokenBase, tokens, d, k, accumulate. One thread per output element.
 */
const SUM_PARAMS = ['tokenBase', 'tokens', 'd', 'k', 'accumulate'].map(u32);
const SUM_BINDINGS = [
  { name: 'src', type: 'dt', access: 'read' },
  { name: 'dst', type: 'dt', access: 'read_write' },
] as const;
export const sumTopK = perDtype((dtype): KernelSource => ({
  name: 'mb-sum-top-k',
  bindings: SUM_BINDINGS,
  params: SUM_PARAMS,
  code: `${bindingPrelude({ bindings: SUM_BINDINGS, params: SUM_PARAMS }, dtype)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let idx = (${LINEAR_WORKGROUP}) * ${WG}u + li;
  if (idx >= P.tokens * P.d) { return; }
  let t = idx / P.d;
  let n = idx % P.d;
  let src0 = t * P.k * P.d + n;
  var acc = f32(src[src0]);
  for (var s = 1u; s < P.k; s++) { acc += f32(src[src0 + s * P.d]); }
  let dst0 = (P.tokenBase + t) * P.d + n;
  if (P.accumulate == 1u) { dst[dst0] = dt(f32(dst[dst0]) + acc); } else { dst[dst0] = dt(acc); }
}`,
}));

/**
 * padded_scatter_wgrad: the gate gradient of each pair, dg = ⟨Y[paddedRow(i)], dO[token]⟩,
 * stored at sorted position i, and pairRows[pair] = i so the router finds it. The row sum is a
 * fixed-order tree in workgroup memory: bitwise the same every run.
 * Params: count, d, k, rowBase, rowEnd (the chunk of Y bound).
 */
export const scatterWgrad = perDtype((dtype) => kernel(
  'mb-scatter-wgrad',
  dtype,
  [['Y', 'dt', 'read'], ['dO', 'dt', 'read'], ...ROUTE_BINDINGS, ['dg', 'f32', 'read_write'], ['pairRows', 'u32', 'read_write']],
  ['count', 'd', 'k', 'rowBase', 'rowEnd'].map(u32),
  `
var<workgroup> partial: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = ${LINEAR_WORKGROUP};
  if (i >= P.count) { return; }
  // Rows come from storage, so they are not uniform: keep every thread at the barriers.
  let row = paddedRow(i);
  let inChunk = row >= P.rowBase && row < P.rowEnd;
  let pair = indices[i];
  var acc = 0.0;
  if (inChunk) {
    let y = (row - P.rowBase) * P.d;
    let o = (pair / P.k) * P.d;
    for (var n = li; n < P.d; n += ${WG}u) { acc += f32(Y[y + n]) * f32(dO[o + n]); }
  }
  partial[li] = acc;
  workgroupBarrier();
  for (var stride = ${WG / 2}u; stride > 0u; stride /= 2u) {
    if (li < stride) { partial[li] += partial[li + stride]; }
    workgroupBarrier();
  }
  if (inChunk && li == 0u) {
    dg[i] = partial[0];
    pairRows[pair] = i;
  }
}`,
));

/** Workgroups of sumTopK for `tokens` tokens of width d. */
export function sumTopKGroups(tokens: number, d: number): number {
  return Math.ceil((tokens * d) / WG);
}
