import { metadataSizes } from '../../kernels/routing/metadata.js';
import { spec, type BufferSpec, type BufferTable } from '../../src/strategy/buffer-table.js';
import type { LayerConfig } from '../../src/config.js';
import { floatBytes } from '../../src/f16.js';
import { chunkLayout, type ChunkLayout } from '../../src/gpu/tensor.js';
import { persistentSpecs, type TableLimits } from '../../src/strategy/contract.js';

/**
 * ScatterMoE's memory, phase by phase (docs/design.md#scattermoe), as its MLP
 * (shawntan/scattermoe `scattermoe/mlp.py`, `GLUMLP.forward` and `MLP.forward`) runs under torch
 * autograd: two `ParallelLinear` autograd functions (`scattermoe/parallel_experts.py`) around
 * the activation, which autograd records op by op. Every buffer below is named after the upstream
 * tensor it stands for; the runner allocates exactly these (step-buffers.ts).
 *
 * Forward
 * - router: the shared router's probabilities, top-k ids (`expert_idxs`) and gates (`expert_p`).
 * - sort (`mlp.py`, under no_grad: `ops.py` `flatten_and_sort`, then `padded_block_indices`):
 *   `torch.sort` of the flattened [T·k] expert ids gives `sorted_expert_idxs` [R] and
 *   `sorted_scattered_idxs` [R] (the pair index t·k + s of each sorted position), `bincount` +
 *   `cumsum` give `expert_offsets`, and each expert's rows padded up to whole blocks give
 *   `padded_block_idxs` (every block's first row; no block spans two experts). All four are saved
 *   by both ParallelLinears. Here a stable counting sort (the shared routing-metadata
 *   builder, kernels/routing/metadata.ts, run on the R pairs as if each were a token with k = 1)
 *   orders each expert's pairs by pair index (torch.sort leaves that order open; only the
 *   summation order of the weight gradients depends on it); its block counts, pair-to-position
 *   map and segment offsets are workspace of the phase, standing in for torch.sort's and
 *   bincount's temporaries. The blocks are the sort's per-expert tile offsets `tileOffsets` [E+1]
 *   (expert e's blocks are tiles [tileOffsets[e], tileOffsets[e+1]), its rows start at
 *   expert_offsets[e]): upstream's blocks in E+1 numbers instead of one per block, 64-row blocks
 *   instead of Triton's 128.
 *   Index lists are u32 as for every strategy here (torch.sort returns int64: twice these bytes);
 *   expert_offsets keeps a leading 0 ([E+1], one u32 more than upstream's inclusive cumsum [E]).
 * - up (`ParallelLinear.forward` with grouped_out=True: `ops.py` `scatter2scatter`, X gathered
 *   by sorted_scattered_idxs // k): one [R, 2h] output in grouped (expert-sorted) order, SwiGLU's
 *   two projections side by side (`GLUMLP`: ParallelExperts(d, 2h), then `.chunk(2, dim=-1)`:
 *   first half h = x·W3, second half `gates` = x·W1), [R, h] for the plain MLP. The activation is
 *   torch ops that autograd records: SwiGLU `silu(gates) * h` keeps the [R,2h] output (silu saves
 *   its input view, mul saves h) and allocates silu(a) [R,h] (saved by mul) and u [R,h]; the plain
 *   MLP's act saves a and allocates u. (Fused into the GEMM's store here; the same buffers.)
 * - down (`ParallelLinear.forward`, grouped_in=True, gates given): `scatter2scatter` writes the
 *   expert outputs [R, d] in scattered (pair) order; `output_expanded` = its [T, k, d] view is
 *   saved for the gate gradient, and `gates.unsqueeze(1) @ output_expanded` (a batched matmul)
 *   makes O [T, d]. ctx also saves u (its input), the index lists and the gates.
 *
 * Backward, in autograd order
 * - down-grad (second ParallelLinear.backward): d_gates = output_expanded @ grad_out ([T,k],
 *   kept until the router's backward); `ops.group(grad_out, sorted_scattered_idxs, coeff=gates,
 *   out=output_expanded)` writes the gate-scaled, grouped copy of dO into Y's own storage
 *   ("reuse expanded buffer later"): no new [R,d]; `group_bwd_W` (groupXtY) makes dW2, which
 *   becomes W2's .grad (the persistent dW2: AccumulateGrad takes the fresh tensor as the grad);
 *   `scatter2scatter` makes dU [R,h] (grouped in, grouped out). Then ctx's Y and u go.
 * - SwiGLU, autograd's nodes for `silu(gates) * h` and the chunk: mul-grad makes d(silu a) and
 *   db [R,h] each (then dU and silu(a) go); act-grad (silu's backward) makes da [R,h] (then
 *   d(silu a) and the [R,2h] output go); cat-grad (chunk's backward, a cat) makes d_hidden
 *   [R,2h] (then db and da go). Plain MLP: act-grad makes d_hidden = da [R,h] (then dU and a go).
 * - up-grad (first ParallelLinear.backward, grouped_out=True, grouped_in=False):
 *   `ops.group(x, sorted_scattered_idxs, fan_out=k)` makes a grouped copy of X [R,d];
 *   group_bwd_W makes dW1|dW3 (W1's and W3's .grad); `scatter2scatter(..., out=grouped_x)`
 *   writes the input gradient's rows, in scattered order, into that same buffer. Then
 *   d_hidden and the index lists go.
 * - router-grad, input-grad: upstream sums the [T,k,d] rows over k (`.sum(-2)`) and autograd adds
 *   the router's share of dX after. Here the shared router writes dX first and the k rows are
 *   added into it (MegaBlocks' order too): the rows stay one phase longer, which is never the
 *   peak. The router reads dg through a pair-to-row list; upstream's d_gates is already by pair,
 *   so `pairRows` is the identity, a router-grad-only R·4 bytes this port adds. The router's
 *   load-balancing term reads the expert loads from expert_offsets, kept until then (E+1 u32).
 *
 * dtype: every [R,·] tensor, O and dX in the input dtype, as torch keeps them; the router's state,
 * d_gates and index lists full width (f32/u32) at any dtype. ScatterMoE has no recompute:
 * --checkpoint is ignored.
 */
