import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { scatterMoEGemms } from '../../../baselines/scattermoe/gemm-kernels.js';
import { ScatterMoERunner } from '../../../baselines/scattermoe/runner.js';
import { outputSlots, outputWindows } from '../../../baselines/scattermoe/scattered-output.js';
import { scatterMoE } from '../../../baselines/scattermoe/scattermoe.js';
import { hiddenWidth, layouts } from '../../../baselines/scattermoe/table.js';
import { withEngine } from '../../../kernels/gemm/core.js';
import { PipelineCache, StepEncoder, type KernelSource } from '../../../kernels/program.js';
import { layerConfig, type LayerConfig } from '../../../src/config.js';
import { floatBytes } from '../../../src/f16.js';
import { MoELayer } from '../../../src/layer.js';
import { verifyStrategies } from '../../../src/verify/verify.js';
import { expectVerified } from '../../helpers/checks.js';
import { testGpu } from '../../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

const SHAPE = { tokens: 45, hidden: 16, ffn: 24, experts: 6, topK: 2 } as const;
/**
 * The chunk limit that puts R = 90 rows in chunks of 32, 32 and 26 (whole tokens' k rows each):
 * 32 rows of the widest [R,·] tensor ([R,2h] for SwiGLU, [R,h] else). Y and the dX rows then have
 * 3 chunks each, and W1/W2 two (SwiGLU) or three expert chunks.
 */
function chunkBytes(c: LayerConfig): number {
  return 32 * hiddenWidth(c) * floatBytes(c.dtype);
}

const originalCreate = scatterMoE.create;
/** Runs ScatterMoE as if the adapter had `maxStorageBuffers` storage bindings per stage. */
function limitBindings(maxStorageBuffers: number): void {
  scatterMoE.create = (c) => new ScatterMoERunner(c, { maxStorageBuffers });
}
afterEach(() => {
  scatterMoE.create = originalCreate;
});

describe('a scattered output over several chunks', () => {
  it('the test shape really has 3 output chunks', () => {
    for (const dtype of ['f32', 'f16'] as const) {
      for (const activation of ['swiglu', 'gelu'] as const) {
        const c = layerConfig({ ...SHAPE, activation, dtype });
        const L = layouts(c, chunkBytes(c));
        expect([L.rowsD.chunkCount, L.rowsD.rowsPerChunk]).toEqual([3, 32]);
      }
    }
  });

  it('windows store every chunk exactly once, each slot bound to a chunk of its own', () => {
    for (let chunks = 1; chunks <= 12; chunks++) {
      for (let slots = 1; slots <= chunks; slots++) {
        const windows = outputWindows(chunks, slots);
        expect(windows.length).toBe(Math.ceil(chunks / slots));
        const stored = windows.flatMap((w) => Array.from({ length: w.end - w.begin }, (_, i) => w.begin + i));
        expect(stored).toEqual(Array.from({ length: chunks }, (_, i) => i));
        for (const w of windows) {
          expect(w.base).toBeGreaterThanOrEqual(0);
          expect(w.base + slots).toBeLessThanOrEqual(chunks);
          expect(w.begin).toBeGreaterThanOrEqual(w.base);
          expect(w.end).toBeLessThanOrEqual(w.base + slots);
        }
      }
    }
    expect(outputWindows(3, 2)).toEqual([{ base: 0, begin: 0, end: 2 }, { base: 1, begin: 2, end: 3 }]);
    expect(() => outputWindows(2, 3)).toThrow(/3 slots for 2 chunks/);
  });

  it('binds every chunk where the adapter allows, counting the matrix engine views, at least one', () => {
    // conf4 f16 on the H100 (16 bindings): 2 chunks, one dispatch each for down and dX.
    expect(scatterMoEGemms('swiglu', 'f16', { chunks: 2, maxStorageBuffers: 16 }).slots).toEqual({ down: 2, dX: 2 });
    // down: U, 3 index lists, W2 and 2 views = 7; SwiGLU's dX: dHidden, 3 index lists, W1, W3 and 3 views = 9.
    expect(scatterMoEGemms('swiglu', 'f16', { chunks: 20, maxStorageBuffers: 16 }).slots).toEqual({ down: 9, dX: 7 });
    expect(scatterMoEGemms('gelu', 'f32', { chunks: 20, maxStorageBuffers: 9 }).slots).toEqual({ down: 2, dX: 2 });
    expect(outputSlots([], 5, 3)).toBe(3);
    expect(scatterMoEGemms('swiglu', 'f16', { chunks: 4, maxStorageBuffers: 8 }).slots).toEqual({ down: 1, dX: 1 });
    // The built kernels, on the engine that adds the views, stay within the limit.
    for (const [activation, limit] of [['swiglu', 16], ['swiglu', 12], ['gelu', 9]] as const) {
      const g = scatterMoEGemms(activation, 'f16', { chunks: 20, maxStorageBuffers: limit });
      for (const source of [g.down, g.dX]) expect(withEngine(source, 'subgroup-matrix-emulated').bindings.length).toBeLessThanOrEqual(limit);
    }
  });
});

