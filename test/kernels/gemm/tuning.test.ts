import { afterAll, describe, expect, it } from 'vitest';
import { gemmSource, withEngine, type GemmKernelSource, type GemmSpec } from '../../../kernels/gemm/core.js';
import { DENSE_PARAMS, DENSE_ROWS_TILING, REDUCE_TILE, SEGMENT_TILE } from '../../../kernels/gemm/tiling.js';
import { layerConfig } from '../../../src/config.js';
import { parseTuning, TUNING_FORMAT, type TuningTable } from '../../../src/gpu/tuning.js';
import { MoELayer } from '../../../src/layer.js';
import { testGpu } from '../../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

const table = (classes: TuningTable['classes']): TuningTable => parseTuning({ format: TUNING_FORMAT, adapter: 'test', classes }, 'test');

function spec(tile: GemmSpec['tile'], dual = false): GemmKernelSource {
  return gemmSource({
    name: 'tuning-test',
    dtype: 'f16',
    tile,
    dual,
    aContiguous: 'k',
    bContiguous: 'n',
    bindings: [
      { name: 'A', type: 'dt', access: 'read' },
      { name: 'B', type: 'dt', access: 'read' },
      ...(dual ? [{ name: 'B2', type: 'dt' as const, access: 'read' as const }] : []),
      { name: 'C', type: 'f32', access: 'read_write' },
    ],
    params: DENSE_PARAMS,
    functions: `${DENSE_ROWS_TILING}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(A[m * P.K + k]); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(B[k * P.N + n]); }
${dual ? 'fn loadB2(t: Tile, k: u32, n: u32) -> f32 { return f32(B2[k * P.N + n]); }\nfn storeC(t: Tile, m: u32, n: u32, c: f32, c2: f32) { C[m * P.N + n] = c + c2; }' : 'fn storeC(t: Tile, m: u32, n: u32, c: f32) { C[m * P.N + n] = c; }'}`,
  });
}

const built = (source: GemmKernelSource, tuning: TuningTable | null, workgroupBytes = 32768) => withEngine(source, 'subgroup-matrix-emulated', { workgroupBytes, tuning }) as GemmKernelSource;
const stagedK = (code: string) => Number(/kb \+= (?:2u \* )?(\d+)u/.exec(code)?.[1]);

describe('a tuning table at kernel build (kernels/gemm/core.ts tunedSpec)', () => {
  it("sets the matrix engine's tile, K and stages of its class, and leaves SIMT and classless tiles alone", () => {
    const segment = spec(SEGMENT_TILE);
    const untuned = built(segment, null);
    expect(untuned.code).toMatch(/const TM = 128u;\nconst TN = 128u;/);
    const tuned = built(segment, table({ segment: { m: 64, n: 64, k: 16, stages: 2 } }));
    expect(tuned.code).toMatch(/const TM = 64u;\nconst TN = 64u;/);
    expect(tuned.tile).toMatchObject({ m: 64, n: 64 });
    expect(tuned.tuned).toBe(true);
    expect(stagedK(tuned.code)).toBe(16);
    expect(tuned.code).toMatch(/kb \+= 2u \* 16u/); // two staging buffers: the unrolled double-buffered loop
    // The reduce entry does not touch a segment tile; a classless tile (dense) takes no entry; SIMT is never tuned.
    expect(built(segment, table({ reduce: { m: 64, n: 64 } })).code).toBe(untuned.code);
    expect(built(spec({ m: 128, n: 128 }), table({ segment: { m: 64, n: 64 }, reduce: { m: 64, n: 64 } })).code).toMatch(/const TM = 128u;/);
    expect(withEngine(segment, 'simt', { tuning: table({ segment: { m: 128, n: 256 } }) })).toBe(segment);
    expect(built(spec(REDUCE_TILE), table({ reduce: { m: 64, n: 256 } })).code).toMatch(/const TM = 64u;\nconst TN = 256u;/);
  });

  it("steps K down where the table's does not fit, and keeps the built-in tile where none does", () => {
    // A dual 128×256 tile: K 16 fits NVIDIA's 48 KiB, nothing fits lavapipe's 32 KiB.
    const dual = spec(SEGMENT_TILE, true);
    const wide = table({ segment: { m: 128, n: 256, k: 64 } });
    const at48 = built(dual, wide, 49152);
    expect(at48.tuned).toBe(true);
    expect(at48.code).toMatch(/const TN = 256u;/);
    expect(stagedK(at48.code)).toBeLessThan(64);
    const at32 = built(dual, wide, 32768);
    expect(at32.tuned).toBeUndefined();
    expect(at32.code).toBe(built(dual, null, 32768).code);
  });

  it("sets the subgroup grid (the warp tile), and keeps the built-in tile where the grid cannot split it into fragments", () => {
    const segment = spec(SEGMENT_TILE);
    const grid = (code: string) => /let sm = sg \/ (\d+)u;/.exec(code)?.[1];
    expect(grid(built(segment, null).code)).toBe('2'); // the built-in 4×2 grid: 4 rows of 2 subgroups
    const tuned = built(segment, table({ segment: { m: 128, n: 128, grid: [2, 4] } }));
    expect(tuned.tuned).toBe(true);
    expect(grid(tuned.code)).toBe('4');
    // 8 rows of subgroups over a 64-row tile leaves 8 rows each, under a 16-row fragment.
    const refused = built(segment, table({ segment: { m: 64, n: 128, grid: [8, 1] } }));
    expect(refused.tuned).toBeUndefined();
    expect(refused.code).toBe(built(segment, null).code);
  });

  it('builds one kernel per table: equal tables share it, different ones never do', () => {
    const segment = spec(SEGMENT_TILE);
    const a = built(segment, table({ segment: { m: 64, n: 128 } }));
    expect(built(segment, table({ segment: { m: 64, n: 128 } }))).toBe(a);
    expect(built(segment, table({ segment: { m: 128, n: 64 } }))).not.toBe(a);
    expect(built(segment, null)).not.toBe(a);
  });

  it('two layers with different tables on one device build their own kernels', { timeout: 120_000 }, async () => {
    const gpu = { ...(await testGpu()), gemmRequest: 'subgroup-matrix-emulated' as const };
    const tiles = async (tuning: TuningTable | null) => {
      const layer = await MoELayer.fromConfig({ ...gpu, tuning }, layerConfig({ tokens: 24, hidden: 8, ffn: 16, experts: 2, topK: 1, dtype: 'f16' }), { impl: 'zero-buffer' });
      const seen = new Set<string>();
      const original = layer.kernels.cache.get.bind(layer.kernels.cache);
      layer.kernels.cache.get = (source) => {
        if (source.name.startsWith('expert-up')) seen.add(/const TM = (\d+)u;\nconst TN = (\d+)u;/.exec(source.code)!.slice(1).join('×'));
        return original(source);
      };
      layer.randomize();
      await layer.forward();
      layer.destroy();
      return [...seen];
    };
    expect(await tiles(table({ segment: { m: 64, n: 64 } }))).toEqual(['64×64']);
    expect(await tiles(null)).toEqual(['128×128']);
  });
});
