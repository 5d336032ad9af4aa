import { afterAll, describe, expect, it } from 'vitest';
import { layerConfig, type LayerConfig } from '../../src/config.js';
import { zeroBuffer } from '../../src/zero-buffer/zero-buffer.js';
import { testGpu } from '../helpers/gpu.js';
import { expectVerified } from '../helpers/checks.js';
import { EDGE_GRID, type GridCase } from '../helpers/grid.js';
import { expectF16Halving } from '../helpers/memory.js';

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
      const run = await expectVerified('zero-buffer', config, chunkBytes);
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
      const { f32, maxFixed } = await expectF16Halving(zeroBuffer, partial, chunkBytes);
      expect(maxFixed / f32.activationPeak).toBeLessThan(0.35);
    });
  }
});
