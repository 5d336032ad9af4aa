import { afterAll, describe, expect, it } from 'vitest';
import { gshard } from '../../../baselines/capacity/gshard.js';
import { tutel } from '../../../baselines/capacity/tutel.js';
import { layerConfig, type LayerConfig } from '../../../src/config.js';
import { EDGE_GRID, type GridCase } from '../../helpers/grid.js';
import { testGpu } from '../../helpers/gpu.js';
import { expectVerified } from '../../helpers/checks.js';
import { expectF16Halving } from '../../helpers/memory.js';
import type { BufferTable } from '../../../src/strategy/buffer-table.js';
import { expectTableMatchesAllocator, MEMORY_CONFIGS, memoryCaseName, ZIPF } from './capacity-suite.js';

/**
 * The capacity strategies at f16 storage: correctness against the f64 reference computed from the
 * f16-rounded inputs (verify's tolerance at f16, docs/design.md#numerics-and-the-reference), the buffer table to the byte, and the
 * activation peak halved up to the buffers that stay f32/u32/u8 at any dtype.
 */
afterAll(async () => (await testGpu()).destroy());

const CAPACITY_CASES: GridCase[] = [
  ['cf = 1 with zipf:2 skew (drops)', { tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, skew: ZIPF }],
  ['cf = 0 (C = busiest load) with zipf:2 skew', { tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, capacityFactor: 0, skew: ZIPF }],
  ['cf tiny: C = 0, every pair dropped', { tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, capacityFactor: 0.01 }],
  ['forced chunks: experts split across chunks, gelu', { tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2, capacityFactor: 1.5, activation: 'gelu' }, 4096],
  ['forced chunks: several whole experts a chunk', { tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2, capacityFactor: 1.5 }, 20000],
  ['forced chunks with cf = 0 and zipf:2 skew', { tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, capacityFactor: 0, skew: ZIPF }, 4000],
];

/** Step buffers whose dtype does not follow the layer's: router state and DeepSpeed's gating (f32), metadata (u32), the bool mask (u8). */
const FIXED_DTYPE = new Set(['routerProbs', 'gates', 'dgPartial', 'routerGrad', 'combine1Sec', 'combine2Sec', 'combineF32', 'locations1Sc', 'locations2Sc', 'locationsSc']);

/**
 * GShard's combine_weights.type_as(input) is the f32 tensor itself at f32 and a copy at f16, made at
 * the combine while the f32 one is still held (MOELayer.forward's local): f16-only bytes there.
 */
function typeAsCopy(phase: string, table16: BufferTable): number {
  return phase === 'combine' ? (table16.step.find((s) => s.name === 'combineF32')?.bytes ?? 0) : 0;
}

for (const strategy of [tutel, gshard]) {
  const id = strategy.id;

  describe(`${id} at f16 against the float64 reference from the f16-rounded inputs`, () => {
    for (const [name, partial, chunkBytes] of [...EDGE_GRID, ...CAPACITY_CASES]) {
      it(name, async () => {
        const config = layerConfig({ seed: 7, ...partial, dtype: 'f16' });
        const run = await expectVerified(id, config, chunkBytes);
        expect(run.reference).toBe('ref-capacity');
        if (name.includes('(drops)')) expect(run.droppedPairs).toBeGreaterThan(0);
      });
    }
  });

  describe(`${id} at f16: allocator = buffer table, to the byte`, () => {
    for (const [partial, chunkBytes] of MEMORY_CONFIGS) {
      const config = layerConfig({ ...partial, dtype: 'f16' });
      it(memoryCaseName(config, chunkBytes), async () => {
        const { table } = await expectTableMatchesAllocator(strategy, config, chunkBytes);
        // Every float buffer carries the layer's dtype but the router state; the mask stays a byte.
        for (const s of table.step) {
          const want = FIXED_DTYPE.has(s.name) ? 'f32' : s.name === 'dispatchBool' ? 'u8' : s.dtype === 'u32' ? 'u32' : 'f16';
          expect(s.dtype, s.name).toBe(want);
        }
        if (id === 'gshard') {
          const { tokens: T, experts: E } = config;
          const C = table.step.find((s) => s.name === 'combineWeights')!.shape[2];
          if (!chunkBytes) expect(table.step.find((s) => s.name === 'combineWeights')!.bytes).toBe(Math.max(4, Math.ceil((2 * T * E * C) / 4) * 4));
        }
      });
    }
  });

  describe(`${id}: the activation peak at f16 is half the f32 one, up to the buffers of fixed dtype`, () => {
    const CASES: [string, Partial<LayerConfig>, number?][] = [
      ['swiglu, cf = 1 with zipf:2 drops', { tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, skew: ZIPF }],
      ['gelu, cf = 0', { tokens: 96, hidden: 32, ffn: 48, experts: 6, topK: 2, activation: 'gelu', capacityFactor: 0 }],
      ['swiglu, forced chunks', { tokens: 150, hidden: 24, ffn: 40, experts: 8, topK: 2, capacityFactor: 1.5 }, 8192],
    ];
    for (const [name, partial, chunkBytes] of CASES) {
      it(name, async () => {
        await expectF16Halving(strategy, partial, chunkBytes, id === 'gshard' ? typeAsCopy : undefined);
      });
    }
  });
}
