import { formatBytes, MAX_SIZE_BYTES } from '../units.js';
import { formatSkew, type LayerConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { STRATEGIES } from '../registry.js';
import type { Strategy } from '../strategy/contract.js';
import { layerMemory, meanLayer, modelEstimate, planConfig, type LayerMemory, type ModelEstimate, type ModelOptions, type Optimizer, type PlanDType } from './memory.js';
import { allToAll, parallelExtra, type AllToAll } from './parallel.js';
import { DEFAULT_ROUTING_SEED, DEFAULT_SAMPLES, expectedRouting, routingModel, sampleRoutings, SELECTION_TOKENS, type ExpectedRouting, type RoutingModel } from './routing.js';
import { strategyTraffic, type StrategyTraffic } from './traffic.js';

/** `moeblaze plan`: the analytic memory and traffic model of every strategy (docs/design.md#memory). */
export const PLAN_SCHEMA = 'moeblaze.plan/v1';

/** Beyond this, a token count is not a micro-batch anyone plans for; the search stops there. */
export const MAX_PLANNED_TOKENS = 2 ** 30;

export interface PlanOptions extends ModelOptions {
  /** The layer; its dtype field is ignored: the tables are built at `dtype`'s storage dtype (planConfig). */
  config: LayerConfig;
  /** Bytes of memory per GPU; null: no fit and no search. */
  memory: number | null;
  strategies?: Strategy[];
  preset?: string | null;
  samples?: number;
  seed?: number;
  /** Largest chunk of one tensor; chunking does not change byte totals, so Infinity by default. */
  chunkBytes?: number;
}

/** One strategy at one token count. */
export interface StrategyPoint {
  tokens: number;
  routing: ExpectedRouting;
  layer: LayerMemory;
  estimate: ModelEstimate;
  allToAll: AllToAll | null;
}

export interface StrategyPlan extends StrategyPoint {
  strategy: string;
  title: string;
  dropless: boolean;
  /** Why this tool's WGSL implementation cannot run the shape (the model still applies), or null. */
  unsupported: string | null;
  /** The same at the largest fitting T. */
  unsupportedAtLargest: string | null;
  fits: boolean | null;
  /** Largest T per micro-batch (per GPU) whose estimate fits in `memory`; 0: not even one token. */
  largestTokens: number | null;
  atLargest: StrategyPoint | null;
  traffic: StrategyTraffic;
}

export interface PlanResult {
  schema: typeof PLAN_SCHEMA;
  settings: {
    preset: string | null;
    tokens: number;
    hidden: number;
    ffn: number;
    experts: number;
    topK: number;
    activation: string;
    capacityFactor: number;
    checkpoint: string;
    skew: string;
    routing: LayerConfig['routing'];
    dtype: PlanDType;
    layers: number;
    optimizer: Optimizer;
    memory: number | null;
    expertParallel: number;
  };
  routingModel: { method: RoutingModel['method']; selectionTokens: number | null; samples: number; seed: number; selection: number[] };
  strategies: StrategyPlan[];
  assumptions: string[];
}

export function checkPlanOptions(o: PlanOptions): void {
  const N = o.expertParallel;
  if (!Number.isInteger(N) || N < 1) throw new UsageError(`--expert-parallel: ${N} is not allowed; use a positive integer`);
  if (o.config.experts % N !== 0) {
    const divisors = Array.from({ length: o.config.experts }, (_, i) => i + 1).filter((n) => o.config.experts % n === 0);
    throw new UsageError(`--expert-parallel: ${N} GPUs cannot split ${o.config.experts} experts evenly; use one of ${divisors.join(', ')}`);
  }
  if (!Number.isInteger(o.layers) || o.layers < 1) throw new UsageError(`--layers: ${o.layers} is not allowed; use a positive integer`);
  // Byte counts are doubles: past 2^53 they stop being exact, and no machine holds such a model anyway.
  const { hidden: d, ffn: h, experts: E } = o.config;
  const weightBytes = ((o.config.activation === 'swiglu' ? 3 : 2) * E * d * h + d * E) * 2 * o.layers;
  if (weightBytes > MAX_SIZE_BYTES) {
    throw new UsageError(`this shape's weights alone need ${formatBytes(weightBytes)} at 16 bits, more than plan models (at most ${formatBytes(MAX_SIZE_BYTES)}); use smaller --experts, --hidden, --ffn or --layers`);
  }
}

/** The model at T tokens: the mean of the strategy's table over the sampled routings. */
export function evaluate(strategy: Strategy, base: LayerConfig, tokens: number, o: PlanOptions, model: RoutingModel): StrategyPoint {
  const config = { ...planConfig(base, o.dtype), tokens };
  const limits = { chunkBytes: o.chunkBytes ?? Infinity };
  const samples = sampleRoutings(config, strategy.dropless, model);
  const layer = meanLayer(samples.map((s) => layerMemory(strategy.bufferTable(config, s, limits), config)));
  const routing = expectedRouting(config, strategy, model, samples);
  const a2a = o.expertParallel > 1 ? allToAll(config, o.dtype, o.expertParallel, routing) : null;
  const extra = a2a ? parallelExtra(layer, a2a, config, o.dtype) : undefined;
  return { tokens, routing, layer, estimate: modelEstimate(layer, config, o, extra), allToAll: a2a };
}

/**
 * The largest T whose estimate fits: doubling, then bisection. Memory grows with T for every
 * strategy (GShard's quadratically), up to the small wiggle of sampled padding, so the search
 * treats fit as monotone in T.
 */
export function largestFitting(fits: (tokens: number) => boolean, limit = MAX_PLANNED_TOKENS): number {
  if (!fits(1)) return 0;
  let lo = 1;
  let hi = 2;
  while (hi <= limit && fits(hi)) {
    lo = hi;
    hi *= 2;
  }
  if (hi > limit) return lo;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

export function planStrategy(strategy: Strategy, o: PlanOptions, model: RoutingModel): StrategyPlan {
  const config = planConfig(o.config, o.dtype);
  const point = evaluate(strategy, config, config.tokens, o, model);
  let largestTokens: number | null = null;
  let atLargest: StrategyPoint | null = null;
  if (o.memory !== null) {
    const memory = o.memory;
    const cache = new Map<number, StrategyPoint>();
    const at = (T: number) => cache.get(T) ?? cache.set(T, evaluate(strategy, config, T, o, model)).get(T)!;
    largestTokens = largestFitting((T) => at(T).estimate.total <= memory);
    atLargest = largestTokens > 0 ? at(largestTokens) : null;
  }
  return {
    strategy: strategy.id,
    title: strategy.title,
    dropless: strategy.dropless,
    unsupported: strategy.unsupported(config),
    unsupportedAtLargest: largestTokens ? strategy.unsupported({ ...config, tokens: largestTokens }) : null,
    ...point,
    fits: o.memory === null ? null : point.estimate.total <= o.memory,
    largestTokens,
    atLargest,
    traffic: strategyTraffic(strategy, config, sampleRoutings(config, strategy.dropless, model), { chunkBytes: o.chunkBytes ?? Infinity }),
  };
}

/** What a 16-bit plan stands for: f16 is what this tool runs, bf16 only a model of it. */
function dtypeNote(dtype: PlanDType): string {
  const storage =
    'activations, expert weights and their gradients stored at 2 bytes an element, router state (probabilities, gates, router gradient, dg partial sums) in f32, indices in u32, the rest as each table declares; every GEMM, softmax and reduction accumulates in f32';
  if (dtype === 'f16') return `f16: the tables of f16 runs, which this tool executes where the adapter has shader-f16 (plan --validate checks them against the allocator): ${storage}`;
  return `bf16: modelled only (WGSL has no bf16 type, so this tool cannot run it) with the f16 tables, bf16 having f16's element size: ${storage}; a strategy whose original widens bf16 but not f16 (Tutel's dispatcher upcasts to f32 unless the input is f16) is shown at its f16 sizes`;
}

function assumptions(o: PlanOptions, model: RoutingModel): string[] {
  const c = o.config;
  const list = [
    `memory per layer comes from each strategy's own buffer table (the one the allocator is checked against to the byte), built at ${o.dtype === 'bf16' ? 'f16' : o.dtype} with every buffer at its declared bytes`,
    model.method === 'balanced'
      ? 'routing: balanced (--routing balanced): pair t·k+j goes to expert (t·k+j) mod E, so the loads are exact, ⌊T·k/E⌋ plus one for the experts below T·k mod E; one routing, nothing sampled'
      : model.method === 'exact'
        ? `routing: every expert is picked with probability k/E; loads ~ Binomial(T, k/E); figures are means of the table over ${model.samples} sampled routings (padding and cf = 0 capacity are not linear in the loads)`
        : `routing: selection probabilities from ${SELECTION_TOKENS} synthetic tokens with logits N(0,1) + β (β_e = −s·ln(e+1), seed ${model.seed}); loads ~ Binomial(T, p_e); figures are means over ${model.samples} sampled routings`,
    `model: ${o.layers} layer(s) × (weights + gradients + optimizer state + saved for backward), every layer but the first keeps its input [T,d], X/dO/kernel parameters once, and the worst layer's activation peak above its saved state once`,
    o.optimizer === 'adam'
      ? `optimizer adam: two f32 moments per weight${o.dtype === 'f32' ? '' : ' and an f32 master copy of each weight stored at 16 bits'}`
      : o.optimizer === 'sgd'
        ? `optimizer sgd: an f32 momentum buffer per weight${o.dtype === 'f32' ? '' : ' and an f32 master copy of each weight stored at 16 bits'}`
        : 'optimizer none: no optimizer state (the step as bench measures it)',
  ];
  if (o.dtype !== 'f32') list.push(dtypeNote(o.dtype));
  if (o.expertParallel > 1) {
    list.push(
      `expert parallelism: ${c.experts / o.expertParallel} of ${c.experts} experts per GPU (router replicated), each GPU routing its own ${c.tokens} tokens; activations as on one GPU (under uniform routing each GPU's experts receive as many rows as it sends; the GPU with the hot experts receives more under skew, see max received)`,
      'all-to-all: dispatch and combine forward and their gradients backward, each sending (N−1)/N of the rows: capacity strategies E·C slots, dropless ones their kept pairs; send + receive buffers are added to the peak, and zero-buffer keeps the received rows for its weight gradients',
    );
  }
  if (o.memory !== null) list.push('largest micro-batch: the largest T per GPU whose estimate fits --memory (doubling, then bisection)');
  list.push(`traffic: each strategy's declared work per kernel (the entries profile divides by kernel times): compulsory bytes, each input read once and each output written once, an estimate that ignores tile re-reads and caches; means over the ${model.samples} sampled routings`);
  return list;
}

export function planModel(o: PlanOptions): PlanResult {
  checkPlanOptions(o);
  const model = routingModel(o.config, o.samples ?? DEFAULT_SAMPLES, o.seed ?? DEFAULT_ROUTING_SEED);
  const c = o.config;
  return {
    schema: PLAN_SCHEMA,
    settings: {
      preset: o.preset ?? null,
      tokens: c.tokens,
      hidden: c.hidden,
      ffn: c.ffn,
      experts: c.experts,
      topK: c.topK,
      activation: c.activation,
      capacityFactor: c.capacityFactor,
      checkpoint: c.checkpoint,
      skew: formatSkew(c.skew),
      routing: c.routing,
      dtype: o.dtype,
      layers: o.layers,
      optimizer: o.optimizer,
      memory: o.memory,
      expertParallel: o.expertParallel,
    },
    routingModel: { method: model.method, selectionTokens: model.method === 'monte-carlo' ? SELECTION_TOKENS : null, samples: model.samples, seed: model.seed, selection: model.selection },
    strategies: (o.strategies ?? STRATEGIES).map((s) => planStrategy(s, o, model)),
    assumptions: assumptions(o, model),
  };
}
