import { afterAll, describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { profileStrategies } from '../../src/measure/profile.js';
import { STRATEGIES, strategyIds } from '../../src/registry.js';
import { rowTarget } from '../../src/zero-buffer/table.js';
import { testGpu } from '../helpers/gpu.js';
import { checkWork, profile } from '../helpers/work.js';

afterAll(async () => (await testGpu()).destroy());

describe('Strategy.work matches what the runner dispatches', () => {
  it('every registered strategy, at a small odd size with capacity drops possible', async () => {
    expect(STRATEGIES.length).toBeGreaterThanOrEqual(5);
    await profile(layerConfig({ tokens: 67, hidden: 24, ffn: 40, experts: 5, topK: 2, capacityFactor: 1 }), strategyIds());
  });

  it('top-1 with a plain MLP, cf = 0 (capacity from the busiest expert, read back mid-step)', async () => {
    await profile(layerConfig({ tokens: 53, hidden: 16, ffn: 24, experts: 3, topK: 1, activation: 'silu', capacityFactor: 0 }), strategyIds());
  });

  it('capacity strategies with C = 0: every pair dropped, no kernel over the empty grid', async () => {
    const config = layerConfig({ tokens: 53, hidden: 16, ffn: 24, experts: 3, topK: 2, capacityFactor: 0.01 });
    const result = await profileStrategies(await testGpu(), config, ['tutel', 'gshard']);
    for (const s of result.strategies) {
      expect(s.routing.capacity).toBe(0);
      expect(s.routing.keptPairs).toBe(0);
      checkWork(config, s);
    }
  });

  it('zero-buffer: slot passes (T/E ≥ 256) and scratch-row blocks (T/E < 256, k > 1), every checkpoint policy', async () => {
    const slots = layerConfig({ tokens: 521, hidden: 8, ffn: 12, experts: 2, topK: 2, activation: 'gelu', checkpoint: 'none' });
    const blocks = layerConfig({ tokens: 67, hidden: 16, ffn: 24, experts: 5, topK: 3, checkpoint: 'full' });
    expect([rowTarget(slots), rowTarget(blocks)]).toEqual(['tokens', 'rows']);
    for (const config of [slots, blocks]) await profile(config, ['zero-buffer']);
  });
});
