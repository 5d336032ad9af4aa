import { afterAll, describe, expect, it } from 'vitest';
import { scatterMoE } from '../../../baselines/scattermoe/scattermoe.js';
import { layerConfig, type LayerConfig } from '../../../src/config.js';
import { MoELayer } from '../../../src/layer.js';
import { testGpu } from '../../helpers/gpu.js';
import { expectVerified } from '../../helpers/checks.js';
import { EDGE_GRID, type GridCase } from '../../helpers/grid.js';
import { expectF16Halving } from '../../helpers/memory.js';

afterAll(async () => (await testGpu()).destroy());

const GRID: GridCase[] = [
  ...EDGE_GRID,
  ['capacity-free zipf:2 skew, k=2', { tokens: 96, hidden: 16, ffn: 24, experts: 8, topK: 2, skew: { kind: 'zipf', s: 2 } }],
  ['forced small chunks (odd f16 element counts per chunk)', { tokens: 150, hidden: 23, ffn: 41, experts: 8, topK: 2 }, 4096],
];

describe('scattermoe at f16 against the float64 reference on f16-rounded inputs', () => {
  for (const [name, partial, chunkBytes] of GRID) {
    it(name, async () => {
      const run = await expectVerified('scattermoe', layerConfig({ seed: 5, ...partial, dtype: 'f16' }), chunkBytes);
      // f16 storage really rounds: a result at f32 precision would mean the f16 path never ran.
      expect(Math.max(...run.tensors.filter((t) => t.tensor !== 'dWr').map((t) => t.relError))).toBeGreaterThan(1e-5);
    });
  }

  it('runs every expert GEMM on the (emulated) subgroup-matrix engine and the router on simt', async () => {
    const gpu = { ...(await testGpu()), gemmRequest: 'subgroup-matrix-emulated' as const };
    const layer = await MoELayer.fromConfig(gpu, layerConfig({ tokens: 40, hidden: 12, ffn: 20, experts: 3, topK: 2, dtype: 'f16' }), { impl: 'scattermoe' });
    const built: string[] = [];
    const original = layer.kernels.cache.get.bind(layer.kernels.cache);
    layer.kernels.cache.get = (source) => (built.push(`${source.name}:${source.code.includes('emulatedMma') ? 'sm' : 'simt'}`), original(source));
    layer.randomize();
    await layer.trainStep();
    layer.destroy();
    const gemms = ['smoe-up-swiglu', 'smoe-down', 'smoe-dW2', 'smoe-dU', 'smoe-dW13-swiglu', 'smoe-dX-swiglu'];
    expect(built.filter((b) => gemms.includes(b.split(':')[0])).sort()).toEqual(gemms.map((g) => `${g}:sm`).sort());
    expect(built.filter((b) => b.startsWith('router')).every((b) => b.endsWith(':simt'))).toBe(true);
  });
});

const MEMORY: [Partial<LayerConfig>, number?][] = [
  [{ tokens: 64, hidden: 16, ffn: 24, experts: 4, topK: 2 }],
  [{ tokens: 100, hidden: 32, ffn: 64, experts: 8, topK: 2, activation: 'gelu' }],
  [{ tokens: 150, hidden: 12, ffn: 16, experts: 2, topK: 2 }, 4096],
];

describe('scattermoe memory at f16', () => {
  for (const [partial, chunkBytes] of MEMORY) {
    const name = Object.entries(partial).map(([k, v]) => `${k} ${v}`).join(', ');
    it(`${name}: allocator = table to the byte, activation peak halved up to the full-width routing state`, async () => {
      const { f32, maxFixed } = await expectF16Halving(scatterMoE, partial, chunkBytes);
      expect(maxFixed / f32.activationPeak).toBeLessThan(0.35);
    });
  }
});
