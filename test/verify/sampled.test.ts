import { afterEach, describe, expect, it } from 'vitest';
import { layerConfig, type LayerConfig } from '../../src/config.js';
import { readRuns } from '../../src/gpu/readback.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { MoELayer, seededInputs } from '../../src/layer.js';
import { toleranceFor } from '../../src/reference/index.js';
import type { SampleChoice } from '../../src/reference/sampled.js';
import { sampledCheck } from '../../src/verify/sampled.js';
import { verifyStrategies } from '../../src/verify/verify.js';
import { testGpu } from '../helpers/gpu.js';

const CONFIG = layerConfig({ tokens: 160, hidden: 16, ffn: 24, experts: 4, topK: 2 });
let layer: MoELayer | null = null;
afterEach(() => {
  layer?.destroy();
  layer = null;
});

async function check(strategy: string, c: LayerConfig, afterStep?: (l: MoELayer, s: SampleChoice) => Promise<void>) {
  layer = await MoELayer.fromConfig(await testGpu(), c, { impl: strategy });
  const inputs = seededInputs(c);
  layer.setInputs(inputs);
  return sampledCheck(layer, { inputs, tolerance: toleranceFor(c.dtype), capacity: strategy === 'tutel' || strategy === 'gshard', afterStep });
}

/** Adds delta to one f32 element of a GPU tensor (flat row-major index). */
async function plant(l: MoELayer, tensor: Tensor, index: number, delta: (v: number) => number) {
  const [value] = await readRuns(l.allocator, tensor, [{ start: index, length: 1 }]);
  const row = Math.floor(index / tensor.layout.cols);
  const chunk = Math.floor(row / tensor.layout.rowsPerChunk);
  const offset = ((row - chunk * tensor.layout.rowsPerChunk) * tensor.layout.cols + (index % tensor.layout.cols)) * 4;
  l.gpu.device.queue.writeBuffer(tensor.chunks[chunk].buffer, offset, new Float32Array([value + delta(value)]));
}

describe('sampled float64 check on the GPU', () => {
  it('agrees with the full check where both run: both pass, on every tensor', async () => {
    for (const [strategy, c] of [
      ['zero-buffer', CONFIG],
      ['tutel', layerConfig({ ...CONFIG, capacityFactor: 0.75, activation: 'gelu' })],
    ] as const) {
      const full = await verifyStrategies(await testGpu(), c, { strategies: [strategy] });
      expect(full.pass).toBe(true);
      const s = await check(strategy, c);
      layer!.destroy();
      layer = null;
      expect(s.pass, JSON.stringify(s.tensors)).toBe(true);
      expect(s.tensors.map((t) => t.tensor)).toEqual(c.activation === 'swiglu' ? ['O', 'dX', 'dWr', 'dW1', 'dW2', 'dW3'] : ['O', 'dX', 'dWr', 'dW1', 'dW2']);
      expect(s.sample.tokens).toBeGreaterThanOrEqual(64);
      expect(s.sample.units).toBe(c.experts * 2);
      if (strategy === 'tutel') expect(s.droppedPairs.gpu).toBeGreaterThan(0);
      expect(s.droppedPairs.gpu).toBe(s.droppedPairs.reference);
      // Sampled errors are of the same order as the full ones.
      for (const t of s.tensors) expect(t.relError).toBeLessThan(1e-5);
    }
  });

  it('inputs generated on the GPU (as at large shapes) are read back for the reference', async () => {
    layer = await MoELayer.fromConfig(await testGpu(), CONFIG, { impl: 'tutel' });
    await layer.randomizeOnGpu();
    const s = await sampledCheck(layer, { inputs: null, tolerance: toleranceFor('f32'), capacity: true });
    expect(s.pass, JSON.stringify(s.tensors)).toBe(true);
    expect(s.tensors).toHaveLength(6);
  });

  it('f16 storage with odd sizes: half elements read back from the middle of 4-byte words', async () => {
    const c = layerConfig({ tokens: 150, hidden: 13, ffn: 21, experts: 3, topK: 2, dtype: 'f16' });
    const s = await check('megablocks-grouped', c);
    expect(s.pass, JSON.stringify(s.tensors)).toBe(true);
    expect(s.tensors).toHaveLength(6);
  });

  it('catches an error planted in one row of O', async () => {
    const s = await check('zero-buffer', CONFIG, async (l, sample) => {
      const O = l.gpuTensors().output!;
      const t = sample.tokens[3];
      for (let i = 0; i < CONFIG.hidden; i++) await plant(l, O, t * CONFIG.hidden + i, (v) => 0.01 * v);
    });
    expect(s.pass).toBe(false);
    expect(s.tensors.filter((t) => !t.pass).map((t) => t.tensor)).toEqual(['O']);
  });

  it('catches an error planted in one column of dW2', async () => {
    const { hidden: d, ffn: h } = CONFIG;
    const s = await check('megablocks', CONFIG, async (l) => {
      const dW2 = l.gpuTensors().layer.dW2;
      for (let j = 0; j < h; j++) await plant(l, dW2, 2 * h * d + j * d + 5, (v) => 0.05 * v); // expert 2, column 5
    });
    expect(s.tensors.filter((t) => !t.pass).map((t) => t.tensor)).toEqual(['dW2']);
  });

  it('catches an error planted in one element of dX', async () => {
    const s = await check('gshard', layerConfig({ ...CONFIG, capacityFactor: 2 }), async (l, sample) => {
      await plant(l, l.gpuTensors().inputGrad!, sample.tokens[10] * CONFIG.hidden + 7, (v) => 0.05 * v + 1e-3);
    });
    expect(s.tensors.filter((t) => !t.pass).map((t) => t.tensor)).toEqual(['dX']);
  });
});
