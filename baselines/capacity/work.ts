import { capacitySlots, decodeGather, encodeScatter, gateGradFromCombine, gateGradFromOutput } from './dispatch-kernels.js';
import { addRows, castCombine, gatingSec, locationsOneHot, packNonzero } from './gshard-gating.js';
import { capacityGemms, einsumCombine, einsumCombineGradWeights, einsumCombineGradY, einsumDispatch, einsumDispatchGradX } from './gemm-kernels.js';
import { capacityOf, type LayerConfig } from '../../src/config.js';
import type { KernelWork, RoutingSummary } from '../../src/strategy/contract.js';
import { inPhase, denseExpertWork, routerBackwardWork, routerForwardWork, routingMetadataWork, WORD, workSizes } from '../../src/strategy/work.js';

/** Where tokens enter and leave the [E,C] grid, forward and backward (each strategy's own kernels). */
interface GridEnds {
  dispatch: KernelWork[];
  combine: KernelWork[];
  combineGrad: KernelWork[];
  dispatchGrad: KernelWork[];
}

/** E·C: the rows every expert GEMM of a capacity strategy computes, empty slots included. */
export function capacityRows(c: LayerConfig, routing: RoutingSummary): number {
  return c.experts * capacityOf(c, routing.expertLoads);
}

/**
 * A capacity strategy's train step (Strategy.work), in the order of experts.ts: router, index
 * lists and slots, the strategy's dispatch, the expert MLP over the E·C slots, its combine; then
 * the combine's gradient, the router's, the experts' and the dispatch's. With C = 0 (every pair
 * dropped) the runner skips every kernel over the empty grid, and so do these entries.
 */
function capacityWork(c: LayerConfig, routing: RoutingSummary, ends: GridEnds): KernelWork[] {
  const Q = capacityRows(c, routing);
  const g = capacityGemms(c.activation, c.dtype);
  const dense =
    Q > 0
      ? denseExpertWork(
          c,
          { up: g.up.name, down: g.down.name, dW2: g.dW2.store.name, dU: g.dU.name, actGrad: g.actGrad.name, dW13: g.dW13.store.name, dInput: g.dDispatched.name },
          { up: 'up', down: 'down', downGrad: 'down-grad', actGrad: 'act-grad', upGrad: 'up-grad' },
          Q,
          routing.keptPairs,
        )
      : { forward: [], backward: [] };
  return [
    ...routerForwardWork(c),
    ...routingMetadataWork(c),
    // The row map rewritten in place into slots, from each pair's expert and its expert's offset.
    inPhase('forward', 'metadata')(capacitySlots.name, WORD * 3 * c.tokens * c.topK),
    ...ends.dispatch,
    ...dense.forward,
    ...ends.combine,
    ...ends.combineGrad,
    ...routerBackwardWork(c, routing.keptPairs, 1),
    ...dense.backward,
    ...ends.dispatchGrad,
  ];
}

/** Tutel: kept pairs' rows scattered into the zero-filled slots (encode) and gathered back per token (decode). */
export function tutelWork(c: LayerConfig, routing: RoutingSummary): KernelWork[] {
  const { T, d, R, f } = workSizes(c);
  const kept = routing.keptPairs * d * f;
  const grid = capacityRows(c, routing) > 0;
  const decodeGrad = inPhase('backward', 'decode-grad');
  return capacityWork(c, routing, {
    dispatch: grid ? [inPhase('forward', 'encode')(encodeScatter(c.dtype).name, WORD * R + 2 * kept)] : [],
    combine: [inPhase('forward', 'decode')(decodeGather(c.dtype).name, WORD * 2 * R + kept + T * d * f)],
    combineGrad: grid
      ? [
          decodeGrad(encodeScatter(c.dtype).name, WORD * 2 * R + 2 * kept),
          // dg = ⟨dO_t, y[slot]⟩ for each kept pair.
          decodeGrad(gateGradFromOutput(c.dtype).name, WORD * (R + routing.keptPairs) + 2 * kept),
        ]
      : [],
    // Added onto the router's share of dX.
    dispatchGrad: grid ? [inPhase('backward', 'encode-grad')(decodeGather(c.dtype).name, WORD * R + kept + 2 * T * d * f)] : [],
  });
}

/**
 * GShard: the f32 gating tensors over [T, E·C] (gating.ts), the bool mask, the mask and combine
 * weights at the layer's dtype, and contractions through them at both ends. None does useful
 * FLOPs (they move rows).
 */
export function gshardWork(c: LayerConfig, routing: RoutingSummary): KernelWork[] {
  const { T, d, R, f } = workSizes(c);
  const Q = capacityRows(c, routing);
  const mask = T * Q * f;
  const weights = T * Q * f;
  const gatingRows = T * Q * WORD;
  const k = c.topK;
  const tokenRows = T * d * f;
  const slotRows = Q * d * f;
  const grid = Q > 0;
  const masks = inPhase('forward', 'masks');
  const gating = inPhase('forward', 'gating');
  const locations = k > 2 ? gatingRows : k * T * (Q / Math.max(c.experts, 1)) * WORD;
  const combineGrad = inPhase('backward', 'combine-grad');
  return capacityWork(c, routing, {
    dispatch: [
      gating(locationsOneHot.name, WORD * 2 * R + locations),
      // With C = 0 the [T,E,C] tensors are empty: the element-wise passes over them dispatch nothing.
      ...(k === 2 ? [gating(gatingSec.name, WORD * 2 * R + 2 * gatingRows), ...(grid ? [gating(addRows.name, 3 * gatingRows)] : [])] : [gating(gatingSec.name, WORD * 2 * R + gatingRows)]),
      ...(grid ? [gating(packNonzero.name, gatingRows + T * Math.ceil(Q / 4) * WORD), masks(castCombine(c.dtype).name, gatingRows + mask)] : []),
      ...(grid ? [inPhase('forward', 'dispatch')(einsumDispatch(c.dtype).name, mask + tokenRows + slotRows)] : []),
    ],
    combine: [
      ...(c.dtype === 'f32' || !grid ? [] : [inPhase('forward', 'combine')(castCombine(c.dtype).name, gatingRows + weights)]),
      inPhase('forward', 'combine')(einsumCombine(c.dtype).name, weights + slotRows + tokenRows),
    ],
    combineGrad: [
      ...(grid ? [combineGrad(einsumCombineGradY(c.dtype).name, weights + tokenRows + slotRows), combineGrad(einsumCombineGradWeights(c.dtype).name, tokenRows + slotRows + weights)] : []),
      // dg of each kept pair read off the dense gradient at its slot.
      combineGrad(gateGradFromCombine(c.dtype).name, WORD * (R + routing.keptPairs) + routing.keptPairs * f),
    ],
    dispatchGrad: grid ? [inPhase('backward', 'dispatch-grad')(einsumDispatchGradX(c.dtype).name, mask + slotRows + 2 * tokenRows)] : [],
  });
}
