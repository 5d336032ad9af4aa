import { afterAll, describe, expect, it } from 'vitest';
import { tableFigures } from '../../src/buffer-table.js';
import { layerConfig, type LayerConfig } from '../../src/config.js';
import { MoELayer } from '../../src/layer.js';
import { zeroBuffer } from '../../src/strategies/zero-buffer.js';
import { verifyStrategies } from '../../src/verify.js';
import { testGpu } from '../helpers/gpu.js';
import { EDGE_GRID, type GridCase } from '../helpers/grid.js';
import { f16Halving, memoryFigures } from '../helpers/memory.js';

afterAll(async () => (await testGpu()).destroy());

const GRID: GridCase[] = [
  ...EDGE_GRID,
  ['checkpoint none (u kept)', { tokens: 70, hidden: 24, ffn: 40, experts: 6, topK: 2, checkpoint: 'none' }],
  ['checkpoint full', { tokens: 70, hidden: 24, ffn: 40, experts: 6, topK: 2, checkpoint: 'full' }],
  ['forced small chunks (odd f16 element counts per chunk)', { tokens: 150, hidden: 23, ffn: 41, experts: 8, topK: 2 }, 4096],
  ['slot passes, forced chunks', { tokens: 520, hidden: 12, ffn: 16, experts: 2, topK: 2 }, 4096],
];

describe('zero-buffer at f16 against the float64 reference on f16-rounded inputs', () => {
  for (const [name, partial, chunkBytes] of GRID) {
    it(name, async () => {
      const config = layerConfig({ seed: 5, ...partial, dtype: 'f16' });
      const result = await verifyStrategies(await testGpu(), config, { strategies: ['zero-buffer'], chunkBytes });
      const run = result.strategies[0];
      expect(result.tolerance).toBe(1e-2);
      for (const t of run.tensors) expect.soft(t.relError, `${t.tensor} relative error`).toBeLessThanOrEqual(1e-2);
      expect(run.status, run.message).toBe('pass');
      // f16 storage really rounds: a result at f32 precision would mean the f16 path never ran.
      expect(Math.max(...run.tensors.filter((t) => t.tensor !== 'dWr').map((t) => t.relError))).toBeGreaterThan(1e-5);
    });
  }
});

const MEMORY: [Partial<LayerConfig>, number?][] = [
  [{ tokens: 64, hidden: 16, ffn: 24, experts: 4, topK: 2 }],
  [{ tokens: 100, hidden: 32, ffn: 64, experts: 8, topK: 2, checkpoint: 'none' }],
  [{ tokens: 520, hidden: 12, ffn: 16, experts: 2, topK: 2 }, 4096],
];

describe('zero-buffer memory at f16', () => {
  for (const [partial, chunkBytes] of MEMORY) {
    const name = Object.entries(partial).map(([k, v]) => `${k} ${v}`).join(', ');
    it(`${name}: allocator = table to the byte, activation peak halved up to the full-width routing state`, async () => {
      const gpu = await testGpu();
      const measure = async (dtype: 'f32' | 'f16') => {
        const config = layerConfig({ ...partial, dtype });
        const layer = await MoELayer.fromConfig(gpu, config, { dispatch: 'zero-buffer', chunkBytes });
        layer.randomize();
        const memory = await layer.trainStep();
        layer.destroy();
        const R = config.tokens * config.topK;
        const table = zeroBuffer.bufferTable(config, { expertLoads: [], keptPairs: R, droppedPairs: 0, capacity: null }, { chunkBytes: layer.chunkBytes });
        expect(memoryFigures(memory)).toEqual(memoryFigures(tableFigures(table)));
        return { memory, table };
      };
      const f32 = await measure('f32');
      const f16 = await measure('f16');
      const { maxFixed } = f16Halving(f32.table, f16.table);
      expect(f16.memory.activationPeak).toBeGreaterThanOrEqual(f32.memory.activationPeak / 2);
      expect(f16.memory.activationPeak).toBeLessThanOrEqual((f32.memory.activationPeak + maxFixed) / 2);
      expect(maxFixed / f32.memory.activationPeak).toBeLessThan(0.35);
    });
  }
});
