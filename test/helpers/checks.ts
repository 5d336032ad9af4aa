import { expect } from 'vitest';
import type { LayerConfig } from '../../src/config.js';
import { MoELayer, type MoELayerOptions } from '../../src/layer.js';
import { verifyStrategies, type StrategyVerification } from '../../src/verify/verify.js';
import type { GpuContext } from '../../src/gpu/runtime.js';
import { testGpu } from './gpu.js';

/**
 * verify of one strategy on one config: the tolerance of the config's dtype (1e-4 at f32, 2·2⁻¹¹
 * at f16), every tensor within its bound, all of them checked, a pass. Returns the run for extra checks.
 */
export async function expectVerified(strategy: string, config: LayerConfig, chunkBytes?: number, gpu?: GpuContext): Promise<StrategyVerification> {
  const result = await verifyStrategies(gpu ?? (await testGpu()), config, { strategies: [strategy], chunkBytes });
  const run = result.strategies[0];
  expect(result.tolerance).toBe(config.dtype === 'f16' ? 2 * 2 ** -11 : 1e-4);
  // Within the bound of reference/compare.ts: the L2 error and the largest element error.
  for (const t of run.tensors) expect.soft(Math.max(t.errorRatio, t.maxErrorRatio), `${t.tensor} error over its bound (rel. error ${t.relError})`).toBeLessThanOrEqual(1);
  expect(run.status, run.message).toBe('pass');
  expect(run.tensors.map((t) => t.tensor)).toEqual(config.activation === 'swiglu' ? ['O', 'dX', 'dWr', 'dW1', 'dW2', 'dW3'] : ['O', 'dX', 'dWr', 'dW1', 'dW2']);
  return run;
}

/** Two train steps from the same seed give bitwise-identical outputs and gradients. */
export async function expectDeterministic(options: MoELayerOptions): Promise<void> {
  const gpu = await testGpu();
  const run = async () => {
    const layer = await MoELayer.create(gpu, options);
    layer.randomize();
    await layer.trainStep();
    const O = await layer.readOutput();
    const g = await layer.readGradients();
    layer.destroy();
    return [O, g.dX, g.dWr, g.dW1, g.dW2, g.dW3!];
  };
  const first = await run();
  const second = await run();
  first.forEach((tensor, i) => expect(Buffer.from(second[i].buffer).equals(Buffer.from(tensor.buffer))).toBe(true));
}
