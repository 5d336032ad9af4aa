import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { layerConfig, type LayerConfig } from '../../src/config.js';
import { expertWeights, referenceStep, toFloat64 } from '../../src/reference/layer.js';
import { routeReference } from '../../src/reference/routing.js';
import { chooseSample, MIN_SAMPLE_TOKENS, sampledReference, UNITS_PER_EXPERT } from '../../src/reference/sampled.js';
import { generateInputs } from '../../src/rng.js';
import { fillExpertWeights } from '../../src/fill.js';

/** The sampled reference's elements are the full reference's, where both exist (to rounding). */
async function expectAgrees(partial: Partial<LayerConfig>, capacity = false, impl: { sampledReference: typeof sampledReference; threads?: number } = { sampledReference }) {
  const c = layerConfig({ tokens: 96, hidden: 12, ffn: 10, experts: 6, topK: 2, ...partial });
  const inputs = toFloat64(generateInputs(c));
  const routing = routeReference(c, inputs.X, inputs.Wr, { capacity });
  const full = referenceStep(c, inputs, { capacity, routing });
  const sample = chooseSample(c, routing, 7);
  const s = await impl.sampledReference(c, { X: inputs.X, dO: inputs.dO, Wr: inputs.Wr, weights: async (e) => expertWeights(c, inputs, e) }, routing, sample, impl.threads);
  const { hidden: d, ffn: h, experts: E } = c;
  const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(b)));
  sample.tokens.forEach((t, r) => {
    for (let i = 0; i < d; i++) {
      close(s.O.v[r * d + i], full.O[t * d + i]);
      close(s.O.s[r * d + i], full.scale.O[t * d + i]);
      close(s.dX.v[r * d + i], full.dX[t * d + i]);
      close(s.dX.s[r * d + i], full.scale.dX[t * d + i]);
    }
  });
  sample.units.forEach(({ expert: e, unit: j }, u) => {
    for (let i = 0; i < d; i++) {
      close(s.dW1.v[u * d + i], full.dW1[e * d * h + i * h + j]);
      close(s.dW1.s[u * d + i], full.scale.dW1[e * d * h + i * h + j]);
      if (s.dW3) close(s.dW3.v[u * d + i], full.dW3![e * d * h + i * h + j]);
      close(s.dW2.v[u * d + i], full.dW2[e * h * d + j * d + i]);
    }
  });
  // The masked step: the full reference with dO zero outside the sample.
  const dO = new Float64Array(inputs.dO.length);
  for (const t of sample.tokens) dO.set(inputs.dO.subarray(t * d, t * d + d), t * d);
  const masked = referenceStep(c, { ...inputs, dO }, { capacity, routing });
  for (let i = 0; i < d * E; i++) close(s.dWrMasked.v[i], masked.dWr[i]);
  return { c, sample, routing };
}

describe('sampled float64 reference', () => {
  it('agrees with the full reference on every sampled element (SwiGLU, dropless)', async () => {
    const { sample, c } = await expectAgrees({});
    expect(sample.tokens.length).toBe(MIN_SAMPLE_TOKENS);
    expect(sample.units.length).toBe(c.experts * UNITS_PER_EXPERT);
  });

  it('agrees with capacity drops, gelu, the aux loss and no renormalisation', async () => {
    await expectAgrees({ capacityFactor: 0.5, activation: 'gelu', auxLoss: 0.01, normalizeGates: false }, true);
  });

  it('worker threads (the built module, as the CLI runs it) give the same elements as inline', async () => {
    const built = pathToFileURL(resolve(import.meta.dirname, '../../dist/src/reference/sampled.js')).href;
    const { sampledReference: threaded } = (await import(built)) as typeof import('../../src/reference/sampled.js');
    await expectAgrees({ capacityFactor: 0.75, auxLoss: 0.01 }, true, { sampledReference: threaded, threads: 3 });
  });

  it('weights named by the GPU fill are regenerated where the expert runs, inline and in workers: the same elements as given ones', async () => {
    const c = layerConfig({ tokens: 96, hidden: 12, ffn: 10, experts: 6, topK: 2, seed: 31 });
    const inputs = toFloat64(generateInputs(c));
    const routing = routeReference(c, inputs.X, inputs.Wr);
    const sample = chooseSample(c, routing, 7);
    const base = { X: inputs.X, dO: inputs.dO, Wr: inputs.Wr };
    const given = await sampledReference(c, { ...base, weights: async (e) => fillExpertWeights(31, e, c.hidden, c.ffn, true) }, routing, sample, 1);
    const built = pathToFileURL(resolve(import.meta.dirname, '../../dist/src/reference/sampled.js')).href;
    const { sampledReference: threaded } = (await import(built)) as typeof import('../../src/reference/sampled.js');
    for (const [run, threads] of [
      [sampledReference, 1],
      [threaded, 3],
    ] as const) {
      const regenerated = await run(c, { ...base, weights: async (e) => ({ fillSeed: 31, expert: e }) }, routing, sample, threads);
      for (const key of ['O', 'dX', 'dW1', 'dW3', 'dW2', 'dWrMasked'] as const) expect(regenerated[key], `${key}, ${threads} thread(s)`).toEqual(given[key]);
    }
    expect(given.O.v.some((v) => v !== 0)).toBe(true);
  });

  it('reaches every expert that received tokens, beyond 64 tokens if needed', async () => {
    const c = layerConfig({ tokens: 400, hidden: 4, ffn: 4, experts: 64, topK: 1, skew: { kind: 'zipf', s: 1.2 } });
    const inputs = toFloat64(generateInputs(c));
    const routing = routeReference(c, inputs.X, inputs.Wr);
    const sample = chooseSample(c, routing, 1);
    const reached = new Set(sample.tokens.map((t) => routing.experts[t]));
    const loaded = new Set(Array.from(routing.experts));
    expect(reached).toEqual(loaded);
    expect(sample.tokens.length).toBeGreaterThan(MIN_SAMPLE_TOKENS);
    expect(chooseSample(c, routing, 1)).toEqual(sample);
    expect(chooseSample(c, routing, 2)).not.toEqual(sample);
  });

  it('adds no token beyond 64 past the cost bound (d 7168, h 8192)', () => {
    const c = layerConfig({ tokens: 400, hidden: 4, ffn: 4, experts: 64, topK: 1, skew: { kind: 'zipf', s: 1.2 } });
    const inputs = toFloat64(generateInputs(c));
    const routing = routeReference(c, inputs.X, inputs.Wr);
    const big = { ...c, hidden: 7168, ffn: 8192 };
    expect(chooseSample(big, routing, 1).tokens).toHaveLength(MIN_SAMPLE_TOKENS);
  });
});
