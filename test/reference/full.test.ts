import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { seededInputs } from '../../src/layer.js';
import { INLINE_REFERENCE_MACS, referenceFor } from '../../src/reference/full.js';
import { toFloat64 } from '../../src/reference/index.js';

/* Issue 28, item 6: the full float64 reference runs on a worker thread where it is large, with the same result. */

describe('referenceOffThread', () => {
  it('on a worker thread (the built module, as the CLI runs it) gives the inline reference exactly', async () => {
    const config = layerConfig({ tokens: 256, hidden: 64, ffn: 160, experts: 8, topK: 2, capacityFactor: 1, seed: 5 });
    expect(config.tokens * config.topK * config.hidden * config.ffn).toBeGreaterThan(INLINE_REFERENCE_MACS);
    const inputs64 = toFloat64(seededInputs(config));
    const inline = referenceFor(config, inputs64, true, new Uint32Array(config.tokens * config.topK));
    const built = pathToFileURL(resolve(import.meta.dirname, '../../dist/src/reference/full.js')).href;
    const { referenceOffThread } = (await import(built)) as typeof import('../../src/reference/full.js');
    const threaded = await referenceOffThread(config, inputs64, true, new Uint32Array(config.tokens * config.topK));
    expect(threaded.forced).toBe(inline.forced);
    for (const name of ['O', 'dX', 'dWr', 'dW1', 'dW2', 'dW3'] as const) expect(threaded.ref[name], name).toEqual(inline.ref[name]);
    expect(threaded.ref.scale).toEqual(inline.ref.scale);
    expect(threaded.ref.routing).toEqual(inline.ref.routing);
    // The inputs were copied to the worker, not moved: the caller still has them.
    expect(inputs64.X.length).toBe(config.tokens * config.hidden);
  });
});
