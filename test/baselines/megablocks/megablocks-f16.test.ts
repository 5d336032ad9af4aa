import { afterAll, describe, expect, it } from 'vitest';
import { megablocks } from '../../../baselines/megablocks/megablocks.js';
import { megablocksGrouped } from '../../../baselines/megablocks/megablocks-grouped.js';
import { layerConfig, type LayerConfig } from '../../../src/config.js';
import type { Strategy } from '../../../src/strategy/contract.js';
import { expectF16Halving, stepsMatchTable } from '../../helpers/memory.js';
import { testGpu } from '../../helpers/gpu.js';
import { expectVerified } from '../../helpers/checks.js';
import { EDGE_GRID, type GridCase } from '../../helpers/grid.js';

/**
 * MegaBlocks at f16 storage: it keeps the input dtype, so every activation and gradient tensor
 * is f16 while the router state, the sort's integers and dg stay f32/u32. Checked against the
 * f64 reference from the f16-rounded inputs, and the allocator against the table to the byte.
 */
afterAll(async () => (await testGpu()).destroy());

const STRATEGIES: Strategy[] = [megablocks, megablocksGrouped];

const GRID: GridCase[] = [
  ...EDGE_GRID,
  ['forced small chunks ([P,·], [T,k,d] and weights split)', { tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2 }, 2048],
  ['forced small chunks, odd widths, gelu, k=3', { tokens: 90, hidden: 23, ffn: 41, experts: 6, topK: 3, activation: 'gelu' }, 1900],
];

const f16 = (partial: Partial<LayerConfig>) => layerConfig({ seed: 7, ...partial, dtype: 'f16' });

describe.each(STRATEGIES)('$id at f16 against the float64 reference (f16-rounded inputs)', (strategy) => {
  for (const [name, partial, chunkBytes] of GRID) {
    it(name, async () => {
      const config = f16(partial);
      const run = await expectVerified(strategy.id, config, chunkBytes);
      expect(run.message ?? '').not.toMatch(/error|unsupported/i);
    });
  }

  it('forced chunks really split the f16 [P,·] and [T,k,d] buffers', () => {
    const [, partial, chunkBytes] = GRID[GRID.length - 2];
    const config = f16(partial);
    const table = strategy.bufferTable(config, { expertLoads: [], keptPairs: 0, droppedPairs: 0, capacity: null }, { chunkBytes: chunkBytes! });
    for (const name of ['Xperm', 'a', 'Y', 'scattered', 'dXperm']) {
      const s = table.step.find((b) => b.name === name)!;
      expect(s.dtype, name).toBe('f16');
      expect(s.chunks, name).toBeGreaterThan(1);
    }
  });
});

const MEMORY: [Partial<LayerConfig>, number?][] = [
  [{ tokens: 37, hidden: 9, ffn: 13, experts: 5, topK: 2 }],
  [{ tokens: 100, hidden: 33, ffn: 70, experts: 8, topK: 1, activation: 'gelu' }],
  [{ tokens: 300, hidden: 24, ffn: 40, experts: 8, topK: 4 }, 4000],
  [{ tokens: 64, hidden: 16, ffn: 24, experts: 64, topK: 8, activation: 'silu' }],
];

describe.each(STRATEGIES)('$id memory at f16', (strategy) => {
  for (const [partial, chunkBytes] of MEMORY) {
    const config = layerConfig({ seed: 5, ...partial, dtype: 'f16' });
    it(`allocator = buffer table to the byte: T${config.tokens} d${config.hidden} h${config.ffn} E${config.experts} k${config.topK} ${config.activation}${chunkBytes ? ` chunks ≤ ${chunkBytes} B` : ''}`, async () => {
      const { table } = await stepsMatchTable(strategy, config, chunkBytes);
      // Each buffer carries its real dtype: the float tensors of MegaBlocks' graph at f16, the rest not.
      const dtypes = Object.fromEntries(table.step.map((s) => [s.name, s.dtype]));
      for (const name of ['Xperm', 'a', 'u', 'Y', 'O', 'dY', 'dU', 'dA', 'dXperm', 'dX']) expect(dtypes[name], name).toBe('f16');
      for (const name of ['routerProbs', 'gates', 'dg', 'routerGrad']) expect(dtypes[name], name).toBe('f32');
      for (const name of ['tokenExperts', 'indices', 'binIds', 'bins', 'pairRows']) expect(dtypes[name], name).toBe('u32');
    });
  }

  // Even widths and unsplit buffers, so that no f16 buffer rounds up to a whole 4-byte word.
  const PEAK: Partial<LayerConfig>[] = [
    { tokens: 96, hidden: 32, ffn: 64, experts: 8, topK: 2 },
    { tokens: 64, hidden: 48, ffn: 96, experts: 4, topK: 1, activation: 'gelu' },
    { tokens: 40, hidden: 16, ffn: 24, experts: 16, topK: 4 },
  ];
  for (const partial of PEAK) {
    const base = layerConfig({ seed: 9, ...partial });
    it(`activation peak halves up to the f32/u32 buffers, phase by phase: T${base.tokens} d${base.hidden} h${base.ffn} E${base.experts} k${base.topK}`, async () => {
      // Holds only where both dtypes pad to the same rows P: the f16-rounded inputs route these seeds as the f32 ones do.
      await expectF16Halving(strategy, { seed: 9, ...partial });
    });
  }
});