export const FORWARD_END = 'combine';

export function phases(c: LayerConfig): string[] {
  const act = c.activation === 'swiglu' ? ['mul-grad', 'act-grad', 'cat-grad'] : ['act-grad'];
  return ['router', 'sort', 'up', 'down', FORWARD_END, 'down-grad', ...act, 'up-grad', 'router-grad', 'input-grad'];
}

/** Width of the first projection's output: SwiGLU's two halves [b | a] side by side, else a. */
export function hiddenWidth(c: LayerConfig): number {
  return c.activation === 'swiglu' ? 2 * c.ffn : c.ffn;
}

function rowsLayout(rows: number, cols: number, elementBytes: number, rowsPerChunk: number): ChunkLayout {
  return { rows, cols, elementBytes, rowsPerChunk, chunkCount: Math.max(1, Math.ceil(rows / rowsPerChunk)) };
}

/**
 * Layouts of one step. Every [R,·] tensor is chunked on the same row boundaries (so a GEMM's
 * grouped input and output chunks pair up), each chunk holding whole tokens' k rows (so the
 * combine and the sum over k never straddle two chunks).
 */
export function layouts(c: LayerConfig, chunkBytes: number) {
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
  const R = T * k;
  const f = floatBytes(c.dtype);
  const whole = (rows: number, cols = 1) => chunkLayout(rows, cols, 4, Infinity);
  const rowsPerChunk = Math.min(...[d, h, hiddenWidth(c)].map((w) => chunkLayout(R, w, f, chunkBytes, k).rowsPerChunk));
  const sort = metadataSizes(R, E, 1);
  return {
    R,
    probs: whole(T, E),
    pairs: whole(T, k),
    perPair: whole(R),
    offsets: whole(E + 1),
    blockCounts: whole(sort.blockCounts),
    rowsD: rowsLayout(R, d, f, rowsPerChunk),
    rowsH: rowsLayout(R, h, f, rowsPerChunk),
    rowsHidden: rowsLayout(R, hiddenWidth(c), f, rowsPerChunk),
    tokenRows: chunkLayout(T, d, f, Infinity),
  };
}

