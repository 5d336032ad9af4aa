import { afterAll, describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { MoELayer } from '../../src/layer.js';
import { verifyStrategies } from '../../src/verify.js';
import { testGpu } from '../helpers/gpu.js';
import { EDGE_GRID, type GridCase } from '../helpers/grid.js';

afterAll(async () => (await testGpu()).destroy());

const GRID: GridCase[] = [
  ...EDGE_GRID,
  ['checkpoint none (u kept)', { tokens: 70, hidden: 24, ffn: 40, experts: 6, topK: 2, checkpoint: 'none' }],
  ['checkpoint full (a, b recomputed)', { tokens: 70, hidden: 24, ffn: 40, experts: 6, topK: 2, checkpoint: 'full' }],
  ['extreme skew, k=2 renormalised (gates near 0 and 1)', { tokens: 64, hidden: 16, ffn: 16, experts: 8, topK: 2, skew: { kind: 'zipf', s: 30 } }],
  ['forced small chunks (activations and weights split)', { tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2 }, 4096],
  ['forced small chunks, checkpoint none, gelu', { tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2, checkpoint: 'none', activation: 'gelu' }, 3840],
];

describe('zero-buffer against the float64 reference', () => {
  for (const [name, partial, chunkBytes] of GRID) {
    it(name, async () => {
      const config = layerConfig({ seed: 7, ...partial });
      const result = await verifyStrategies(await testGpu(), config, { strategies: ['zero-buffer'], chunkBytes });
      const run = result.strategies[0];
      for (const t of run.tensors) expect.soft(t.relError, `${t.tensor} relative error`).toBeLessThanOrEqual(1e-4);
      expect(run.status, run.message).toBe('pass');
      expect(run.tensors.map((t) => t.tensor)).toEqual(config.activation === 'swiglu' ? ['O', 'dX', 'dWr', 'dW1', 'dW2', 'dW3'] : ['O', 'dX', 'dWr', 'dW1', 'dW2']);
    });
  }

  it('routes to a skewed subset: an expert with no token still gives exact (zero) gradients', async () => {
    const gpu = await testGpu();
    const config = layerConfig({ tokens: 48, hidden: 12, ffn: 16, experts: 8, topK: 1, skew: { kind: 'zipf', s: 4 }, seed: 3 });
    const layer = await MoELayer.create(gpu, { tokens: 48, hidden: 12, ffn: 16, numExperts: 8, topK: 1, skew: config.skew, seed: 3 });
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
    const gpu = await testGpu();
    const run = async () => {
      const layer = await MoELayer.create(gpu, { tokens: 200, hidden: 24, ffn: 40, numExperts: 8, topK: 2, seed: 11, chunkBytes: 8192 });
      layer.randomize();
      await layer.trainStep();
      const O = await layer.readOutput();
      const g = await layer.readGradients();
      layer.destroy();
      return [O, g.dX, g.dWr, g.dW1, g.dW2, g.dW3!];
    };
    const first = await run();
    const second = await run();
    first.forEach((tensor, i) => expect(Buffer.from(second[i].buffer).equals(Buffer.from(tensor.buffer))).toBe(true));
  });
});
