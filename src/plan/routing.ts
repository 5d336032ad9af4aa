import { balancedLoads, capacityOf, skewBias, type LayerConfig, type Skew } from '../config.js';
import { Xoshiro128 } from '../rng.js';
import type { RoutingSummary, Strategy } from '../strategy/contract.js';
import { maxOf } from '../arrays.js';

/**
 * The routing model behind `plan` (docs/design.md#memory: plan evaluates the same tables with expected
 * routing"). A token picks expert e with probability p_e (its top-k selection frequency); loads
 * are then n_e ~ Binomial(T, p_e). Memory is not linear in the loads (bins are padded to 128
 * rows, cf = 0 sizes every expert to the busiest one), so a strategy's table at the mean loads
 * would understate it: the expected figures are the mean of the table over sampled routings.
 *
 * - uniform: p_e = k/E exactly.
 * - zipf:s: logits z = x·Wr + β with β_e = −s·ln(e+1) and x·Wr taken as N(0, 1) per expert
 *   and independent across experts (weights ~ N(0, 1/d), x ~ N(0, 1), so each column's dot
 *   product has unit variance); p_e is estimated by Monte-Carlo over SELECTION_TOKENS
 *   synthetic tokens drawn from the project's seeded generator (src/rng.ts).
 * - balanced (--routing balanced): the loads are exact, ⌊T·k/E⌋ plus one for the experts below
 *   T·k mod E (docs/design.md#balanced-routing): one routing, nothing sampled.
 * - Loads are drawn independently per expert: this ignores that a token's k picks are
 *   distinct (Σ n_e = T·k exactly in a real step), a small effect once E ≫ k.
 */
export const SELECTION_TOKENS = 16384;
export const DEFAULT_SAMPLES = 32;
export const DEFAULT_ROUTING_SEED = 1;

export interface RoutingModel {
  method: 'exact' | 'monte-carlo' | 'balanced';
  /** P(expert e is among a token's k experts); Σ = k. */
  selection: number[];
  samples: number;
  seed: number;
}

const selectionCache = new Map<string, number[]>();

export function selectionProbabilities(experts: number, topK: number, skew: Skew, seed = DEFAULT_ROUTING_SEED): { method: RoutingModel['method']; selection: number[] } {
  if (skew.kind === 'uniform' || skew.s === 0) return { method: 'exact', selection: new Array<number>(experts).fill(topK / experts) };
  const key = `${experts}|${topK}|${skew.s}|${seed}`;
  let selection = selectionCache.get(key);
  if (!selection) {
    const beta = skewBias(skew, experts);
    const rng = new Xoshiro128(seed);
    const counts = new Float64Array(experts);
    const z = new Float64Array(experts);
    const top = new Int32Array(topK);
    for (let t = 0; t < SELECTION_TOKENS; t++) {
      for (let e = 0; e < experts; e++) z[e] = rng.normal() + beta[e];
      // Insertion into a sorted top-k list; strict > keeps the lower id first on ties, as the router does.
      let filled = 0;
      for (let e = 0; e < experts; e++) {
        if (filled === topK && !(z[e] > z[top[topK - 1]])) continue;
        let i = filled < topK ? filled++ : topK - 1;
        while (i > 0 && z[e] > z[top[i - 1]]) {
          top[i] = top[i - 1];
          i--;
        }
        top[i] = e;
      }
      for (let i = 0; i < topK; i++) counts[top[i]]++;
    }
    selection = Array.from(counts, (n) => n / SELECTION_TOKENS);
    selectionCache.set(key, selection);
  }
  return { method: 'monte-carlo', selection: [...selection] };
}

export function routingModel(c: Pick<LayerConfig, 'experts' | 'topK' | 'skew' | 'routing'>, samples = DEFAULT_SAMPLES, seed = DEFAULT_ROUTING_SEED): RoutingModel {
  if (c.routing === 'balanced') return { method: 'balanced', selection: new Array<number>(c.experts).fill(c.topK / c.experts), samples: 1, seed };
  return { ...selectionProbabilities(c.experts, c.topK, c.skew, seed), samples, seed };
}

