import { bindingPrelude, grid, LINEAR_WORKGROUP, type KernelSource, type StepEncoder } from './program.js';
import type { TrackedBuffer } from '../src/gpu/allocator.js';

/** dst = src in vec4s: the bandwidth ceiling (each element read once and written once). */
export const streamCopy: KernelSource = (() => {
  const bindings = [
    { name: 'src', type: 'vec4f', access: 'read' },
    { name: 'dst', type: 'vec4f', access: 'read_write' },
  ] as const;
  const params = [{ name: 'n4', type: 'u32' }] as const;
  const code = `${bindingPrelude({ bindings, params })}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (${LINEAR_WORKGROUP}) * 256u + li;
  if (i < P.n4) { dst[i] = src[i]; }
}`;
  return { name: 'stream-copy', code, bindings, params };
})();

export async function encodeStreamCopy(enc: StepEncoder, b: { src: TrackedBuffer; dst: TrackedBuffer }, vec4s: number): Promise<void> {
  await enc.dispatch({ source: streamCopy, params: { n4: vec4s }, buffers: b, workgroups: grid(Math.ceil(vec4s / 256)) });
}