export function scatterMoETable(c: LayerConfig, limits: TableLimits): BufferTable {
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
  const L = layouts(c, limits.chunkBytes);
  const R = L.R;
  const swiglu = c.activation === 'swiglu';
  const f = c.dtype;
  const W = hiddenWidth(c);
  const step: BufferSpec[] = [];
  const add = (name: string, tag: BufferSpec['tag'], layout: ChunkLayout, shape: number[], dtype: BufferSpec['dtype'], from: string, to: string) =>
    step.push(spec(name, tag, layout, shape, dtype, from, to));
  const last = 'input-grad';
  add('routerProbs', 'activations-saved', L.probs, [T, E], 'f32', 'router', 'router-grad');
  add('tokenExperts', 'routing-metadata', L.pairs, [T, k], 'u32', 'router', 'router-grad');
  add('gates', 'routing-metadata', L.pairs, [T, k], 'f32', 'router', 'router-grad');
  // flatten_sort_count: the counting sort's scratch, then the three saved index lists.
  add('sortBlockCounts', 'workspace', L.blockCounts, [L.blockCounts.rows], 'u32', 'sort', 'sort');
  add('sortPositions', 'workspace', L.perPair, [R], 'u32', 'sort', 'sort');
  for (const name of ['sortSegmentOffsets', 'sortSegmentTileOffsets']) add(name, 'workspace', L.offsets, [E + 1], 'u32', 'sort', 'sort');
  add('sortedScatteredIdxs', 'routing-metadata', L.perPair, [R], 'u32', 'sort', 'up-grad');
  // padded_block_idxs, as each expert's first block: the GEMMs' blocking, to the last one (dX rows).
  add('tileOffsets', 'routing-metadata', L.offsets, [E + 1], 'u32', 'sort', 'up-grad');
  add('sortedExpertIdxs', 'routing-metadata', L.perPair, [R], 'u32', 'sort', 'up-grad');
  add('expertOffsets', 'routing-metadata', L.offsets, [E + 1], 'u32', 'sort', 'router-grad');
  // First ParallelLinear (grouped out) and the activation autograd records.
  add('hidden', 'activations-saved', L.rowsHidden, [R, W], f, 'up', 'act-grad');
  if (swiglu) add('siluA', 'activations-saved', L.rowsH, [R, h], f, 'up', 'mul-grad');
  add('u', 'activations-saved', L.rowsH, [R, h], f, 'up', 'down-grad');
  // Second ParallelLinear: scattered rows (output_expanded), gate-weighted by the batched matmul.
  add('Y', 'activations-saved', L.rowsD, [T, k, d], f, 'down', 'down-grad');
  add('O', 'output', L.tokenRows, [T, d], f, FORWARD_END, last);
  add('dg', 'workspace', L.pairs, [T, k], 'f32', 'down-grad', 'router-grad');
  add('dU', 'workspace', L.rowsH, [R, h], f, 'down-grad', swiglu ? 'mul-grad' : 'act-grad');
  if (swiglu) {
    add('dSiluA', 'workspace', L.rowsH, [R, h], f, 'mul-grad', 'act-grad');
    add('dB', 'workspace', L.rowsH, [R, h], f, 'mul-grad', 'cat-grad');
    add('dA', 'workspace', L.rowsH, [R, h], f, 'act-grad', 'cat-grad');
  }
  add('dHidden', 'workspace', L.rowsHidden, [R, W], f, swiglu ? 'cat-grad' : 'act-grad', 'up-grad');
  // grouped_x, then (same storage) the input gradient's rows in scattered order.
  add('groupedX', 'workspace', L.rowsD, [R, d], f, 'up-grad', last);
  add('routerGrad', 'workspace', L.probs, [T, E], 'f32', 'router-grad', 'router-grad');
  add('pairRows', 'workspace', L.perPair, [R], 'u32', 'router-grad', 'router-grad');
  add('dX', 'output', L.tokenRows, [T, d], f, 'router-grad', last);
  return { phases: phases(c), forwardEnd: FORWARD_END, persistent: persistentSpecs(c, limits), step };
}
