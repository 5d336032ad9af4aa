import { describe, expect, it } from 'vitest';
import type { BufferTable } from '../../../src/strategy/buffer-table.js';
import { layerConfig, type LayerConfig } from '../../../src/config.js';
import { MoELayer } from '../../../src/layer.js';
import { routeReference, toFloat64 } from '../../../src/reference/index.js';
import { generateInputs } from '../../../src/rng.js';
import type { StepMemory } from '../../../src/gpu/memory-profiler.js';
import type { Strategy } from '../../../src/strategy/contract.js';
import { stepsMatchTable } from '../../helpers/memory.js';
import { testGpu } from '../../helpers/gpu.js';
import { expectDeterministic, expectVerified } from '../../helpers/checks.js';

/**
 * The checks both capacity strategies (tutel, gshard) must pass; each test file runs them for
 * its strategy. Shapes are tiny: lavapipe runs a GEMM at about 1 GFLOP/s.
 */
export const ZIPF = { kind: 'zipf', s: 2 } as const;

export const GRID: [string, Partial<LayerConfig>, number?][] = [
  ['one expert (E=1)', { tokens: 40, hidden: 12, ffn: 20, experts: 1, topK: 1 }],
  ['k=1 with E>1', { tokens: 50, hidden: 16, ffn: 24, experts: 6, topK: 1 }],
  ['k=E', { tokens: 30, hidden: 8, ffn: 12, experts: 4, topK: 4 }],
  ['k=8 with E=64', { tokens: 96, hidden: 16, ffn: 16, experts: 64, topK: 8 }],
  ['a single token (T=1)', { tokens: 1, hidden: 10, ffn: 14, experts: 5, topK: 2 }],
  ['T, d, h off every multiple of 4 and of the tile, cf = 1.25', { tokens: 131, hidden: 67, ffn: 69, experts: 7, topK: 3, capacityFactor: 1.25 }],
  ['plain silu MLP', { tokens: 37, hidden: 9, ffn: 13, experts: 5, topK: 2, activation: 'silu' }],
  ['plain gelu MLP', { tokens: 37, hidden: 9, ffn: 13, experts: 5, topK: 2, activation: 'gelu' }],
  ['cf = 1 with zipf:2 skew (drops)', { tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, skew: ZIPF }],
  ['cf = 0 (C = busiest load) with zipf:2 skew', { tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, capacityFactor: 0, skew: ZIPF }],
  ['renormalisation off, cf = 0.5', { tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 3, normalizeGates: false, capacityFactor: 0.5 }],
  ['cf tiny: C = 0, every pair dropped', { tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, capacityFactor: 0.01 }],
  ['load-balancing loss on, with drops', { tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, auxLoss: 0.01, skew: ZIPF }],
  ['forced chunks: several whole experts a chunk, weights chunked differently', { tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2, capacityFactor: 1.5 }, 20000],
  ['forced chunks: experts split across chunks, gelu', { tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2, capacityFactor: 1.5, activation: 'gelu' }, 4096],
  ['forced chunks with cf = 0 and drops-free skew', { tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, capacityFactor: 0, skew: ZIPF }, 4000],
];


export function capacitySuite(strategy: Strategy): void {
  const id = strategy.id;

  describe(`${id} against the float64 reference with the same capacity and drops`, () => {
    for (const [name, partial, chunkBytes] of GRID) {
      it(name, async () => {
        const config = layerConfig({ seed: 7, ...partial });
        const run = await expectVerified(id, config, chunkBytes);
        expect(run.reference).toBe('ref-capacity');
      });
    }

    it('drops exactly the reference pairs under zipf:2 at cf = 1, and reports them', async () => {
      const config = layerConfig({ tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, skew: ZIPF, seed: 7 });
      const inputs = generateInputs(config);
      const f64 = toFloat64(inputs);
      const ref = routeReference(config, f64.X, f64.Wr, { capacity: true });
      const layer = await MoELayer.fromConfig(await testGpu(), config, { impl: id });
      try {
        layer.setInputs(inputs);
        await layer.forward();
        const summary = await layer.routingSummary();
        const routing = await layer.readRouting();
        expect(summary.droppedPairs).toBeGreaterThan(0);
        expect(summary.droppedPairs).toBe(ref.dropped);
        expect(summary.keptPairs).toBe(config.tokens * config.topK - ref.dropped);
        expect(summary.capacity).toBe(ref.capacity);
        expect(summary.expertLoads).toEqual(Array.from(ref.expertLoad));
        expect(Array.from(routing.kept)).toEqual(Array.from(ref.kept));
        expect(Array.from(routing.experts)).toEqual(Array.from(ref.experts));
      } finally {
        layer.destroy();
      }
    });
  });

  describe(`${id} memory: allocator = buffer table, to the byte`, () => {
    for (const [partial, chunkBytes] of MEMORY_CONFIGS) {
      const config = layerConfig(partial);
      it(memoryCaseName(config, chunkBytes), async () => {
        await expectTableMatchesAllocator(strategy, config, chunkBytes);
      });
    }
  });

  describe(`${id} determinism`, () => {
    it('two runs give bitwise-identical outputs and gradients (chunked, with drops)', async () => {
      await expectDeterministic({ tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2, skew: { kind: 'zipf', s: 1 }, seed: 11, chunkBytes: 8192, impl: id });
    });
  });
}

export const MEMORY_CONFIGS: [Partial<LayerConfig>, number?][] = [
  [{ tokens: 37, hidden: 9, ffn: 13, experts: 5, topK: 2 }],
  [{ tokens: 100, hidden: 33, ffn: 70, experts: 8, topK: 2, activation: 'gelu', checkpoint: 'full' }],
  [{ tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, capacityFactor: 0, skew: ZIPF }],
  [{ tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, capacityFactor: 0, skew: ZIPF }, 4000],
  [{ tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2, capacityFactor: 1.5 }, 4096],
  [{ tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, capacityFactor: 0.01 }],
];

export function memoryCaseName(config: LayerConfig, chunkBytes?: number): string {
  return `T${config.tokens} d${config.hidden} h${config.ffn} E${config.experts} k${config.topK} ${config.activation} cf${config.capacityFactor}${chunkBytes ? ` chunks ≤ ${chunkBytes} B` : ''}`;
}

/**
 * Two training steps measured by the allocator against the strategy's table for the realised
 * routing (C for cf = 0), and the padded [E,C,·] tensors the capacity design saves.
 */
export async function expectTableMatchesAllocator(strategy: Strategy, config: LayerConfig, chunkBytes?: number): Promise<{ table: BufferTable; measured: StepMemory }> {
  const { table, routing, measured } = await stepsMatchTable(strategy, config, chunkBytes);
  // What the capacity design materialises: the padded [E,C,·] tensors, all saved, silu(a) among
  // them where the expert is SwiGLU (autograd's mul keeps both factors; fidelity/tutel.json).
  const C = routing.capacity!;
  const { experts: E, hidden: d, ffn: h } = config;
  const saved = table.step.filter((s) => s.tag === 'activations-saved' && s.shape.length === 3 && s.shape[0] === E && s.shape[1] === C);
  const expected = config.activation === 'swiglu' ? ['a', 'b', 'dispatched', 'siluA', 'u', 'y'] : ['a', 'dispatched', 'u', 'y'];
  expect(saved.map((s) => s.name).sort()).toEqual(expected);
  for (const s of saved) expect(s.shape[2]).toBe(['dispatched', 'y'].includes(s.name) ? d : h);
  if (chunkBytes) expect(table.step.find((s) => s.name === 'dispatched')!.chunks).toBeGreaterThan(1);
  return { table, measured };
}
