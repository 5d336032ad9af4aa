import { Xoshiro128 } from '../rng.js';
import { quantile } from '../measure/stats.js';

/**
 * One side (baseline or current) of a speed metric, expressed as a time: larger is slower.
 * The statistic is median(numerator) / median(denominator); the denominator is the same-run
 * reference (zero-buffer's step time, the GEMM ceiling's time) or absent for absolute times.
 */
export interface SpeedSide {
  point: number;
  /**
   * The raw-sample interval of the statistic. With a reference it spans both spreads
   * (num p10 / den p90 to num p90 / den p10): a case and its reference run at different moments
   * of the run, so the reference's own spread is part of what one ratio can vary by.
   */
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
  // Older or hand-made files may lack raw samples: the median then stands for the sample.
  const samples = (s: readonly number[] | undefined, median: number) => (s && s.length ? s : [median]);
  const denSamples = den ? [...samples(den.samples, den.median)].sort((a, b) => a - b) : null;
  const denLow = denSamples ? quantile(denSamples, 0.1) : 1;
  const denHigh = denSamples ? quantile(denSamples, 0.9) : 1;
  return {
    point: num.median / (den ? den.median : 1),
    p10: num.p10 / denHigh,
    p90: num.p90 / denLow,
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
 * `bootstrap` null: separation by the raw intervals only, for a statistic whose reference is
 * one measurement of the run (the GEMM ceiling), where resampled medians would claim a precision
 * that the reference's moment-to-moment drift does not have.
 */
export function judgeSpeed(base: SpeedSide, cur: SpeedSide, threshold: number, bootstrap: BootstrapOptions | null, label: string): SpeedJudgement {
  const ratio = cur.point / base.point;
  if (!Number.isFinite(ratio) || !(base.point > 0)) return { ratio, verdict: 'SAME', separatedBy: null, ci: null };
  const slower = ratio - 1 > threshold;
  const faster = ratio - 1 < -threshold;
  if (!slower && !faster) return { ratio, verdict: 'SAME', separatedBy: null, ci: null };
  if (slower ? cur.p10 > base.p90 : cur.p90 < base.p10) return { ratio, verdict: slower ? 'SLOWER' : 'FASTER', separatedBy: 'intervals', ci: null };
  if (!bootstrap) return { ratio, verdict: 'AMBG', separatedBy: null, ci: null };
  const ci = bootstrapRatioCI(base, cur, bootstrap, label);
  const separated = slower ? ci[0] > 1 + threshold : ci[1] < 1 - threshold;
  if (separated) return { ratio, verdict: slower ? 'SLOWER' : 'FASTER', separatedBy: 'bootstrap', ci };
  return { ratio, verdict: 'AMBG', separatedBy: null, ci };
}

export interface CeilingSide {
  medianMs: number;
  samples: readonly number[];
}

/**
 * Whether the GEMM ceiling itself held still between the two runs. It is measured once per run,
 * before the cases, so a fraction of it can only be compared across runs when the ceilings agree
 * within the threshold; when they do not, a changed fraction says more about the ceiling's
 * measurement than about the case, and the gate reports it without failing on it.
 */
export function ceilingShift(base: CeilingSide, cur: CeilingSide, threshold: number): { change: number; stable: boolean } {
  // Times: a faster ceiling (smaller ms) is a higher GFLOP/s; `change` is of the throughput.
  const change = base.medianMs / cur.medianMs - 1;
  return { change, stable: Math.abs(change) <= threshold };
}

/** One config's paired ratios in the two runs (time.vsReference samples). */
export interface PairedRuns {
  base: readonly number[];
  cur: readonly number[];
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

/**
 * A strategy's change over all its configs: the geometric mean over configs of current median /
 * baseline median of the paired ratios, with a percentile bootstrap that resamples every config's
 * two sample sets independently. A change in a strategy's own kernels moves all its configs, so
 * pooling them separates what one config's few pairs on a busy machine cannot.
 */
export function judgePooled(runs: readonly PairedRuns[], threshold: number, options: BootstrapOptions, label: string): SpeedJudgement {
  const geo = (values: readonly number[]) => Math.exp(values.reduce((a, v) => a + Math.log(v), 0) / values.length);
  const ratio = geo(runs.map((r) => median(r.cur) / median(r.base)));
  if (!Number.isFinite(ratio)) return { ratio, verdict: 'SAME', separatedBy: null, ci: null };
  const slower = ratio - 1 > threshold;
  const faster = ratio - 1 < -threshold;
  if (!slower && !faster) return { ratio, verdict: 'SAME', separatedBy: null, ci: null };
  const rng = new Xoshiro128((options.seed ^ hash(label)) >>> 0);
  const scratch = new Float64Array(Math.max(...runs.flatMap((r) => [r.base.length, r.cur.length])));
  const draws = new Float64Array(Math.max(1, options.resamples));
  for (let i = 0; i < draws.length; i++) draws[i] = geo(runs.map((r) => resampledMedian(rng, r.cur, scratch) / resampledMedian(rng, r.base, scratch)));
  const sorted = Array.from(draws.sort());
  const ci: [number, number] = [quantile(sorted, 0.025), quantile(sorted, 0.975)];
  const separated = slower ? ci[0] > 1 + threshold : ci[1] < 1 - threshold;
  return { ratio, verdict: separated ? (slower ? 'SLOWER' : 'FASTER') : 'AMBG', separatedBy: separated ? 'bootstrap' : null, ci };
}
