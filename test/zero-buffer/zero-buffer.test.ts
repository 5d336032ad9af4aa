import { afterAll, describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { MoELayer } from '../../src/layer.js';
import { rowTarget, scratchRows } from '../../src/zero-buffer/table.js';
import { verifyStrategies } from '../../src/verify/verify.js';
import { testGpu } from '../helpers/gpu.js';
import { expectDeterministic, expectVerified } from '../helpers/checks.js';
import { EDGE_GRID, type GridCase } from '../helpers/grid.js';

afterAll(async () => (await testGpu()).destroy());

const GRID: GridCase[] = [
  ...EDGE_GRID,
  ['checkpoint none (u kept)', { tokens: 70, hidden: 24, ffn: 40, experts: 6, topK: 2, checkpoint: 'none' }],
  ['checkpoint full (a, b recomputed)', { tokens: 70, hidden: 24, ffn: 40, experts: 6, topK: 2, checkpoint: 'full' }],
  ['extreme skew, k=2 renormalised (gates near 0 and 1)', { tokens: 64, hidden: 16, ffn: 16, experts: 8, topK: 2, skew: { kind: 'zipf', s: 30 } }],
  ['forced small chunks (activations and weights split)', { tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2 }, 4096],
  ['forced small chunks, checkpoint none, gelu', { tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2, checkpoint: 'none', activation: 'gelu' }, 3840],
  // T/E ≥ ROW_BLOCKS_BELOW: the combine and dX run slot by slot into token rows.
  ['slot passes (T/E = 300, k=2)', { tokens: 600, hidden: 8, ffn: 12, experts: 2, topK: 2 }],
  ['slot passes, forced chunks, checkpoint none', { tokens: 520, hidden: 12, ffn: 16, experts: 2, topK: 2, checkpoint: 'none' }, 4096],
];

describe('zero-buffer combine target', () => {
  it('uses scratch row blocks only when k > 1 and segments are small', () => {
    expect(rowTarget(layerConfig({ tokens: 4096, experts: 256, topK: 8 }))).toBe('rows');
    expect(rowTarget(layerConfig({ tokens: 32768, experts: 16, topK: 2 }))).toBe('tokens');
    expect(rowTarget(layerConfig({ tokens: 64, experts: 8, topK: 1 }))).toBe('tokens');
  });

  it('bounds the scratch block by T rows and by one binding', () => {
    const c = layerConfig({ tokens: 150, hidden: 24, experts: 8, topK: 2 });
    expect(scratchRows(c, 1 << 30)).toBe(150);
    expect(scratchRows(c, 4096)).toBe(Math.floor(4096 / (24 * 4)));
    expect(scratchRows({ ...c, dtype: 'f16' }, 4096)).toBe(Math.floor(4096 / (24 * 2)));
  });
});

describe('zero-buffer against the float64 reference', () => {
  for (const [name, partial, chunkBytes] of GRID) {
    it(name, async () => {
      const config = layerConfig({ seed: 7, ...partial });
      await expectVerified('zero-buffer', config, chunkBytes);
    });
  }

  it('routes to a skewed subset: an expert with no token still gives exact (zero) gradients', async () => {
    const gpu = await testGpu();
    const config = layerConfig({ tokens: 48, hidden: 12, ffn: 16, experts: 8, topK: 1, skew: { kind: 'zipf', s: 4 }, seed: 3 });
    const layer = await MoELayer.create(gpu, { tokens: 48, hidden: 12, ffn: 16, experts: 8, topK: 1, skew: config.skew, seed: 3 });
    layer.randomize();
    await layer.forward();
    const loads = (await layer.routingSummary()).expertLoads;
    await layer.backward();
    const { dW1 } = await layer.readGradients();
    layer.destroy();
    const idle = loads.findIndex((n) => n === 0);
    expect(idle, `loads ${loads}`).toBeGreaterThan(-1);
    const slice = dW1.subarray(idle * 12 * 16, (idle + 1) * 12 * 16);
    expect(slice.every((v) => v === 0)).toBe(true);
    const result = await verifyStrategies(gpu, config, { strategies: ['zero-buffer'] });
    expect(result.pass).toBe(true);
  });
});

describe('zero-buffer determinism', () => {
  it('two runs give bitwise-identical outputs and gradients', async () => {
    await expectDeterministic({ tokens: 200, hidden: 24, ffn: 40, experts: 8, topK: 2, seed: 11, chunkBytes: 8192 });
  });
});
