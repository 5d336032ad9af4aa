import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../src/errors.js';
import { apiWording, MoELayer } from '../src/layer.js';
import { testGpu } from './helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

/** Issue 25 §3.10: the library names its options, not the CLI's flags, and refuses a misspelled one. */
describe('MoELayer.create options', () => {
  const shape = { tokens: 32, hidden: 16, ffn: 32, experts: 4, topK: 2 };

  it('a misspelled option is an error naming the nearest one, before any GPU work', async () => {
    const gpu = await testGpu();
    const create = MoELayer.create(gpu, { ...shape, capacityFactr: 1 } as never);
    await expect(create).rejects.toThrow(UsageError);
    await expect(MoELayer.create(gpu, { ...shape, capacityFactr: 1 } as never)).rejects.toThrow(/^MoELayer\.create: unknown option `capacityFactr` \(did you mean `capacityFactor`\?\); the options are tokens, /);
  });

  it('bad values are worded for the API: option names, not flags', async () => {
    const gpu = await testGpu();
    await expect(MoELayer.create(gpu, { ...shape, topK: 5 })).rejects.toThrow(/^MoELayer\.create: topK: 5 is larger than experts 4; use 1\.\.4$/);
    await expect(MoELayer.create(gpu, { ...shape, impl: 'zero-bufer' })).rejects.toThrow(/^MoELayer\.create: impl: "zero-bufer" is unknown; use one of zero-buffer, /);
    await expect(MoELayer.create(gpu, { ...shape, capacityFactor: -1 })).rejects.toThrow(/^MoELayer\.create: capacityFactor: -1 is not allowed/);
    expect(apiWording('--aux-loss: x; --top-k and --experts')).toBe('auxLoss: x; topK and experts');
  });
});
