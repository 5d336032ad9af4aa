import { afterAll, describe, expect, it } from 'vitest';
import { megablocks } from '../../../baselines/megablocks/megablocks.js';
import { megablocksGrouped } from '../../../baselines/megablocks/megablocks-grouped.js';
import { paddedRows } from '../../../baselines/megablocks/table.js';
import { layerConfig, type LayerConfig } from '../../../src/config.js';
import { MoELayer } from '../../../src/layer.js';
import type { Strategy } from '../../../src/strategy/contract.js';
import { verifyStrategies } from '../../../src/verify/verify.js';
import { stepsMatchTable } from '../../helpers/memory.js';
import { testGpu } from '../../helpers/gpu.js';
import { expectDeterministic, expectVerified } from '../../helpers/checks.js';
import { EDGE_GRID, type GridCase } from '../../helpers/grid.js';

afterAll(async () => (await testGpu()).destroy());

const STRATEGIES: Strategy[] = [megablocks, megablocksGrouped];

const GRID: GridCase[] = [
  ...EDGE_GRID,
  ['E=512 (two sort passes)', { tokens: 64, hidden: 8, ffn: 8, experts: 512, topK: 2 }],
  ['forced small chunks ([P,·], [T,k,d] and weights split)', { tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2 }, 4096],
  ['forced small chunks, gelu, k=3', { tokens: 90, hidden: 24, ffn: 40, experts: 6, topK: 3, activation: 'gelu' }, 3840],
];


describe.each(STRATEGIES)('$id against the float64 reference', (strategy) => {
  for (const [name, partial, chunkBytes] of GRID) {
    it(name, async () => {
      const config = layerConfig({ seed: 7, ...partial });
      await expectVerified(strategy.id, config, chunkBytes);
    });
  }

  it('an expert with no token gets exactly zero gradients and no padded rows', async () => {
    const gpu = await testGpu();
    const config = layerConfig({ tokens: 48, hidden: 12, ffn: 16, experts: 8, topK: 1, skew: { kind: 'zipf', s: 4 }, seed: 3 });
    const layer = await MoELayer.fromConfig(gpu, config, { impl: strategy.id });
    layer.randomize();
    await layer.forward();
    const summary = await layer.routingSummary();
    await layer.backward();
    const { dW1, dW2 } = await layer.readGradients();
    layer.destroy();
    const loads = summary.expertLoads;
    expect(loads.reduce((a, b) => a + b, 0)).toBe(48);
    expect(summary).toMatchObject({ keptPairs: 48, droppedPairs: 0, capacity: null });
    const idle = loads.findIndex((n) => n === 0);
    expect(idle, `loads ${loads}`).toBeGreaterThan(-1);
    const size = 12 * 16;
    expect(dW1.subarray(idle * size, (idle + 1) * size).every((v) => v === 0)).toBe(true);
    expect(dW2.subarray(idle * size, (idle + 1) * size).every((v) => v === 0)).toBe(true);
    const table = strategy.bufferTable(config, summary, { chunkBytes: layer.chunkBytes });
    const rows = table.step.find((s) => s.name === 'Xperm')!.shape[0];
    expect(rows).toBe(strategy.id === 'megablocks' ? loads.filter((n) => n > 0).length * 128 : 48);
    const result = await verifyStrategies(gpu, config, { strategies: [strategy.id] });
    expect(result.pass).toBe(true);
  });

  it('two runs give bitwise-identical outputs and gradients', async () => {
    await expectDeterministic({ tokens: 200, hidden: 24, ffn: 40, experts: 8, topK: 2, seed: 11, chunkBytes: 8192, impl: strategy.id });
  });

  it('refuses what its kernels cannot do, with the reason', () => {
    expect(strategy.unsupported(layerConfig({ experts: 513, topK: 2 }))).toMatch(/513 experts/);
    expect(strategy.unsupported(layerConfig({ experts: 16, topK: 9 }))).toMatch(/top-k 9/);
    expect(strategy.unsupported(layerConfig({ experts: 512, topK: 8, tokens: 64 }))).toBeNull();
  });
});

const MEMORY: [Partial<LayerConfig>, number?][] = [
  [{ tokens: 37, hidden: 9, ffn: 13, experts: 5, topK: 2 }],
  [{ tokens: 100, hidden: 33, ffn: 70, experts: 8, topK: 1, activation: 'gelu' }],
  [{ tokens: 300, hidden: 24, ffn: 40, experts: 8, topK: 4 }, 8000],
  [{ tokens: 64, hidden: 16, ffn: 24, experts: 64, topK: 8, activation: 'silu' }],
  [{ tokens: 64, hidden: 16, ffn: 16, experts: 8, topK: 1, skew: { kind: 'zipf', s: 4 } }],
];

describe.each(STRATEGIES)('$id memory: allocator = buffer table, to the byte', (strategy) => {
  for (const [partial, chunkBytes] of MEMORY) {
    const config = layerConfig({ seed: 5, ...partial });
    it(`T${config.tokens} d${config.hidden} h${config.ffn} E${config.experts} k${config.topK} ${config.activation}${chunkBytes ? ` chunks ≤ ${chunkBytes} B` : ''}`, async () => {
      const { table, routing: summary } = await stepsMatchTable(strategy, config, chunkBytes);
      const R = config.tokens * config.topK;
      const P = strategy.id === 'megablocks' ? paddedRows(summary.expertLoads) : R;
      expect(P).toBeLessThanOrEqual(R + 127 * config.experts);
      const byName = new Map(table.step.map((s) => [s.name, s]));
      const saved = table.step.filter((s) => s.tag === 'activations-saved' && s.shape[0] === P && s.name !== 'routerProbs').map((s) => s.name);
      expect(saved.sort()).toEqual((config.activation === 'swiglu' ? ['Xperm', 'Y', 'a', 'b', 'siluA', 'u'] : ['Xperm', 'Y', 'a', 'u']).sort());
      expect(byName.get('Xperm')!.shape).toEqual([P, config.hidden]);
      expect(byName.get('scattered')?.shape ?? null).toEqual(config.topK > 1 ? [config.tokens, config.topK, config.hidden] : null);
    });
  }

  it('without realised loads, plans the padded bound', () => {
    const config = layerConfig({ tokens: 100, hidden: 8, ffn: 8, experts: 16, topK: 2 });
    const table = strategy.bufferTable(config, { expertLoads: [], keptPairs: 200, droppedPairs: 0, capacity: null }, { chunkBytes: 1 << 30 });
    const rows = table.step.find((s) => s.name === 'Xperm')!.shape[0];
    expect(rows).toBe(strategy.id === 'megablocks' ? Math.floor((200 + 127 * 16) / 128) * 128 : 200);
  });
});
