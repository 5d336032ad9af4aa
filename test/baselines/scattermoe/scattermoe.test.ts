import { afterAll, describe, expect, it } from 'vitest';
import { scatterMoE } from '../../../baselines/scattermoe/scattermoe.js';
import { layerConfig } from '../../../src/config.js';
import { MoELayer } from '../../../src/layer.js';
import { testGpu } from '../../helpers/gpu.js';
import { expectDeterministic, expectVerified } from '../../helpers/checks.js';
import { EDGE_GRID, type GridCase } from '../../helpers/grid.js';
import { profile } from '../../helpers/work.js';

afterAll(async () => (await testGpu()).destroy());

const GRID: GridCase[] = [
  ...EDGE_GRID,
  ['capacity-free zipf:2 skew, k=2 (uneven loads, experts of a few rows and of several blocks)', { tokens: 96, hidden: 16, ffn: 24, experts: 8, topK: 2, skew: { kind: 'zipf', s: 2 } }],
  ['extreme skew, k=2 renormalised', { tokens: 64, hidden: 16, ffn: 16, experts: 8, topK: 2, skew: { kind: 'zipf', s: 30 } }],
  ['rows, weights and scattered outputs in forced small chunks', { tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2 }, 4096],
  ['forced small chunks, gelu, k=3', { tokens: 90, hidden: 24, ffn: 40, experts: 6, topK: 3, activation: 'gelu' }, 3840],
];

describe('scattermoe against the float64 reference', () => {
  for (const [name, partial, chunkBytes] of GRID) {
    it(name, async () => {
      await expectVerified('scattermoe', layerConfig({ seed: 7, ...partial }), chunkBytes);
    });
  }

  it('an expert with no token gets exactly zero weight gradients', async () => {
    const config = layerConfig({ tokens: 48, hidden: 12, ffn: 16, experts: 8, topK: 2, skew: { kind: 'zipf', s: 4 }, seed: 3 });
    const layer = await MoELayer.fromConfig(await testGpu(), config, { impl: 'scattermoe' });
    try {
      layer.randomize();
      await layer.forward();
      const summary = await layer.routingSummary();
      await layer.backward();
      const { dW1, dW2, dW3 } = await layer.readGradients();
      expect(summary).toMatchObject({ keptPairs: 96, droppedPairs: 0, capacity: null });
      expect(summary.expertLoads.reduce((a, b) => a + b, 0)).toBe(96);
      const idle = summary.expertLoads.findIndex((n) => n === 0);
      expect(idle, `loads ${summary.expertLoads}`).toBeGreaterThan(-1);
      const size = 12 * 16;
      for (const g of [dW1, dW2, dW3!]) expect(g.subarray(idle * size, (idle + 1) * size).every((v) => v === 0)).toBe(true);
    } finally {
      layer.destroy();
    }
  });

  it('two runs give bitwise-identical outputs and gradients', async () => {
    await expectDeterministic({ tokens: 200, hidden: 24, ffn: 40, experts: 8, topK: 2, seed: 11, chunkBytes: 8192, impl: 'scattermoe' });
  });

  for (const activation of ['swiglu', 'gelu'] as const) {
    it(`declares the work of exactly the kernels profile times (${activation}), whose useful FLOPs sum to the layer's`, async () => {
      await profile(layerConfig({ tokens: 40, hidden: 12, ffn: 20, experts: 3, topK: 2, activation, seed: 3 }), ['scattermoe']);
    });
  }

  it('refuses what its kernels cannot do, with the reason', () => {
    expect(scatterMoE.unsupported(layerConfig({ experts: 16, topK: 9 }))).toMatch(/top-k 9/);
    expect(scatterMoE.unsupported(layerConfig({ experts: 4097, topK: 1 }))).toMatch(/4097 experts/);
    expect(scatterMoE.unsupported(layerConfig({ tokens: 2 ** 22, experts: 16, topK: 2 }))).toMatch(/row blocks/);
    expect(scatterMoE.unsupported(layerConfig({ experts: 256, topK: 8, tokens: 4096 }))).toBeNull();
  });
});
