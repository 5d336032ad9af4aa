import { describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { findStrategy, registerStrategy, strategyIds } from '../../src/registry.js';
import { exampleStrategy } from '../fixtures/example-strategy/strategy.js';
import { expectVerified } from '../helpers/checks.js';
import { EDGE_GRID } from '../helpers/grid.js';
import { stepsMatchTable } from '../helpers/memory.js';
import { profile } from '../helpers/work.js';

/**
 * The README's "Adding a strategy", held to its word: a strategy kept outside src/ (the fixture)
 * joins with one registration and then passes what every built-in strategy passes.
 */
registerStrategy(exampleStrategy);

describe('adding a strategy (the example under test/fixtures/example-strategy)', () => {
  it('one registration makes it known to the tool', () => {
    expect(strategyIds()).toContain('example');
    expect(findStrategy('example')).toBe(exampleStrategy);
    expect(() => registerStrategy(exampleStrategy)).toThrow(/already registered/);
  });

  for (const [name, partial] of EDGE_GRID) {
    it(`verify passes against the float64 reference: ${name}`, async () => {
      await expectVerified('example', layerConfig(partial));
    });
  }

  it('the allocator equals its buffer table to the byte', async () => {
    await stepsMatchTable(exampleStrategy, layerConfig({ tokens: 45, hidden: 12, ffn: 20, experts: 5, topK: 2 }));
    await stepsMatchTable(exampleStrategy, layerConfig({ tokens: 33, hidden: 8, ffn: 12, experts: 3, topK: 1, activation: 'gelu' }));
  });

  it('its work entries are the kernels profile times, with the useful FLOPs of a train step', async () => {
    await profile(layerConfig({ tokens: 37, hidden: 12, ffn: 20, experts: 4, topK: 2 }), ['example']);
    await profile(layerConfig({ tokens: 29, hidden: 8, ffn: 12, experts: 3, topK: 1, activation: 'silu' }), ['example']);
  });

  it('refuses what it does not support, with the reason', () => {
    expect(exampleStrategy.unsupported(layerConfig({ dtype: 'f16' }))).toMatch(/f32 only/);
  });
});
