import { THREADS, type FragmentShape } from '../spec.js';

export type { FragmentShape } from '../spec.js';

/**
 * The matrix engine's fragment (spec.ts FragmentShape): which shapes exist is the adapter's
 * (Dawn's adapter.info.subgroupMatrixConfigs, docs/design.md#tensor-cores): NVIDIA offers f16→f32
 * at 16×16×16, 16×8×16 and 16×8×8 with subgroups of 32; other vendors list others. The engine
 * builds its subgroup grid, fragment offsets and loop counts from the shape chosen here, so one
 * adapter's numbers are not baked into the kernels (issue 26: "from the adapter, not hard-coded").
 */
/** What the engine was built and measured with (every H100/H200 figure in docs/performance.md). */
export const DEFAULT_FRAGMENT: FragmentShape = { m: 16, n: 16, k: 16, subgroupSize: 32 };

/** One entry of Dawn's adapter.info.subgroupMatrixConfigs. */
export interface MatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export function fragmentLabel(f: FragmentShape): string {
  return `${f.m}×${f.n}×${f.k}/${f.subgroupSize}`;
}

/**
 * Why the engine cannot use fragment `f` (null: it can). The staged tiles are vec4<f16> arrays,
 * so a fragment's offsets must fall on 4 halves; the K step (16, 32 or 64) must hold whole k
 * blocks; the 256-thread workgroup must hold whole subgroups; and the emulation (and the band
 * hand-off) gives every lane the same number of accumulator elements.
 */
export function fragmentRefusal(f: FragmentShape): string | null {
  const label = fragmentLabel(f);
  if (![8, 16].includes(f.m) || ![8, 16].includes(f.n)) return `fragment ${label}: the engine takes m and n of 8 or 16`;
  if (![8, 16].includes(f.k)) return `fragment ${label}: the engine takes k of 8 or 16 (its K steps are 16, 32 and 64)`;
  if (!(f.subgroupSize >= 4) || THREADS % f.subgroupSize !== 0) return `fragment ${label}: subgroups of ${f.subgroupSize} do not divide a ${THREADS}-thread workgroup`;
  if ((f.m * f.n) % f.subgroupSize !== 0) return `fragment ${label}: ${f.m * f.n} accumulator elements do not split evenly over ${f.subgroupSize} lanes`;
  return null;
}

/**
 * The fragment the engine takes on an adapter: f16 operands into f32 sums, the subgroup size
 * fixed (a kernel lays its subgroups out when it is built), and of the shapes offered the one with
 * the most multiply-adds per instruction (fewest fragment loads per product), 16×16×16 first.
 */
export function chooseFragment(configs: readonly MatrixConfig[], subgroupMin: number | null, subgroupMax: number | null): { fragment: FragmentShape } | { reason: string } {
  const f16 = configs.filter((c) => c.componentType === 'f16' && c.resultComponentType === 'f32');
  if (!f16.length) return { reason: 'no f16→f32 subgroup-matrix configuration' };
  if (subgroupMin == null || subgroupMin !== subgroupMax) return { reason: `the subgroup size varies (${subgroupMin ?? '?'}..${subgroupMax ?? '?'}); the engine lays its subgroups out when a kernel is built` };
  const shapes = f16.map((c) => ({ m: c.M, n: c.N, k: c.K, subgroupSize: subgroupMin })).sort((x, y) => y.m * y.n * y.k - x.m * x.n * x.k || y.m * y.n - x.m * x.n);
  const usable = shapes.find((f) => fragmentRefusal(f) === null);
  if (!usable) return { reason: `no f16→f32 configuration the engine takes (${shapes.map((f) => `${fragmentRefusal(f)}`).join('; ')})` };
  return { fragment: usable };
}
