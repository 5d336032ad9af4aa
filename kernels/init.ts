import { bindingPrelude, grid, LINEAR_WORKGROUP, perDtype, type KernelSource, type StepEncoder } from './program.js';
import type { DType } from '../src/config.js';
import type { TrackedBuffer } from '../src/gpu/allocator.js';

/**
 * Fills a buffer with N(0, std²) values from a counter-based hash of (seed, stream, index):
 * the same values on every GPU and run, without generating gigabytes on the host (a
 * DeepSeek-V3-like layer has 11·10⁹ weights). Box–Muller on two hashed uniforms.
 */
export const fillNormal = perDtype((dtype): KernelSource => {
  const bindings = [{ name: 'out', type: 'dt', access: 'read_write' }] as const;
  const params = [
    { name: 'count', type: 'u32' },
    { name: 'offset', type: 'u32' },
    { name: 'seed', type: 'u32' },
    { name: 'stream', type: 'u32' },
    { name: 'scale', type: 'f32' },
  ] as const;
  const code = `${bindingPrelude({ bindings, params }, dtype)}
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
fn uniform01(i: u32, lane: u32) -> f32 {
  let h = pcg(pcg(pcg(P.seed ^ pcg(P.stream)) ^ i) ^ lane);
  return (f32(h >> 8u) + 0.5) * (1.0 / 16777216.0);
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (${LINEAR_WORKGROUP}) * 256u + li;
  if (i >= P.count) { return; }
  let g = i + P.offset;
  let r = sqrt(-2.0 * log(uniform01(g, 0u)));
  out[i] = dt(P.scale * r * cos(6.283185307179586 * uniform01(g, 1u)));
}`;
  return { name: 'fill-normal', code, bindings, params };
});

/** Fills `count` elements of one chunk; `offset` is the chunk's first element in the whole tensor. */
export async function encodeFillNormal(enc: StepEncoder, dtype: DType, out: TrackedBuffer, count: number, offset: number, seed: number, stream: number, std: number): Promise<void> {
  await enc.dispatch({ source: fillNormal(dtype), params: { count, offset, seed, stream, scale: std }, buffers: { out }, workgroups: grid(Math.ceil(count / 256)) });
}
