import type { DType } from '../config.js';
import type { TrackedBuffer } from '../gpu/allocator.js';
import { bindingPrelude, grid, LINEAR_WORKGROUP, perDtype, type KernelSource, type StepEncoder } from '../../kernels/program.js';

/**
 * Adds a block of routed rows into token rows: out[t] += Σ_s rows[tokenSlotMap[t, s] − rowBegin]
 * over the slots whose row lies in [rowBegin, rowEnd). One thread per output element sums its
 * token's rows in slot order, so the result is deterministic without float atomics; blocks are
 * added in row order. The partner of the 'rows' target of src/zero-buffer/expert-gemm.ts.
 */
const WG = 256;
const PARAMS = [
  { name: 'T', type: 'u32' },
  { name: 'd', type: 'u32' },
  { name: 'k', type: 'u32' },
  { name: 'rowBegin', type: 'u32' },
  { name: 'rowEnd', type: 'u32' },
] as const;
const BINDINGS = [
  { name: 'tokenSlotMap', type: 'u32', access: 'read' },
  { name: 'rows', type: 'dt', access: 'read' },
  { name: 'out', type: 'dt', access: 'read_write' },
] as const;

export const rowReduce = perDtype(
  (dtype): KernelSource => ({
    name: 'row-reduce',
    bindings: BINDINGS,
    params: PARAMS,
    code: `${bindingPrelude({ bindings: BINDINGS, params: PARAMS }, dtype)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (${LINEAR_WORKGROUP}) * ${WG}u + li;
  if (i >= P.T * P.d) { return; }
  let t = i / P.d;
  let n = i % P.d;
  var acc = f32(out[i]);
  for (var s = 0u; s < P.k; s++) {
    let row = tokenSlotMap[t * P.k + s];
    if (row >= P.rowBegin && row < P.rowEnd) { acc += f32(rows[(row - P.rowBegin) * P.d + n]); }
  }
  out[i] = dt(acc);
}`,
  }),
);

export async function encodeRowReduce(
  enc: StepEncoder,
  dtype: DType,
  shape: { tokens: number; hidden: number; topK: number; rowBegin: number; rowEnd: number },
  b: { tokenSlotMap: TrackedBuffer; rows: TrackedBuffer; out: TrackedBuffer },
): Promise<void> {
  const { tokens: T, hidden: d, topK: k, rowBegin, rowEnd } = shape;
  await enc.dispatch({
    source: rowReduce(dtype),
    params: { T, d, k, rowBegin, rowEnd },
    buffers: b,
    workgroups: grid(Math.ceil((T * d) / WG)),
  });
}
