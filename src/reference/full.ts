import type { LayerConfig } from '../config.js';
import { offload } from '../offload.js';
import { referenceStep, type ReferenceInputs, type ReferenceResult } from './layer.js';
import { routeReference, type ReferenceRouting } from './routing.js';

/**
 * Near ties (docs/design.md#numerics-and-the-reference): where f32 and f64 may legitimately pick different experts, the
 * reference routing takes the GPU's choice for those tokens; any other difference stays.
 */
export function routingFor(config: LayerConfig, X: Float64Array, Wr: Float64Array, capacity: boolean, gpuExperts: Uint32Array): { routing: ReferenceRouting; forced: number; forcedTokens: number[] } {
  const first = routeReference(config, X, Wr, { capacity });
  const k = config.topK;
  const forcedExperts = new Map<number, number[]>();
  for (const t of first.nearTies) {
    const gpu = Array.from(gpuExperts.subarray(t * k, t * k + k));
    const ref = Array.from(first.experts.subarray(t * k, t * k + k));
    if (gpu.some((e, s) => e !== ref[s])) forcedExperts.set(t, gpu);
  }
  if (forcedExperts.size === 0) return { routing: first, forced: 0, forcedTokens: [] };
  return { routing: routeReference(config, X, Wr, { capacity, forcedExperts, logits: first.logits }), forced: forcedExperts.size, forcedTokens: [...forcedExperts.keys()].sort((a, b) => a - b) };
}

/** The full float64 reference of one step, with the GPU's routing taken for near-tie tokens. */
export function referenceFor(config: LayerConfig, inputs64: ReferenceInputs, capacity: boolean, gpuExperts: Uint32Array): { ref: ReferenceResult; forced: number; forcedTokens: number[] } {
  const { routing, forced, forcedTokens } = routingFor(config, inputs64.X, inputs64.Wr, capacity, gpuExperts);
  return { ref: referenceStep(config, inputs64, { capacity, routing }), forced, forcedTokens };
}

/**
 * Below this many multiply-adds per GEMM (T·k·d·h) the reference takes milliseconds, less than a
 * worker thread takes to start: it runs inline.
 */
export const INLINE_REFERENCE_MACS = 2 ** 22;

/**
 * referenceFor on a worker thread (src/offload.ts) where it is large, so that Ctrl-C is answered
 * at once rather than after the reference (22 s at verify's largest shapes, issue 28).
 */
export async function referenceOffThread(config: LayerConfig, inputs64: ReferenceInputs, capacity: boolean, gpuExperts: Uint32Array): Promise<{ ref: ReferenceResult; forced: number; forcedTokens: number[] }> {
  const { tokens: T, topK: k, hidden: d, ffn: h } = config;
  if (T * k * d * h <= INLINE_REFERENCE_MACS) return referenceFor(config, inputs64, capacity, gpuExperts);
  return offload(referenceFor, new URL('./full.js', import.meta.url), 'referenceFor', [config, inputs64, capacity, gpuExperts]);
}
