import { afterAll, describe, expect, it } from 'vitest';
import { balancedLoads, layerConfig, type LayerConfig } from '../../src/config.js';
import { MoELayer, seededInputs } from '../../src/layer.js';
import { evaluate } from '../../src/plan/model.js';
import { routingModel } from '../../src/plan/routing.js';
import { routeReference, toFloat64 } from '../../src/reference/index.js';
import { STRATEGIES } from '../../src/registry.js';
import { expectVerified } from '../helpers/checks.js';
import { testGpu } from '../helpers/gpu.js';
import { memoryFigures, stepsMatchTable } from '../helpers/memory.js';

afterAll(async () => (await testGpu()).destroy());

/**
 * --routing balanced (docs/design.md#balanced-routing) through every strategy: each takes its
 * routing from the shared GPU router, so each must route exactly as the float64 reference does
 * and pass verify. Shapes are tiny (lavapipe) and sit on the edges of the assignment.
 */
const balanced = (partial: Partial<LayerConfig>) => layerConfig({ seed: 9, routing: 'balanced', ...partial });

const SHAPES: [string, LayerConfig][] = [
  ['T = 1: fewer pairs than experts', balanced({ tokens: 1, hidden: 10, ffn: 14, experts: 5, topK: 2 })],
  ['E does not divide T·k, odd sizes', balanced({ tokens: 37, hidden: 9, ffn: 13, experts: 5, topK: 3 })],
  ['k = E', balanced({ tokens: 30, hidden: 8, ffn: 12, experts: 4, topK: 4 })],
  ['k = 1 (gate = p), aux loss on, gelu', balanced({ tokens: 48, hidden: 16, ffn: 24, experts: 6, topK: 1, auxLoss: 0.01, activation: 'gelu' })],
];

describe('balanced routing on the GPU router, through every strategy', () => {
  for (const strategy of STRATEGIES) {
    it(`${strategy.id}: experts, loads and gates as the float64 reference`, async () => {
      const config = balanced({ tokens: 37, hidden: 9, ffn: 13, experts: 5, topK: 3 });
      const inputs = seededInputs(config);
      const f64 = toFloat64(inputs);
      const ref = routeReference(config, f64.X, f64.Wr);
      const layer = await MoELayer.fromConfig(await testGpu(), config, { impl: strategy.id });
      try {
        layer.setInputs(inputs);
        await layer.forward();
        const routing = await layer.readRouting();
        const summary = await layer.routingSummary();
        expect(Array.from(routing.experts)).toEqual(Array.from(ref.experts));
        expect(summary.expertLoads).toEqual(balancedLoads(config));
        expect(summary.droppedPairs).toBe(0);
        for (let p = 0; p < ref.gates.length; p++) expect(Math.abs(routing.gates[p] - ref.gates[p]), `gate ${p}`).toBeLessThan(1e-6);
      } finally {
        layer.destroy();
      }
    });
  }
});

describe('balanced routing memory: allocator = buffer table = plan, to the byte', () => {
  // R = 128 over E = 6: loads 22, 22, 21, 21, 21, 21.
  const config = balanced({ tokens: 64, hidden: 16, ffn: 24, experts: 6, topK: 2 });
  for (const strategy of STRATEGIES) {
    it(strategy.id, async () => {
      const { routing, measured } = await stepsMatchTable(strategy, config);
      expect(routing.expertLoads).toEqual([22, 22, 21, 21, 21, 21]);
      const planned = evaluate(strategy, config, config.tokens, { config, layers: 1, dtype: 'f32', optimizer: 'none', expertParallel: 1, memory: null }, routingModel(config));
      expect(memoryFigures(planned.layer)).toEqual(memoryFigures(measured));
    });
  }
});

describe('verify passes with balanced routing', () => {
  for (const [name, config] of SHAPES) {
    for (const strategy of STRATEGIES) {
      it(`${strategy.id}: ${name}`, async () => {
        const run = await expectVerified(strategy.id, config);
        expect(run.nearTieTokens).toBe(0);
        expect(run.droppedPairs).toBe(0);
      });
    }
  }
});
