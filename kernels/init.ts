import { bindingPrelude, grid, LINEAR_WORKGROUP, perDtype, type KernelSource, type StepEncoder } from './program.js';
import type { DType } from '../src/config.js';
import type { TrackedBuffer } from '../src/gpu/allocator.js';
import { COLUMN_SALT, H2_SALT, SEED_SALT, TENSOR_SALT, type FillScale } from '../src/fill.js';

const hex = (v: number) => `0x${v.toString(16)}u`;

/**
 * Fills one chunk of a tensor from an integer hash of (seed, tensor, row, column): the same
 * values on every GPU, for every binding size, and on the host (src/fill.ts replays it exactly
 * for the sampled check; docs/design.md#inputs). Integer arithmetic only, then one exact
 * conversion: (2S − 3(m−1))·2^−q is an integer below 2¹¹ times a power of two, so the f32
 * product and its f16 store are exact, where Box–Muller's log and cos are not (WGSL does not
 * round them correctly: 22,745 of 32,768 values differed from a float64 replica on lavapipe).
 */
export const fillHashed = perDtype((dtype): KernelSource => {
  const bindings = [{ name: 'out', type: 'dt', access: 'read_write' }] as const;
  const params = [
    { name: 'count', type: 'u32' },
    { name: 'rowStart', type: 'u32' },
    { name: 'cols', type: 'u32' },
    { name: 'seed', type: 'u32' },
    { name: 'tensor', type: 'u32' },
    { name: 'levels', type: 'u32' },
    { name: 'step', type: 'f32' },
  ] as const;
  const code = `${bindingPrelude({ bindings, params }, dtype)}
fn mix(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  return x ^ (x >> 16u);
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (${LINEAR_WORKGROUP}) * 256u + li;
  if (i >= P.count) { return; }
  let row = P.rowStart + i / P.cols;
  let col = i % P.cols;
  let tensorKey = mix(mix(P.seed ^ ${hex(SEED_SALT)}) ^ ((P.tensor + 1u) * ${hex(TENSOR_SALT)}));
  let rowKey = mix(tensorKey ^ row);
  let h1 = mix(mix(col ^ ${hex(COLUMN_SALT)}) ^ rowKey);
  let h2 = mix(h1 ^ ${hex(H2_SALT)});
  let m = P.levels;
  let f3 = ((h1 & 0x7ffu) << 10u) | (h2 & 0x3ffu);
  let s = (((h1 >> 11u) * m) >> 21u) + (((h2 >> 11u) * m) >> 21u) + ((f3 * m) >> 21u);
  out[i] = dt(f32(i32(2u * s) - i32(3u * (m - 1u))) * P.step);
}`;
  return { name: 'fill-hashed', code, bindings, params };
});

/** Fills the `rows` rows of one chunk whose first row is `rowStart` of a tensor of `cols` columns. */
export async function encodeFillHashed(enc: StepEncoder, dtype: DType, out: TrackedBuffer, rowStart: number, rows: number, cols: number, seed: number, tensor: number, scale: FillScale): Promise<void> {
  const count = rows * cols;
  await enc.dispatch({ source: fillHashed(dtype), params: { count, rowStart, cols, seed, tensor, levels: scale.levels, step: 2 ** -scale.shift }, buffers: { out }, workgroups: grid(Math.ceil(count / 256)) });
}
