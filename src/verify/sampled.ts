/**
 * The sampled float64 check of one layer on the GPU (issue 18), for shapes whose full
 * reference would take hours: one step, then only the sampled rows and columns read back
 * (reference/sampled.ts says which), then a second step with dO zero outside the sampled
 * tokens for dWr. Judged by the same compareRun as the full check.
 */
import type { LayerConfig } from '../config.js';
import { readRuns, readTensor } from '../gpu/readback.js';
import { FILL_TENSORS, fillScale, fillStds, fillValue } from '../fill.js';
import { Xoshiro128 } from '../rng.js';
import { readElements } from '../../kernels/gather-words.js';
import type { MoELayer } from '../layer.js';
import { chooseSample, sampledReference, type SampleChoice } from '../reference/sampled.js';
import type { Tolerance } from '../reference/index.js';
import type { LayerInputs } from '../rng.js';
import type { RoutingSummary } from '../strategy/contract.js';
import { compareRun, routingFor, type ExpectedTensors, type TensorCheck, type VerifiedTensor } from './verify.js';

export interface SampledCheck {
  tensors: TensorCheck[];
  /** Sampled tokens (rows of O and dX) and hidden units (slices of dW1, dW3, dW2). */
  sample: { tokens: number; units: number };
  /** Near-tie tokens given the GPU's routing. */
  nearTieTokens: number;
  /** Those tokens, ascending. */
  forcedTokens: number[];
  /** Pairs the GPU and the float64 routing dropped (capacity strategies); they must agree. */
  droppedPairs: { gpu: number; reference: number };
  /** The GPU's routing summary of the checked step (bench records it). */
  summary: RoutingSummary;
  pass: boolean;
}

export interface SampledCheckOptions {
  /**
   * The host copy of the layer's inputs when they came from the host; null: the layer holds the
   * GPU fill (MoELayer.randomizeOnGpu): X, dO and Wr are read back, and each expert's weights
   * are regenerated on the host (src/fill.ts) after FILL_GUARD_ELEMENTS of them matched bit for bit.
   */
  inputs: LayerInputs | null;
  tolerance: Tolerance;
  /** Apply the capacity rule in the reference (capacity strategies). */
  capacity: boolean;
  /** Tests: runs after the step, before the readback (to plant an error in the GPU's results). */
  afterStep?: (layer: MoELayer, sample: SampleChoice) => Promise<void> | void;
}

