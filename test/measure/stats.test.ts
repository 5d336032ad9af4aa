import { describe, expect, it } from 'vitest';
import { sampleSteadyCeiling, summarize, type SamplingPolicy } from '../../src/measure/stats.js';

/** A fake card whose call times follow `times` (then stay at the last), on a clock they advance. */
function fakeCard(times: number[]) {
  let clock = 0;
  let calls = 0;
  const measure = async () => {
    const t = times[Math.min(calls++, times.length - 1)];
    clock += t;
    return t;
  };
  return { measure, now: () => clock };
}

const POLICY: SamplingPolicy = { warmup: 2, minSamples: 5, maxSamples: 200, noiseTarget: 0.02, maxTimeMs: 2000 };

describe('sampleSteadyCeiling', () => {
  it('a plateau longer than the warm-up does not become the ceiling: a later clock step is caught while sampling', async () => {
    // What an H100 did: over a second at 41 ms (past the 1 s warm-up), then 28, then 20 for good.
    const card = fakeCard([...Array(30).fill(41), ...Array(5).fill(28), 20]);
    const samples = await sampleSteadyCeiling(card.measure, POLICY, { minMs: 1000, maxMs: 8000 }, card.now);
    expect(summarize(samples).median).toBe(20);
  });

  it('on a card that is already steady: the warm-up minimum, then one stable sampling', async () => {
    const card = fakeCard([10]);
    const samples = await sampleSteadyCeiling(card.measure, POLICY, { minMs: 100, maxMs: 8000 }, card.now);
    expect(samples).toEqual([10, 10, 10, 10, 10]);
    expect(card.now()).toBe(100 + 20 + 50);
  });

  it('stops at the maximum on a card that never settles', async () => {
    const card = fakeCard(Array.from({ length: 2000 }, (_, i) => (i % 2 ? 10 : 40)));
    const samples = await sampleSteadyCeiling(card.measure, POLICY, { minMs: 100, maxMs: 3000 }, card.now);
    expect(samples.length).toBeGreaterThan(0);
    expect(card.now()).toBeLessThan(3000 + 2 * POLICY.maxTimeMs + 100);
  });
});
