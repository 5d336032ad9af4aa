/** Order statistics of timing samples; quantiles by linear interpolation (type 7). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export interface SampleSummary {
  n: number;
  median: number;
  p10: number;
  p90: number;
  q1: number;
  q3: number;
  /** IQR / median: the relative noise the sampler drives below its target. */
  noise: number;
  min: number;
  max: number;
}

export function summarize(samples: readonly number[]): SampleSummary {
  const sorted = [...samples].sort((a, b) => a - b);
  const median = quantile(sorted, 0.5);
  const q1 = quantile(sorted, 0.25);
  const q3 = quantile(sorted, 0.75);
  return {
    n: sorted.length,
    median,
    p10: quantile(sorted, 0.1),
    p90: quantile(sorted, 0.9),
    q1,
    q3,
    noise: median > 0 ? (q3 - q1) / median : Infinity,
    min: sorted[0] ?? NaN,
    max: sorted[sorted.length - 1] ?? NaN,
  };
}

export interface SamplingPolicy {
  warmup: number;
  minSamples: number;
  maxSamples: number;
  /** Stop once IQR/median is under this… */
  noiseTarget: number;
  /** …or once this much wall time has been spent sampling. */
  maxTimeMs: number;
}

export const DEFAULT_SAMPLING: SamplingPolicy = { warmup: 2, minSamples: 5, maxSamples: 200, noiseTarget: 0.02, maxTimeMs: 10_000 };

/**
 * Warm up, then sample until the noise target is met (with at least minSamples) or the time
 * budget ends. `measure` returns one sample (ms); wall time is tracked by `now` for testability.
 */
export async function sampleUntilStable(measure: () => Promise<number>, policy: SamplingPolicy, now: () => number = () => performance.now()): Promise<number[]> {
  for (let i = 0; i < policy.warmup; i++) await measure();
  const samples: number[] = [];
  const start = now();
  while (samples.length < policy.maxSamples) {
    samples.push(await measure());
    if (samples.length >= policy.minSamples && (summarize(samples).noise <= policy.noiseTarget || now() - start >= policy.maxTimeMs)) break;
  }
  return samples;
}

/**
 * Samples of a ceiling on a card whose clocks rise from idle in steps: it keeps the card busy at
 * least `minMs`, until calls stop getting faster, then samples until stable (the policy); when a
 * sample comes in well below the others' median (a clock step during sampling) it samples again,
 * and so on up to `maxMs`. An H100 once held the f16 8192³ product at 41 ms for over a second
 * before stepping down to 28 ms and below: a fixed warm-up ended on that plateau and the ceiling
 * read 2× low.
 */
export async function sampleSteadyCeiling(measure: () => Promise<number>, policy: SamplingPolicy, opts: { minMs: number; maxMs: number }, now: () => number = () => performance.now()): Promise<number[]> {
  const start = now();
  const tolerance = policy.noiseTarget;
  const before: number[] = [];
  for (;;) {
    before.push(await measure());
    const elapsed = now() - start;
    if (elapsed >= opts.maxMs) break;
    if (elapsed < opts.minMs || before.length < 8) continue;
    // Steady: the best of the last four is no better than the best before them.
    if (Math.min(...before.slice(-4)) >= Math.min(...before.slice(0, -4)) * (1 - tolerance)) break;
  }
  let samples = await sampleUntilStable(measure, policy, now);
  while (Math.min(...samples) < summarize(samples).median * (1 - 5 * tolerance) && now() - start < opts.maxMs) samples = await sampleUntilStable(measure, policy, now);
  return samples;
}