describe('scattered outputs in chunks against the float64 reference', () => {
  const emulated = async () => ({ ...(await testGpu()), gemmRequest: 'subgroup-matrix-emulated' as const });
  for (const dtype of ['f32', 'f16'] as const) {
    // f16 on the emulated matrix engine: the vector hooks' views count against the bindings.
    const gpu = () => (dtype === 'f16' ? emulated() : testGpu());
    it(`${dtype}: all 3 chunks of Y and of the dX rows in one dispatch (SwiGLU)`, async () => {
      const c = layerConfig({ ...SHAPE, dtype, seed: 21 });
      const run = await expectVerified('scattermoe', c, chunkBytes(c), await gpu());
      expect(run.gemmFallbacks ?? []).toEqual([]);
    });
    it(`${dtype}: windows of 2 of the 3 chunks where the bindings do not hold them all (gelu, 9 bindings)`, async () => {
      limitBindings(9);
      const c = layerConfig({ ...SHAPE, activation: 'gelu', dtype, seed: 22 });
      const run = await expectVerified('scattermoe', c, chunkBytes(c), await gpu());
      expect(run.gemmFallbacks ?? []).toEqual([]);
    });
  }

  for (const [kernel, tensor] of [['smoe-down', 'O'], ['smoe-dX-swiglu', 'dX']] as const) {
    it(`a planted off-by-one chunk in ${kernel}'s store fails ${tensor}`, async () => {
      const original = PipelineCache.prototype.get;
      let planted = 0;
      PipelineCache.prototype.get = function (source: KernelSource) {
        if (source.name !== kernel) return original.call(this, source);
        const code = source.code.replace('switch chunk - P.dstChunkBase {', 'switch chunk + 1u - P.dstChunkBase {');
        if (code !== source.code) planted++;
        return original.call(this, { ...source, code });
      };
      try {
        const c = layerConfig({ ...SHAPE, seed: 23 });
        const result = await verifyStrategies(await testGpu(), c, { strategies: ['scattermoe'], chunkBytes: chunkBytes(c) });
        expect(planted).toBeGreaterThan(0);
        const run = result.strategies[0];
        expect(run.status).not.toBe('pass');
        const bad = run.tensors.find((t) => t.tensor === tensor)!;
        expect(!(Math.max(bad.errorRatio, bad.maxErrorRatio) <= 1), `${tensor} passed with the planted chunk`).toBe(true);
      } finally {
        PipelineCache.prototype.get = original;
      }
    });
  }
});

/** Dispatches per kernel name in one train step. */
async function dispatchCounts(config: LayerConfig): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const original = StepEncoder.prototype.dispatch;
  StepEncoder.prototype.dispatch = function (d) {
    counts.set(d.source.name, (counts.get(d.source.name) ?? 0) + 1);
    return original.call(this, d);
  };
  try {
    const layer = await MoELayer.fromConfig(await testGpu(), config, { impl: 'scattermoe', chunkBytes: chunkBytes(config) });
    layer.randomize();
    await layer.trainStep();
    layer.destroy();
  } finally {
    StepEncoder.prototype.dispatch = original;
  }
  return counts;
}

describe('dispatches of the scattered-output GEMMs', () => {
  // 3 row chunks × 3 weight chunks: the grouped-output GEMMs over the same operands (up, dU) dispatch 9 times.
  const config = layerConfig({ ...SHAPE, activation: 'gelu', seed: 4 });
  it('do not multiply with the output chunks when the bindings hold them all', async () => {
    const counts = await dispatchCounts(config);
    expect([counts.get('smoe-up-gelu'), counts.get('smoe-dU')]).toEqual([9, 9]);
    expect([counts.get('smoe-down'), counts.get('smoe-dX-plain')]).toEqual([9, 9]);
  });

  it('go once per window of chunks when they do not (2 slots of 3 chunks: twice)', async () => {
    limitBindings(9);
    const counts = await dispatchCounts(config);
    expect([counts.get('smoe-down'), counts.get('smoe-dX-plain')]).toEqual([18, 18]);
  });
});
