import { afterAll, describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { parseTuning, TUNING_FORMAT } from '../../src/gpu/tuning.js';
import { expectVerified } from '../helpers/checks.js';
import { testGpu } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

/**
 * A tuning table other than the built-in tiles (src/gpu/tuning.ts), on the emulated matrix engine
 * at f16, against the float64 reference: 64×64 segment tiles over the metadata's row tiles at K 16,
 * and 64×128 weight-gradient tiles at K 32. Segments of 140 rows: several tiles
 * per expert, the last partial.
 */
const TABLE = parseTuning({ format: TUNING_FORMAT, adapter: 'test', classes: { segment: { m: 64, n: 64, k: 16 }, reduce: { m: 64, n: 128, k: 32 } } }, 'test');

describe('strategies under a non-default tuning table (emulated subgroup-matrix engine, f16)', { timeout: 300_000 }, () => {
  for (const id of ['zero-buffer', 'megablocks']) {
    it(`${id}: uneven segments, d 8, h 16`, async () => {
      const gpu = { ...(await testGpu()), gemmRequest: 'subgroup-matrix-emulated' as const, tuning: TABLE };
      const config = layerConfig({ seed: 5, tokens: 140, hidden: 8, ffn: 16, experts: 2, topK: 2, dtype: 'f16', capacityFactor: 0 });
      const run = await expectVerified(id, config, undefined, gpu);
      expect(run.gemmFallbacks ?? []).toEqual([]);
    });
  }
});
