import { afterAll, describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { verifyStrategies } from '../../src/verify/verify.js';
import { testGpu } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

describe('step encoder', () => {
  it('survives a step of thousands of dispatches (one expert and 8 rows per chunk)', async () => {
    // 256-byte chunks: 64 weight chunks × 32 activation chunks per expert GEMM, over 10k dispatches.
    const config = layerConfig({ tokens: 128, hidden: 8, ffn: 8, experts: 64, topK: 2, seed: 2 });
    const result = await verifyStrategies(await testGpu(), config, { strategies: ['zero-buffer'], chunkBytes: 256 });
    expect(result.strategies[0].status, result.strategies[0].message).toBe('pass');
  });
});
