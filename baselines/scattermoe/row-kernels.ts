import type { Activation, DType } from '../../src/config.js';
import { ACTIVATION_WGSL, plainActivation } from '../../kernels/activation.js';
import { bindingPrelude, LINEAR_WORKGROUP, perDtype, type KernelSource } from '../../kernels/program.js';

/**
 * ScatterMoE's kernels outside the GEMMs (`scattermoe/kernels/ops.py`, `parallel_experts.py`,
 * `mlp.py`): the sorted expert id of each row, `group` (rows gathered into sorted order, optionally
 * scaled), the gates' batched matmul and its gradient, the sum over k, and the activation's
 * backward as autograd runs it, op by op. Row tensors are bound one chunk at a time: each dispatch
 * sees rows [rowBegin, rowEnd) of the chunk it is given and skips the rest.
 *
 * Rows of the layer's float tensors are stored at its dtype ('dt'); gates and d_gates stay f32.
 * Every sum runs in f32 and is rounded once when stored.
 */
export const ROW_WORKGROUP = 64;

type Binding = [string, 'f32' | 'u32' | 'dt', 'read' | 'read_write'];
const u32 = (...names: string[]) => names.map((name) => ({ name, type: 'u32' as const }));

/** `scope`: module-scope WGSL (functions, workgroup arrays) the body uses. */
function kernel(name: string, dtype: DType, bindings: Binding[], params: KernelSource['params'], body: string, scope = ''): KernelSource {
  const declared = bindings.map(([name, type, access]) => ({ name, type, access }));
  const code = `${bindingPrelude({ bindings: declared, params }, dtype)}
${scope}
@compute @workgroup_size(${ROW_WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
${body}
}`;
  return { name, code, bindings: declared, params };
}

/** One thread per element: `i` is the element index within the dispatch. */
const ELEMENT = `  let i = (${LINEAR_WORKGROUP}) * ${ROW_WORKGROUP}u + li;
  if (i >= P.count) { return; }`;

/** sorted_expert_idxs[n] = the flattened expert ids at sorted_scattered_idxs[n]. Params: count (R). */
export const sortedExperts = kernel(
  'smoe-sorted-experts',
  'f32',
  [
    ['expertIds', 'u32', 'read'],
    ['sortedScatteredIdxs', 'u32', 'read'],
    ['sortedExpertIdxs', 'u32', 'read_write'],
  ],
  u32('count'),
  `${ELEMENT}
  sortedExpertIdxs[i] = expertIds[sortedScatteredIdxs[i]];`,
);

/** The identity pair → row list the shared router reads d_gates through. Params: count (R). */
export const identityRows = kernel('smoe-pair-rows', 'f32', [['pairRows', 'u32', 'read_write']], u32('count'), `${ELEMENT}
  pairRows[i] = i;`);

/**
 * `ops.group`: dst[n] = (gates[p]·) src[p / k] with p = sorted_scattered_idxs[n], for the sorted
 * rows n of the bound dst chunk. One workgroup per row, threads over the columns.
 * Params: rowBegin, rowEnd, cols, topK, scaled.
 */
export const groupRows = perDtype((dtype) =>
  kernel(
    'smoe-group',
    dtype,
    [
      ['src', 'dt', 'read'],
      ['sortedScatteredIdxs', 'u32', 'read'],
      ['gates', 'f32', 'read'],
      ['dst', 'dt', 'read_write'],
    ],
    u32('rowBegin', 'rowEnd', 'cols', 'topK', 'scaled'),
    `  let n = P.rowBegin + ${LINEAR_WORKGROUP};
  if (n >= P.rowEnd) { return; }
  let p = sortedScatteredIdxs[n];
  let scale = select(1.0, gates[p], P.scaled == 1u);
  let src0 = (p / P.topK) * P.cols;
  let dst0 = (n - P.rowBegin) * P.cols;
  for (var j = li; j < P.cols; j += ${ROW_WORKGROUP}u) { dst[dst0 + j] = dt(scale * f32(src[src0 + j])); }`,
  ),
);

/**
 * The gates' batched matmul, `gates.unsqueeze(1) @ output_expanded`: O[t] = Σ_s g[t,s]·Y[t·k + s]
 * for the tokens of the bound chunk of Y (chunks hold whole tokens). Params: count (tokens·d of the
 * chunk), rowBase (its first token), cols, topK.
 */
export const combine = perDtype((dtype) =>
  kernel(
    'smoe-combine',
    dtype,
    [
      ['Y', 'dt', 'read'],
      ['gates', 'f32', 'read'],
      ['O', 'dt', 'read_write'],
    ],
    u32('count', 'rowBase', 'cols', 'topK'),
    `${ELEMENT}
  let t = i / P.cols;
  let n = i % P.cols;
  let token = P.rowBase + t;
  var acc = 0.0;
  for (var s = 0u; s < P.topK; s++) { acc += gates[token * P.topK + s] * f32(Y[(t * P.topK + s) * P.cols + n]); }
  O[token * P.cols + n] = dt(acc);`,
  ),
);