export async function sampledCheck(layer: MoELayer, options: SampledCheckOptions): Promise<SampledCheck> {
  const c = layer.config;
  const { tokens: T, hidden: d, ffn: h } = c;
  const a = layer.allocator;
  const t = layer.gpuTensors().layer;
  const host = options.inputs;
  const fillSeed = host ? null : layer.gpuFillSeed;
  if (!host && fillSeed === null) throw new Error('sampledCheck: without host inputs the layer must hold the GPU fill (randomizeOnGpu), which the host can regenerate');
  if (fillSeed !== null) await guardFill(layer, fillSeed);
  const X32 = host?.X ?? (await readTensor(a, t.X));
  const dO32 = host?.dO ?? (await readTensor(a, t.dO));
  const Wr = Float64Array.from(host?.Wr ?? (await readTensor(a, t.Wr)));
  const X = Float64Array.from(X32);
  const dO = Float64Array.from(dO32);

  await layer.forward();
  const gpuRouting = await layer.readRouting();
  const summary = await layer.routingSummary();
  await layer.backward();
  const { routing, forced, forcedTokens } = routingFor(c, X, Wr, options.capacity, gpuRouting.experts);
  const sample = chooseSample(c, routing, c.seed);
  await options.afterStep?.(layer, sample);

  // Only the sampled rows and columns come back (dW1 alone is 15 GB in the largest presets).
  const { output, inputGrad } = layer.gpuTensors();
  if (!output || !inputGrad) throw new Error('sampledCheck: the step left no output');
  const rows = sample.tokens.map((tok) => ({ start: tok * d, length: d }));
  const columns = sample.units.flatMap(({ expert: e, unit: j }) => Array.from({ length: d }, (_, i) => e * d * h + i * h + j));
  const unitRows = sample.units.map(({ expert: e, unit: j }) => ({ start: e * h * d + j * d, length: d }));
  const got: { [K in VerifiedTensor]: Float32Array | null } = {
    O: await readRuns(a, output, rows),
    dX: await readRuns(a, inputGrad, rows),
    dW1: await readElements(layer.kernels, t.dW1, columns),
    dW3: t.dW3 && (await readElements(layer.kernels, t.dW3, columns)),
    dW2: await readRuns(a, t.dW2, unitRows),
    dWr: null,
  };

  // dWr of a step whose dO is zero outside the sample; then dO as it was (exactly: same values).
  const masked = new Float32Array(T * d);
  for (const tok of sample.tokens) masked.set(dO32.subarray(tok * d, tok * d + d), tok * d);
  try {
    layer.setInputs({ dO: masked });
    await layer.forward();
    await layer.backward();
    got.dWr = await readTensor(a, t.dWr);
  } finally {
    layer.setInputs({ dO: dO32 });
  }

  const weights = async (e: number) =>
    fillSeed !== null
      ? { fillSeed, expert: e }
      : {
          W1: Float64Array.from(host!.W1.subarray(e * d * h, (e + 1) * d * h)),
          W3: host!.W3 ? Float64Array.from(host!.W3.subarray(e * d * h, (e + 1) * d * h)) : null,
          W2: Float64Array.from(host!.W2.subarray(e * h * d, (e + 1) * h * d)),
        };
  const ref = await sampledReference(c, { X, dO, Wr, weights }, routing, sample);
  const want: ExpectedTensors = {
    O: { value: ref.O.v, scale: ref.O.s },
    dX: { value: ref.dX.v, scale: ref.dX.s },
    dWr: { value: ref.dWrMasked.v, scale: ref.dWrMasked.s },
    dW1: { value: ref.dW1.v, scale: ref.dW1.s },
    dW2: { value: ref.dW2.v, scale: ref.dW2.s },
    dW3: ref.dW3 && { value: ref.dW3.v, scale: ref.dW3.s },
  };
  const tensors = compareRun(got, want, options.tolerance);
  const droppedPairs = { gpu: summary.droppedPairs, reference: routing.dropped };
  return {
    tensors,
    sample: { tokens: sample.tokens.length, units: sample.units.length },
    nearTieTokens: forced,
    forcedTokens,
    droppedPairs,
    summary,
    pass: tensors.every((x) => x.pass) && droppedPairs.gpu === droppedPairs.reference,
  };
}

/** Weight elements per tensor that guardFill compares. */
export const FILL_GUARD_ELEMENTS = 256;

/**
 * The host regenerates the weights only where it would make the GPU's values exactly: seeded
 * random elements of W1, W3 and W2 read back and compared bit for bit with src/fill.ts, so that
 * a fill that drifted from its replica is named as such instead of showing as a wrong gradient.
 */
export async function guardFill(layer: MoELayer, seed: number, count = FILL_GUARD_ELEMENTS): Promise<void> {
  const { hidden: d, ffn: h } = layer.config;
  const std = fillStds(d, h);
  const t = layer.gpuTensors().layer;
  const rng = new Xoshiro128((seed ^ 0x91a2b3c4) >>> 0);
  for (const name of ['W1', 'W3', 'W2'] as const) {
    const tensor = t[name];
    if (!tensor) continue;
    const { rows, cols } = tensor.layout;
    const indices = Array.from({ length: count }, () => Math.floor(rng.uniform() * rows * cols));
    const got = await readElements(layer.kernels, tensor, indices);
    const scale = fillScale(std[name]);
    indices.forEach((index, i) => {
      const want = fillValue(seed, FILL_TENSORS[name], Math.floor(index / cols), index % cols, scale);
      if (!Object.is(got[i], want)) throw new Error(`sampledCheck: the GPU fill of ${name} differs from its host replica at element ${index} (GPU ${got[i]}, host ${want}): kernels/init.ts and src/fill.ts must agree`);
    });
  }
}

/** The full float64 reference is cheap enough for this config (bench then also makes its inputs on the host). */
export function fullReferenceFits(c: LayerConfig): boolean {
  return c.tokens * c.topK * c.hidden * c.ffn <= FULL_REFERENCE_LIMIT;
}

/** The full float64 reference costs ~6·T·k·d·h multiply-adds on the CPU: beyond this bound on T·k·d·h, the sampled check. */
export const FULL_REFERENCE_LIMIT = 2e8;
