import { encodeRouterBackward, encodeRouterForward, routerShape } from '../../kernels/routing/router.js';
import type { TrackedBuffer } from '../gpu/allocator.js';
import { readTensor, readTensorU32 } from '../gpu/readback.js';
import type { Tensor } from '../gpu/tensor.js';
import type { LayerTensors, RoutingSummary, StepContext, StrategyRunner } from './contract.js';

/**
 * The shared router as every strategy calls it (docs/design.md#strategies: they differ after
 * routing, not in it): X, Wr and dWr are the layer's; the state buffers are the strategy's own,
 * under whatever names its table gives them.
 */
export function routeTokens(step: StepContext, layer: LayerTensors, b: { probs: TrackedBuffer; tokenExperts: TrackedBuffer; gates: TrackedBuffer }): Promise<void> {
  return encodeRouterForward(step.enc, routerShape(step.config), { X: layer.X.chunks[0], Wr: layer.Wr.chunks[0], ...b });
}

/**
 * The router backward's buffers under the names the buffer tables mostly give them; a strategy
 * names, in `names`, only those its table calls otherwise.
 */
export const ROUTER_GRAD_BUFFERS = {
  probs: 'routerProbs',
  tokenExperts: 'tokenExperts',
  gates: 'gates',
  pairRows: 'pairRows',
  dgPartial: 'dg',
  expertOffsets: 'expertOffsets',
  dz: 'routerGrad',
  dX: 'dX',
} as const;

export type RouterGradBuffer = keyof typeof ROUTER_GRAD_BUFFERS;

/**
 * The router's backward: dg (as `dgParts` partial sums per routed row, found through `pairRows`)
 * → dz → dWr and the router's share of dX, plus the load-balancing term of the layer's auxLoss.
 * `chunk` finds a step buffer (one binding) by its table name.
 */
export function routeTokensBackward(
  step: StepContext,
  layer: LayerTensors,
  chunk: (name: string) => TrackedBuffer,
  options: { dgParts: number; gatesByRow?: boolean; names?: Partial<Record<RouterGradBuffer, string>> },
): Promise<void> {
  const names = { ...ROUTER_GRAD_BUFFERS, ...options.names };
  const b = Object.fromEntries(Object.entries(names).map(([role, name]) => [role, chunk(name)])) as Record<RouterGradBuffer, TrackedBuffer>;
  const shape = { ...routerShape(step.config), dgParts: options.dgParts, gatesByRow: options.gatesByRow, auxLoss: step.config.auxLoss };
  return encodeRouterBackward(step.enc, shape, { X: layer.X.chunks[0], Wr: layer.Wr.chunks[0], dWr: layer.dWr.chunks[0], ...b });
}

/** A dropless strategy's routing as the router wrote it (`tokenExperts`, `gates` by pair): every pair is kept. */
export async function readRouterOutput(step: StepContext, get: (name: string) => Tensor): ReturnType<StrategyRunner['readRouting']> {
  const experts = await readTensorU32(step.kernels.allocator, get('tokenExperts'));
  const gates = await readTensor(step.kernels.allocator, get('gates'));
  return { experts, gates, kept: new Uint8Array(experts.length).fill(1) };
}

/** A dropless strategy's routing summary from its expert offsets [E+1] (where each expert's rows start): no pair dropped. */
export async function droplessSummary(step: StepContext, expertOffsets: Tensor): Promise<RoutingSummary> {
  const offsets = await readTensorU32(step.kernels.allocator, expertOffsets);
  const { experts: E, tokens: T, topK: k } = step.config;
  const expertLoads = Array.from({ length: E }, (_, e) => offsets[e + 1] - offsets[e]);
  return { expertLoads, keptPairs: T * k, droppedPairs: 0, capacity: null };
}
