import { Xoshiro128 } from '../rng.js';
import { quantile } from '../stats.js';

/**
 * One side (baseline or current) of a speed metric, expressed as a time: larger is slower.
 * The statistic is median(numerator) / median(denominator); the denominator is the same-run
 * reference (zero-buffer's step time, the GEMM ceiling's time) or absent for absolute times.
 */
export interface SpeedSide {
  point: number;
  /** Spread of one sample of the numerator over the reference's median (a raw-sample interval). */
  p10: number;
  p90: number;
  num: readonly number[];
  den: readonly number[] | null;
}

export type SpeedVerdict = 'SAME' | 'FASTER' | 'SLOWER' | 'AMBG';

export interface SpeedJudgement {
  /** current / baseline of the time-like statistic. */
  ratio: number;
  verdict: SpeedVerdict;
  /** Which test separated the two runs, when one did. */
  separatedBy: 'intervals' | 'bootstrap' | null;
  /** 95% percentile-bootstrap interval of `ratio`, when it was needed. */
  ci: [number, number] | null;
}

export interface BootstrapOptions {
  resamples: number;
  seed: number;
}

export function speedSide(
  num: { median: number; p10: number; p90: number; samples?: readonly number[] },
  den: { median: number; samples?: readonly number[] } | null,
): SpeedSide {
  const d = den ? den.median : 1;
  // Older or hand-made files may lack raw samples: the median then stands for the sample.
  const samples = (s: readonly number[] | undefined, median: number) => (s && s.length ? s : [median]);
  return {
    point: num.median / d,
    p10: num.p10 / d,
    p90: num.p90 / d,
    num: samples(num.samples, num.median),
    den: den ? samples(den.samples, den.median) : null,
  };
}

function resampledMedian(rng: Xoshiro128, samples: readonly number[], scratch: Float64Array): number {
  const n = samples.length;
  for (let i = 0; i < n; i++) scratch[i] = samples[Math.floor(rng.uniform() * n)];
  const view = scratch.subarray(0, n).sort();
  return n % 2 ? view[(n - 1) / 2] : (view[n / 2 - 1] + view[n / 2]) / 2;
}

/** FNV-1a: a row's bootstrap stream depends on its name, not on the order rows are judged in. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Percentile bootstrap of current/baseline: every resample redraws all four sample sets (both
 * runs' case samples and both runs' reference samples) independently, so the reference's noise
 * widens the interval as it should. Seeded: the same files give the same verdict.
 */
export function bootstrapRatioCI(base: SpeedSide, cur: SpeedSide, options: BootstrapOptions, label: string): [number, number] {
  const rng = new Xoshiro128((options.seed ^ hash(label)) >>> 0);
  const longest = Math.max(base.num.length, cur.num.length, base.den?.length ?? 0, cur.den?.length ?? 0);
  const scratch = new Float64Array(longest);
  const stat = (side: SpeedSide) => resampledMedian(rng, side.num, scratch) / (side.den ? resampledMedian(rng, side.den, scratch) : 1);
  const ratios = new Float64Array(Math.max(1, options.resamples));
  for (let i = 0; i < ratios.length; i++) ratios[i] = stat(cur) / stat(base);
  const sorted = Array.from(ratios.sort());
  return [quantile(sorted, 0.025), quantile(sorted, 0.975)];
}

/**
 * SLOWER needs both a change beyond the threshold and separation: the current p10 above the
 * baseline p90, or the bootstrap interval of the ratio entirely above 1 + threshold. A change
 * without separation is AMBG (worth re-measuring, never a failure); FASTER is the mirror image.
 */
export function judgeSpeed(base: SpeedSide, cur: SpeedSide, threshold: number, bootstrap: BootstrapOptions, label: string): SpeedJudgement {
  const ratio = cur.point / base.point;
  if (!Number.isFinite(ratio) || !(base.point > 0)) return { ratio, verdict: 'SAME', separatedBy: null, ci: null };
  const slower = ratio - 1 > threshold;
  const faster = ratio - 1 < -threshold;
  if (!slower && !faster) return { ratio, verdict: 'SAME', separatedBy: null, ci: null };
  if (slower ? cur.p10 > base.p90 : cur.p90 < base.p10) return { ratio, verdict: slower ? 'SLOWER' : 'FASTER', separatedBy: 'intervals', ci: null };
  const ci = bootstrapRatioCI(base, cur, bootstrap, label);
  const separated = slower ? ci[0] > 1 + threshold : ci[1] < 1 - threshold;
  if (separated) return { ratio, verdict: slower ? 'SLOWER' : 'FASTER', separatedBy: 'bootstrap', ci };
  return { ratio, verdict: 'AMBG', separatedBy: null, ci };
}
