import type { LayerConfig } from '../../src/config.js';
import { floatBytes } from '../../src/f16.js';
import type { KernelWork, RoutingSummary } from '../../src/strategy/contract.js';
import { routerBackwardWork, routerForwardWork, routingMetadataWork } from '../../src/strategy/work.js';
import { FORWARD_END, phases } from './table.js';

/**
 * Strategy.work: the shared router's kernels, the sort (the shared routing metadata over the R
 * flattened pairs, each a "token" with k = 1) and ScatterMoE's own kernels below.
 */
export function scatterMoEWork(c: LayerConfig, routing: RoutingSummary): KernelWork[] {
  const sort = routingMetadataWork({ ...c, tokens: c.tokens * c.topK, topK: 1 }).map((w) => ({ ...w, phase: 'sort' }));
  return [...routerForwardWork(c), ...sort, ...ownWork(c), ...routerBackwardWork(c, routing.keptPairs, 1)];
}

/**
 * The work of ScatterMoE's own kernels in one train step:
 * useful FLOPs (docs/design.md#useful-flops: the expert GEMMs only, over the R routed rows,
 * nothing padded) and compulsory bytes, every operand read once and every output written once
 * (index lists and gates 4 bytes, the rest at the dtype). Blocks never span two experts
 * (gemm-kernels.ts); a block's masked rows past its expert's end are not useful and not counted.
 */
function ownWork(c: LayerConfig): KernelWork[] {
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
  const R = T * k;
  const f = floatBytes(c.dtype);
  const swiglu = c.activation === 'swiglu';
  const glu = swiglu ? 'swiglu' : 'plain';
  const m = swiglu ? 2 : 1;
  const W = E * d * h * f;
  // What scatter2scatter reads besides its operands: sorted_scattered_idxs and the blocks (expert_offsets, tileOffsets).
  const index = 4 * R + 4 * 2 * (E + 1);
  const order = phases(c);
  const backward = (phase: string) => order.indexOf(phase) > order.indexOf(FORWARD_END);
  const entry = (kernel: string, phase: string, bytes: number, flops = 0): KernelWork => ({ kernel, pass: backward(phase) ? 'backward' : 'forward', phase, flops, bytes });
  const activation = swiglu
    ? [entry('smoe-mul-grad', 'mul-grad', 5 * R * h * f), entry('smoe-act-grad-swiglu', 'act-grad', 3 * R * h * f), entry('smoe-cat-grad', 'cat-grad', 4 * R * h * f)]
    : [entry(`smoe-act-grad-${c.activation}`, 'act-grad', 3 * R * h * f)];
  return [
    entry('smoe-sorted-experts', 'sort', 4 * 3 * R),
    // X rows gathered; a|b written, with silu(a) and u where SwiGLU keeps them.
    entry(`smoe-up-${c.activation}`, 'up', R * d * f + m * W + (swiglu ? 4 : 2) * R * h * f + index, 2 * R * d * h * m),
    entry('smoe-down', 'down', R * h * f + W + R * d * f + index, 2 * R * h * d),
    entry('smoe-combine', 'combine', R * d * f + 4 * R + T * d * f),
    entry('smoe-gate-grad', 'down-grad', R * d * f + T * d * f + 4 * R),
    // g·dO into sorted order in down-grad, X into sorted order in up-grad: rows, index and gate.
    entry('smoe-group', 'down-grad', T * d * f + R * d * f + 4 * 2 * R),
    entry('smoe-dW2', 'down-grad', R * h * f + R * d * f + 4 * (E + 1) + 2 * W, 2 * R * h * d),
    entry('smoe-dU', 'down-grad', R * d * f + W + R * h * f + index, 2 * R * d * h),
    ...activation,
    entry('smoe-group', 'up-grad', T * d * f + R * d * f + 4 * R),
    entry(`smoe-dW13-${glu}`, 'up-grad', R * d * f + m * R * h * f + 4 * (E + 1) + 2 * m * W, 2 * R * d * h * m),
    entry(`smoe-dX-${glu}`, 'up-grad', m * R * h * f + m * W + R * d * f + index, 2 * R * h * m * d),
    entry('smoe-pair-rows', 'router-grad', 4 * R),
    entry('smoe-sum-k', 'input-grad', R * d * f + 2 * T * d * f),
  ];
}
