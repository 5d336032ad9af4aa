import { afterAll, describe, expect, it } from 'vitest';
import { layerConfig, type DType, type GemmRequest } from '../../src/config.js';
import { POISON_WORD } from '../../src/gpu/allocator.js';
import { openGpu, type GpuContext } from '../../src/gpu/runtime.js';
import { MoELayer, seededInputs } from '../../src/layer.js';
import { toFloat64, toleranceFor } from '../../src/reference/index.js';
import { findStrategy, strategyIds } from '../../src/registry.js';
import { compareRun, expectedFrom, referenceFor } from '../../src/verify/verify.js';
import { testGpu } from '../helpers/gpu.js';
import { EDGE_GRID } from '../helpers/grid.js';

/**
 * Issue 27 item 2: no kernel may rely on WebGPU's zero-filled new buffers, nor on what a reused
 * buffer held. A poisoned caching allocator fills every buffer it hands out, new or pooled, with
 * NaN bit patterns (POISON_WORD). Every registered strategy here runs two training steps on one
 * layer, the second entirely on buffers from the pool (it creates none), and that step's output
 * and gradients are judged against float64 as verify judges them (compareRun), at f32 and f16 on
 * the SIMT engine, one edge shape each. The rest is done where it costs nothing extra: the shared
 * test device (test/helpers/gpu.ts) poisons too, which the last test holds, so every strategy's own
 * edge-grid verify at f32 and f16 runs poisoned, and so does test/strategies/subgroup-matrix-engine
 * .test.ts, which verifies every registered strategy on the emulated subgroup-matrix engine at
 * f16 (its kernels take a minute to compile on lavapipe: a second process compiling them again
 * here would cost that minute again).
 */
const poisoned = openGpu({ allocator: 'caching', poisonPool: true });
afterAll(async () => (await poisoned).destroy());

const shape = (name: string) => {
  const found = EDGE_GRID.find(([n]) => n.startsWith(name));
  if (!found) throw new Error(`no edge shape "${name}"`);
  return found[1];
};

/** One edge shape per pairing, to stay cheap on 2 cores: odd sizes with k = 3; empty experts. */
const RUNS: { dtype: DType; gemm: GemmRequest; shapes: string[] }[] = [
  { dtype: 'f32', gemm: 'simt', shapes: ['T, d, h off every multiple'] },
  { dtype: 'f16', gemm: 'simt', shapes: ['every token to one expert'] },
];

/** A training step with every result read back, as verify reads it. */
async function stepAndRead(layer: MoELayer) {
  await layer.forward();
  const routing = await layer.readRouting();
  await layer.backward();
  return { routing, O: await layer.readOutput(), g: await layer.readGradients() };
}

/** The second step's tensors against float64, and how many buffers that step created. */
async function secondStep(gpu: GpuContext, id: string, partial: Parameters<typeof layerConfig>[0]) {
  const strategy = findStrategy(id);
  const config = layerConfig({ seed: 5, capacityFactor: 0, ...partial });
  if (strategy.unsupported(config)) return null;
  const inputs = seededInputs(config);
  const layer = await MoELayer.fromConfig(gpu, config, { impl: id });
  try {
    layer.setInputs(inputs);
    await stepAndRead(layer);
    const created = layer.allocator.activity.created;
    const { routing, O, g } = await stepAndRead(layer);
    const { ref } = referenceFor(config, toFloat64(inputs), !strategy.dropless, routing.experts);
    const checks = compareRun({ O, dX: g.dX, dWr: g.dWr, dW1: g.dW1, dW2: g.dW2, dW3: g.dW3 }, expectedFrom(ref), toleranceFor(config.dtype));
    return { checks, created: layer.allocator.activity.created - created };
  } finally {
    layer.destroy();
  }
}

describe('every strategy on a poisoned caching pool', { timeout: 600_000 }, () => {
  for (const id of strategyIds()) {
    for (const { dtype, gemm, shapes } of RUNS) {
      it(`${id} at ${dtype} on ${gemm}: a step on reused, poisoned buffers matches float64`, async () => {
        const gpu: GpuContext = { ...(await poisoned), gemmRequest: gemm };
        for (const name of shapes) {
          const run = await secondStep(gpu, id, { ...shape(name), dtype });
          if (!run) continue;
          const failed = run.checks.filter((t) => !t.pass).map((t) => `${t.tensor}${t.hasNaN ? ' (NaN)' : ` rel. error ${t.relError.toExponential(2)}`}`);
          expect(failed, `${name}`).toEqual([]);
          expect(run.checks.length, name).toBeGreaterThanOrEqual(5);
          // The readbacks of the second step reuse their staging buffers too.
          expect(run.created, `${name}: buffers created by the second step`).toBe(0);
        }
      });
    }
  }

  it('poisons: a buffer handed out holds the NaN pattern, and so does the shared test device', async () => {
    const gpu = await poisoned;
    const layer = await MoELayer.fromConfig(gpu, layerConfig({ tokens: 8, hidden: 4, ffn: 4, experts: 2, topK: 1 }), { impl: 'zero-buffer' });
    try {
      const { allocator } = layer;
      const b = allocator.create('probe', 'workspace', 16, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
      const words = await readWords(gpu, b.buffer, 16);
      allocator.free(b);
      expect([...words]).toEqual([POISON_WORD, POISON_WORD, POISON_WORD, POISON_WORD]);
      expect(Number.isNaN(new Float32Array(words.buffer)[0])).toBe(true);
    } finally {
      layer.destroy();
    }
    expect((await testGpu()).allocatorPolicy).toEqual({ mode: 'caching', poison: true });
  });
});

async function readWords(gpu: GpuContext, buffer: GPUBuffer, bytes: number): Promise<Uint32Array> {
  const staging = gpu.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = gpu.device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, bytes);
  gpu.device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const words = new Uint32Array(staging.getMappedRange().slice(0));
  staging.destroy();
  return words;
}