/**
 * d_gates = output_expanded @ grad_out: dg[p] = ⟨Y[p], dO[p / k]⟩ for the pairs of the bound chunk
 * of Y, one workgroup per pair, a fixed-order tree sum (bitwise the same every run).
 * Params: rowBegin, rowEnd, cols, topK.
 */
export const gateGrad = perDtype((dtype) =>
  kernel(
    'smoe-gate-grad',
    dtype,
    [
      ['Y', 'dt', 'read'],
      ['dO', 'dt', 'read'],
      ['dg', 'f32', 'read_write'],
    ],
    u32('rowBegin', 'rowEnd', 'cols', 'topK'),
    `  let p = P.rowBegin + ${LINEAR_WORKGROUP};
  if (p >= P.rowEnd) { return; }
  var acc = 0.0;
  let y0 = (p - P.rowBegin) * P.cols;
  let o0 = (p / P.topK) * P.cols;
  for (var n = li; n < P.cols; n += ${ROW_WORKGROUP}u) { acc += f32(Y[y0 + n]) * f32(dO[o0 + n]); }
  partial[li] = acc;
  workgroupBarrier();
  for (var stride = ${ROW_WORKGROUP / 2}u; stride > 0u; stride /= 2u) {
    if (li < stride) { partial[li] += partial[li + stride]; }
    workgroupBarrier();
  }
  if (li == 0u) { dg[p] = partial[0]; }`,
    // The early return above is uniform (the whole workgroup shares p), so the barriers are too.
    `var<workgroup> partial: array<f32, ${ROW_WORKGROUP}>;`,
  ),
);

/** `.sum(-2)` of the input gradient's [T,k,d] rows, added to dX: dX[t] += Σ_s rows[t·k + s] for the tokens of the bound chunk. Params: count, rowBase (its first token), cols, topK. */
export const sumOverK = perDtype((dtype) =>
  kernel(
    'smoe-sum-k',
    dtype,
    [
      ['rows', 'dt', 'read'],
      ['dX', 'dt', 'read_write'],
    ],
    u32('count', 'rowBase', 'cols', 'topK'),
    `${ELEMENT}
  let t = i / P.cols;
  let n = i % P.cols;
  var acc = 0.0;
  for (var s = 0u; s < P.topK; s++) { acc += f32(rows[(t * P.topK + s) * P.cols + n]); }
  let o = (P.rowBase + t) * P.cols + n;
  dX[o] = dt(f32(dX[o]) + acc);`,
  ),
);

/**
 * The activation's backward, one autograd node per kernel, over the [count = rows·h] elements of
 * one row chunk; element i is row r = i / h, column j = i % h. SwiGLU's [R,2h] tensors hold [b | a].
 */
const ELEMENT_RC = `${ELEMENT}
  let r = i / P.h;
  let j = i % P.h;`;

/** SwiGLU's u = silu(a)·b, mul's backward: d(silu a) = dU·b, db = dU·silu(a). Params: count, h. */
export const mulGrad = perDtype((dtype) =>
  kernel(
    'smoe-mul-grad',
    dtype,
    [
      ['dU', 'dt', 'read'],
      ['Hidden', 'dt', 'read'],
      ['SiluA', 'dt', 'read'],
      ['dSiluA', 'dt', 'read_write'],
      ['dB', 'dt', 'read_write'],
    ],
    u32('count', 'h'),
    `${ELEMENT_RC}
  let g = f32(dU[i]);
  dSiluA[i] = dt(g * f32(Hidden[r * 2u * P.h + j]));
  dB[i] = dt(g * f32(SiluA[i]));`,
  ),
);

/**
 * The activation function's backward: da = grad·act'(a), with a read from the first projection's
 * output (SwiGLU: the second half of each [b | a] row; the plain MLP: the row). Params: count, h.
 */
export function activationGrad(activation: Activation, dtype: DType): KernelSource {
  const swiglu = activation === 'swiglu';
  const grad = swiglu ? 'siluGrad' : plainActivation(activation).grad;
  return kernel(
    `smoe-act-grad-${activation}`,
    dtype,
    [
      ['grad', 'dt', 'read'],
      ['Hidden', 'dt', 'read'],
      ['dA', 'dt', 'read_write'],
    ],
    u32('count', 'h'),
    `${ELEMENT_RC}
  let a = f32(Hidden[${swiglu ? 'r * 2u * P.h + P.h + j' : 'i'}]);
  dA[i] = dt(f32(grad[i]) * ${grad}(a));`,
    ACTIVATION_WGSL,
  );
}

/** chunk's backward, a cat: d_hidden[r] = [db | da]. Params: count, h. */
export const catGrad = perDtype((dtype) =>
  kernel(
    'smoe-cat-grad',
    dtype,
    [
      ['dB', 'dt', 'read'],
      ['dA', 'dt', 'read'],
      ['dHidden', 'dt', 'read_write'],
    ],
    u32('count', 'h'),
    `${ELEMENT_RC}
  let o = r * 2u * P.h + j;
  dHidden[o] = dB[i];
  dHidden[o + P.h] = dA[i];`,
  ),
);

/** Workgroups of a one-thread-per-element kernel. */
export function elementGroups(count: number): number {
  return Math.ceil(count / ROW_WORKGROUP);
}
