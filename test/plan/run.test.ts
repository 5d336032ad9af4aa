import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { adviseFits } from '../../src/plan/advice.js';
import { planModel } from '../../src/plan/model.js';
import { PLAN_EXPERTS_MAX, PLAN_ZIPF_EXPERTS_MAX, planWithAdvice, requirePlannable, type PlanRequest } from '../../src/plan/run.js';
import { findStrategy } from '../../src/registry.js';

/* Issue 28, items 6 and 8: plan refuses what it cannot finish, and computes on a worker thread. */

const request: PlanRequest = {
  config: layerConfig({ tokens: 4096, hidden: 256, ffn: 512, experts: 16, topK: 2, skew: { kind: 'zipf', s: 1.2 } }),
  strategyIds: ['zero-buffer', 'tutel'],
  dtype: 'f32',
  layers: 8,
  optimizer: 'adam',
  memory: 64 * 2 ** 20,
  expertParallel: 1,
  samples: 4,
};

describe('plan: size limits and the worker', () => {
  it('refuses sizes it cannot finish, naming the limit', () => {
    expect(() => requirePlannable(layerConfig({ experts: 2147483647, topK: 1 }))).toThrow(`--experts: 2147483647 is more than plan models (at most ${PLAN_EXPERTS_MAX})`);
    expect(() => requirePlannable(layerConfig({ experts: 1_000_000, topK: 1, skew: { kind: 'zipf', s: 1.2 } }))).toThrow(/^--experts: 1000000 is more than plan models/);
    expect(() => requirePlannable(layerConfig({ experts: 10_000, topK: 1, skew: { kind: 'zipf', s: 1.2 } }))).toThrow(new RegExp(`^--experts: 10000 with --skew zipf is more than plan samples \\(at most ${PLAN_ZIPF_EXPERTS_MAX}\\)`));
    expect(() => requirePlannable(layerConfig({ experts: 10_000, topK: 1 }))).not.toThrow();
    expect(() => requirePlannable(layerConfig({ experts: 10_000, topK: 1, skew: { kind: 'zipf', s: 1.2 }, routing: 'top-k' }))).toThrow();
  });

  it('planWithAdvice is planModel and adviseFits, from strategy ids', () => {
    const strategies = request.strategyIds.map(findStrategy);
    const options = { ...request, strategies };
    const plan = planModel(options);
    const { result, advice } = planWithAdvice(request);
    expect(result).toEqual(plan);
    expect(advice).toEqual(adviseFits(options, strategies.filter((s) => plan.strategies.find((p) => p.strategy === s.id)?.fits === false)));
    expect(advice.length).toBeGreaterThan(0);
  });

  it('on a worker thread (the built module, as the CLI runs it) the plan is the same, and a usage error keeps its exit code', async () => {
    const built = pathToFileURL(resolve(import.meta.dirname, '../../dist/src/plan/run.js')).href;
    const { runPlan } = (await import(built)) as typeof import('../../src/plan/run.js');
    const offloaded = await runPlan(request);
    expect(JSON.stringify(offloaded)).toBe(JSON.stringify(planWithAdvice(request)));
    // Thrown inside the worker (expert parallelism that does not divide E), rebuilt as a UsageError.
    const error = await runPlan({ ...request, expertParallel: 3 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'UsageError', exitCode: 2, message: expect.stringMatching(/^--expert-parallel: 3 GPUs cannot split 16 experts evenly/) });
  });
});
