import { encodeRouterBackward, encodeRouterForward, routerShape } from '../../kernels/routing/router.js';
import type { TrackedBuffer } from '../gpu/allocator.js';
import type { LayerTensors, StepContext } from './contract.js';

/**
 * The shared router as every strategy calls it (docs/design.md#strategies: they differ after
 * routing, not in it): X, Wr and dWr are the layer's; the state buffers are the strategy's own,
 * under whatever names its table gives them.
 */
export function routeTokens(step: StepContext, layer: LayerTensors, b: { probs: TrackedBuffer; tokenExperts: TrackedBuffer; gates: TrackedBuffer }): Promise<void> {
  return encodeRouterForward(step.enc, routerShape(step.config), { X: layer.X.chunks[0], Wr: layer.Wr.chunks[0], ...b });
}

/**
 * The router's backward: dg (as `dgParts` partial sums per routed row, found through `pairRows`)
 * → dz → dWr and the router's share of dX, plus the load-balancing term of the layer's auxLoss.
 */
export function routeTokensBackward(
  step: StepContext,
  layer: LayerTensors,
  b: { probs: TrackedBuffer; tokenExperts: TrackedBuffer; gates: TrackedBuffer; pairRows: TrackedBuffer; dgPartial: TrackedBuffer; expertOffsets: TrackedBuffer; dz: TrackedBuffer; dX: TrackedBuffer },
  options: { dgParts: number; gatesByRow?: boolean },
): Promise<void> {
  return encodeRouterBackward(step.enc, { ...routerShape(step.config), ...options, auxLoss: step.config.auxLoss }, { X: layer.X.chunks[0], Wr: layer.Wr.chunks[0], dWr: layer.dWr.chunks[0], ...b });
}