/** Binomial(n, p): exact inversion while the variance is small, a rounded normal beyond. */
function binomial(rng: Xoshiro128, n: number, p: number): number {
  if (p <= 0) return 0;
  if (p >= 1) return n;
  if (p > 0.5) return n - binomial(rng, n, 1 - p);
  const variance = n * p * (1 - p);
  if (variance >= 25) return Math.min(n, Math.max(0, Math.round(n * p + Math.sqrt(variance) * rng.normal())));
  // n·p < 50 here, so (1 − p)^n stays far from underflow.
  const u = rng.uniform();
  let pmf = Math.pow(1 - p, n);
  let cdf = pmf;
  let x = 0;
  while (cdf < u && x < n) {
    pmf *= ((n - x) / (x + 1)) * (p / (1 - p));
    cdf += pmf;
    x++;
  }
  return x;
}

/** What a strategy's routing summary would say for these loads (the capacity rule of docs/design.md#capacity-and-drops). */
export function summaryFromLoads(c: LayerConfig, dropless: boolean, loads: number[]): RoutingSummary {
  const R = c.tokens * c.topK;
  if (dropless) return { expertLoads: loads, keptPairs: R, droppedPairs: 0, capacity: null };
  const capacity = capacityOf(c, loads);
  const dropped = Math.min(R, loads.reduce((a, n) => a + Math.max(0, n - capacity), 0));
  return { expertLoads: loads, keptPairs: R - dropped, droppedPairs: dropped, capacity };
}

/**
 * `model.samples` routings for T tokens. The same seed for every T (common random numbers), so
 * that a search over T sees a smooth function of T rather than fresh noise at each probe.
 */
export function sampleRoutings(c: LayerConfig, dropless: boolean, model: RoutingModel): RoutingSummary[] {
  if (model.method === 'balanced') return [summaryFromLoads(c, dropless, balancedLoads(c))];
  const rng = new Xoshiro128(model.seed ^ 0x5bd1e995);
  return Array.from({ length: model.samples }, () =>
    summaryFromLoads(
      c,
      dropless,
      model.selection.map((p) => binomial(rng, c.tokens, p)),
    ),
  );
}

/** The expected routing, as plan reports it: means over the sampled routings. */
export interface ExpectedRouting {
  method: RoutingModel['method'];
  samples: number;
  /** T·p_e, the mean load of each expert (balanced: the exact loads). */
  expertLoads: number[];
  /** Mean over samples of the busiest expert's load. */
  maxLoad: number;
  /** Capacity strategies: mean slots per expert (C; varies only when cf = 0); dropless: null. */
  capacity: number | null;
  droppedPairs: number;
  droppedFraction: number;
  /**
   * Mean rows each expert GEMM computes (Strategy.expertRows): the kept pairs plus the strategy's
   * padding (MegaBlocks' bins rounded to 128 rows, the capacity strategies' empty slots).
   */
  paddedRows: number;
  /** paddedRows over the mean kept pairs, minus one. */
  paddingFraction: number;
}

function mean(values: number[]): number {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0;
}

export function expectedRouting(
  c: LayerConfig,
  strategy: Pick<Strategy, 'dropless' | 'expertRows'>,
  model: RoutingModel,
  samples: RoutingSummary[] = sampleRoutings(c, strategy.dropless, model),
): ExpectedRouting {
  const { dropless } = strategy;
  const R = c.tokens * c.topK;
  const padded = mean(samples.map((s) => strategy.expertRows(c, s)));
  const dropped = mean(samples.map((s) => s.droppedPairs));
  const kept = R - dropped;
  return {
    method: model.method,
    samples: samples.length,
    expertLoads: model.method === 'balanced' ? balancedLoads(c) : model.selection.map((p) => c.tokens * p),
    maxLoad: mean(samples.map((s) => maxOf(s.expertLoads, 0))),
    capacity: dropless ? null : mean(samples.map((s) => s.capacity ?? 0)),
    droppedPairs: dropped,
    droppedFraction: R ? dropped / R : 0,
    paddedRows: padded,
    paddingFraction: kept > 0 ? padded / kept - 1 : 0,
  };
}

