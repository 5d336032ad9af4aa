import type { LayerConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { offload } from '../offload.js';
import { findStrategy } from '../registry.js';
import { adviseFits, type FitAdvice } from './advice.js';
import { planModel, type PlanOptions, type PlanResult } from './model.js';
import { SELECTION_TOKENS } from './routing.js';

/*
 * `moeblaze plan` as the command runs it: the size limits first, then the model and the fit advice
 * on a worker thread (src/offload.ts), so that Ctrl-C is answered while a large plan computes.
 */

/**
 * Experts plan models at most: every strategy's table, the routing samples and the fit search go
 * over per-expert arrays, and beyond this a plan takes minutes (1,000,000 experts: 2 minutes
 * uniform; 2^31: out of memory). Fine-grained MoE layers today have at most a few hundred.
 */
export const PLAN_EXPERTS_MAX = 65536;

/**
 * Under --skew zipf the selection probabilities are estimated from SELECTION_TOKENS synthetic
 * tokens over every expert (routing.ts): its cost grows with E, and past this E it takes minutes.
 */
export const PLAN_ZIPF_EXPERTS_MAX = 8192;

/** A UsageError (exit 2), before any work, for a shape whose plan cannot finish in reasonable time. */
export function requirePlannable(config: Pick<LayerConfig, 'experts' | 'skew' | 'routing'>): void {
  const E = config.experts;
  if (E > PLAN_EXPERTS_MAX) throw new UsageError(`--experts: ${E} is more than plan models (at most ${PLAN_EXPERTS_MAX}): its per-expert routing and tables would take minutes and gigabytes`);
  const sampled = config.routing !== 'balanced' && config.skew.kind === 'zipf' && config.skew.s > 0;
  if (sampled && E > PLAN_ZIPF_EXPERTS_MAX) {
    throw new UsageError(`--experts: ${E} with --skew zipf is more than plan samples (at most ${PLAN_ZIPF_EXPERTS_MAX}): the Monte-Carlo routing draws ${SELECTION_TOKENS} tokens over every expert; use fewer experts or --skew uniform`);
  }
}

/** PlanOptions with strategies named by id, as plain data that a worker thread can receive. */
export interface PlanRequest extends Omit<PlanOptions, 'strategies'> {
  strategyIds: string[];
}

export interface PlanWithAdvice {
  result: PlanResult;
  advice: FitAdvice[];
}

/** The plan and, for every strategy that does not fit, the changes that would make it fit. */
export function planWithAdvice(request: PlanRequest): PlanWithAdvice {
  const { strategyIds, ...rest } = request;
  const options: PlanOptions = { ...rest, strategies: strategyIds.map(findStrategy) };
  const result = planModel(options);
  const advice = adviseFits(options, options.strategies!.filter((s) => result.strategies.find((p) => p.strategy === s.id)?.fits === false));
  return { result, advice };
}

/** planWithAdvice on a worker thread (inline where the compiled worker is absent), after the size limits. */
export function runPlan(request: PlanRequest): Promise<PlanWithAdvice> {
  requirePlannable(request.config);
  return offload(planWithAdvice, new URL('./run.js', import.meta.url), 'planWithAdvice', [request]);
}
