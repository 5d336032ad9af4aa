import { bindingPrelude, grid, LINEAR_WORKGROUP, type KernelSource, type StepEncoder } from './program.js';
import type { TrackedBuffer } from '../src/gpu/allocator.js';

/**
 * dst[start + i] = src[idx[start + i]] for i < count, on 32-bit words: gathers scattered
 * elements of a tensor (the sampled check's weight-gradient columns, stride h) in one dispatch
 * instead of one copy command each. Word-wise, so it serves f32 and f16 storage alike (the
 * host picks the half).
 */
export const gatherWords: KernelSource = (() => {
  const bindings = ['read', 'read', 'read_write'] as const;
  const params = [
    { name: 'start', type: 'u32' },
    { name: 'count', type: 'u32' },
  ] as const;
  const code = `${bindingPrelude({ bindings, params }, ['src', 'idx', 'dst'], ['u32', 'u32', 'u32'])}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (${LINEAR_WORKGROUP}) * 256u + li;
  if (i < P.count) { dst[P.start + i] = src[idx[P.start + i]]; }
}`;
  return { name: 'gather-words', code, bindings, params };
})();

export async function encodeGatherWords(enc: StepEncoder, src: GPUBuffer, idx: TrackedBuffer, dst: TrackedBuffer, start: number, count: number): Promise<void> {
  await enc.dispatch({ source: gatherWords, params: { start, count }, buffers: [src, idx, dst], workgroups: grid(Math.ceil(count / 256)) });
}
