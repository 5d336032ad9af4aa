import type { TrackedBuffer } from '../gpu/allocator.js';
import { bindingPrelude, grid, LINEAR_WORKGROUP, type KernelSource, type StepEncoder } from '../../kernels/program.js';

/**
 * rowGates[tokenSlotMap[t, s]] = gates[t, s]: each routed row's gate in expert-major order (4·R
 * bytes of metadata). The expert kernels then read one gate per row instead of searching the
 * row's slot through expertSlotOffsets per element, which halved dW2's speed on the H200.
 */
const WG = 256;
const PARAMS = [{ name: 'pairs', type: 'u32' }] as const;
const BINDINGS = [
  { name: 'gates', type: 'f32', access: 'read' },
  { name: 'tokenSlotMap', type: 'u32', access: 'read' },
  { name: 'rowGates', type: 'f32', access: 'read_write' },
] as const;

export const rowGates: KernelSource = {
  name: 'row-gates',
  bindings: BINDINGS,
  params: PARAMS,
  code: `${bindingPrelude({ bindings: BINDINGS, params: PARAMS })}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let pair = (${LINEAR_WORKGROUP}) * ${WG}u + li;
  if (pair >= P.pairs) { return; }
  rowGates[tokenSlotMap[pair]] = gates[pair];
}`,
};

export async function encodeRowGates(enc: StepEncoder, pairs: number, b: { gates: TrackedBuffer; tokenSlotMap: TrackedBuffer; rowGates: TrackedBuffer }): Promise<void> {
  await enc.dispatch({ source: rowGates, params: { pairs }, buffers: b, workgroups: grid(Math.ceil(pairs / WG)) });
}
