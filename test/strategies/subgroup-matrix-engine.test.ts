import { afterAll, describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { MoELayer } from '../../src/layer.js';
import { strategyIds } from '../../src/registry.js';
import { expectVerified } from '../helpers/checks.js';
import { testGpu } from '../helpers/gpu.js';
import { EDGE_GRID, type GridCase } from '../helpers/grid.js';

afterAll(async () => (await testGpu()).destroy());

/** The edge shapes the tensor-core issue names: E = 1, k = E, T = 1, odd sizes, empty experts. */
const GRID: GridCase[] = [
  ...EDGE_GRID.filter(([name]) => /k=E|off every multiple|zipf/.test(name)),
  ['a single token and a single expert (T=1, E=1)', { tokens: 1, hidden: 10, ffn: 14, experts: 1, topK: 1 }],
  // d and h multiples of 8: the 16-byte vector hooks (zero-buffer's and MegaBlocks') stage the tiles.
  ['d 16, h 24: the vector hooks', { tokens: 70, hidden: 16, ffn: 24, experts: 5, topK: 2 }],
  // Segments of 300 rows: several 128-row matrix tiles per expert (SEGMENT_TILE.matrix), the last
  // partial, over a grid counted in 64-row metadata tiles; then row chunks of 170 cutting tiles.
  ['long segments: 128-row matrix tiles', { tokens: 300, hidden: 16, ffn: 24, experts: 2, topK: 2 }],
  ['long segments cut by row chunks', { tokens: 300, hidden: 16, ffn: 24, experts: 2, topK: 2 }, 16384],
];

/**
 * Every strategy's expert GEMMs (forward, data and weight gradients, einsum-style dispatch and
 * combine) on the subgroup-matrix engine's software stand-in at f16, against the float64
 * reference: the staging, fragment layout and epilogue hand-off the NVIDIA tensor-core path
 * runs, on lavapipe. The device run of the real intrinsics is committed under reports/.
 */
describe('every strategy on the emulated subgroup-matrix engine at f16', { timeout: 600_000 }, async () => {
  const emulated = async () => ({ ...(await testGpu()), gemmRequest: 'subgroup-matrix-emulated' as const });
  for (const id of strategyIds()) {
    for (const [name, partial, chunkBytes] of GRID) {
      it(`${id}: ${name}`, async () => {
        const config = layerConfig({ seed: 9, ...partial, dtype: 'f16', capacityFactor: 0 });
        const run = await expectVerified(id, config, chunkBytes, await emulated());
        expect(run.gemmFallbacks ?? []).toEqual([]);
      });
    }
  }

  // Each peer's plain 8-wide hooks (kernels/gemm/plain-loads.ts) are really taken, at the scalar
  // hook's index: the same step with W1's vector index planted 8 elements off gives another O.
  for (const id of strategyIds().filter((s) => s !== 'zero-buffer')) {
    it(`${id}: a planted vector index in W1's 8-wide hook changes O`, async () => {
      const gpu = await emulated();
      const config = layerConfig({ tokens: 70, hidden: 16, ffn: 24, experts: 5, topK: 2, dtype: 'f16', capacityFactor: 0, seed: 4 });
      const run = async (plant: boolean) => {
        const layer = await MoELayer.fromConfig(gpu, config, { impl: id });
        const original = layer.kernels.cache.get.bind(layer.kernels.cache);
        let planted = 0;
        if (plant) {
          layer.kernels.cache.get = (source) => {
            const code = source.code.replace(/return W18\(/g, 'return W18(8u + ');
            if (code !== source.code) planted++;
            return original({ ...source, code });
          };
        }
        layer.randomize();
        await layer.forward();
        const O = await layer.readOutput();
        layer.destroy();
        return { O, planted };
      };
      const clean = await run(false);
      const bad = await run(true);
      expect(bad.planted).toBeGreaterThan(0);
      expect(clean.O.every(Number.isFinite)).toBe(true);
      const moved = clean.O.reduce((worst, v, i) => Math.max(worst, Math.abs(v - bad.O[i])), 0);
      expect(moved).toBeGreaterThan(1e-3);
    });
  }

  it('runs every f16 expert GEMM on the engine and keeps the router on simt', async () => {
    const gpu = await emulated();
    const layer = await MoELayer.fromConfig(gpu, layerConfig({ tokens: 40, hidden: 12, ffn: 20, experts: 3, topK: 2, dtype: 'f16' }), { impl: 'zero-buffer' });
    const built: string[] = [];
    const original = layer.kernels.cache.get.bind(layer.kernels.cache);
    layer.kernels.cache.get = (source) => (built.push(`${source.name}:${source.code.includes('emulatedMma') ? 'sm' : 'simt'}`), original(source));
    layer.randomize();
    await layer.trainStep();
    layer.destroy();
    expect(built.filter((b) => b.startsWith('router')).every((b) => b.endsWith(':simt'))).toBe(true);
    expect(built.filter((b) => b.startsWith('expert-')).length).toBeGreaterThan(0);
    expect(built.filter((b) => b.startsWith('expert-')).every((b) => b.endsWith(':sm'))).toBe(true);
  });
});
