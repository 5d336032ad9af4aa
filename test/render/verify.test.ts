import { describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { visibleWidth } from '../../src/render/fit-table.js';
import { renderVerify } from '../../src/render/verify.js';
import type { VerifyResult } from '../../src/verify/verify.js';

const tensors = ['O', 'dX', 'dWr'].map((tensor) => ({ tensor, relError: 2e-7, maxAbsError: 1e-6, errorRatio: 0.002, maxErrorRatio: 0.001, hasNaN: false, pass: true }));
const result = {
  config: layerConfig({ tokens: 32, hidden: 16, ffn: 32, experts: 4, topK: 2 }),
  tolerance: 1e-4,
  atol: 2 ** -23,
  pass: true,
  strategies: [
    { strategy: 'zero-buffer', status: 'pass', tensors, nearTieTokens: 0, droppedPairs: 0 },
    { strategy: 'tutel', status: 'pass', tensors, nearTieTokens: 1, droppedPairs: 3 },
    { strategy: 'megablocks', status: 'unsupported', tensors: [], nearTieTokens: 0, droppedPairs: 0, message: 'top-k 9 > 8' },
  ],
} as unknown as VerifyResult;

describe('renderVerify', () => {
  it('has no stray border fragments between strategies, and keeps each note on its strategy', () => {
    const text = renderVerify(result, 100);
    expect(text).not.toMatch(/^[┬┴]+$/m);
    expect(text).toMatch(/│ tutel\s+│ O .*near-tie tokens:/);
    expect(text.replace(/[│\s]+/g, " ")).toMatch(/near-tie tokens: 1; dropped pairs: 3/);
    expect(text).toMatch(/│ megablocks\s+│ — .*unsupported.*top-k 9 > 8/);
    expect(Math.max(...text.split('\n').map(visibleWidth))).toBeLessThanOrEqual(100);
  });
});
