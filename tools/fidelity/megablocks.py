"""MegaBlocks dMoE (databricks/megablocks), sparse and grouped, re-created line for line on CPU
torch: its Triton/CUDA ops (ops.sort, histogram, padded_gather, padded_scatter, gather, scatter,
stk's sdd/dsd, grouped_gemm's gmm) become autograd Functions that save exactly what upstream's
save_for_backward lists and compute the same values; every torch op between them is upstream's.
Writes fidelity/megablocks.json and fidelity/megablocks-grouped.json. Run: see README.md beside.

Upstream, at the commit recorded in the JSON:
- megablocks/layers/dmoe.py  ParallelDroplessMLP.sparse_forward_once (L156-193),
  indices_and_padded_bins (L131-154), topology (L68-129), sparse_transpose (L35-66),
  grouped_forward_once (L239-258), grouped_permute_and_compute (L260-280)
- megablocks/layers/glu.py   SparseGLU.forward (L47-63), GroupedGLU.forward (L175-205);
  memory_optimized_mlp is off by default (megablocks/layers/arguments.py)
- megablocks/layers/mlp.py   SparseMLP.forward (L379-394), GroupedMLP.forward (L501-523)
- megablocks/ops/padded_gather.py, padded_scatter.py, gather.py, scatter.py (what each saves)
- megablocks/backend/kernels.py padded_scatter (L173-203: a [tokens, top_k, d] result summed over k)
- stanford-futuredata/stk stk/backend/sputnik.py SDD and DSD (save_for_backward lists),
  stk/ops/eltwise_ops.py mul (a.data * b.data)
- tgale96/grouped_gemm grouped_gemm/ops.py GroupedGemm.forward (saves a, b, batch_sizes)
"""
import functools

import torch
import torch.nn.functional as F

import record
from cases import CASES, case_record, measure, setup, weight

BLOCKING = 128


class PaddedGather(torch.autograd.Function):
    # megablocks/ops/padded_gather.py: saves indices, bin_ids, bins, padded_bins.
    @staticmethod
    def forward(ctx, x, indices, bin_ids, bins, padded_bins, top_k):
        ctx.save_for_backward(indices, bin_ids, bins, padded_bins)
        out = torch.zeros((int(padded_bins[-1]), x.shape[1]), dtype=x.dtype)  # backend/kernels.py L124
        start = 0
        for e in range(len(bins)):
            end = int(bins[e])
            first = int(padded_bins[e - 1]) if e > 0 else 0
            rows = indices[start:end].long() // top_k
            out[first:first + end - start] = x[rows]
            start = end
        return out


class PaddedScatter(torch.autograd.Function):
    # megablocks/ops/padded_scatter.py: saves indices, bin_ids, weights, bins, padded_bins, and x
    # when the weights need a gradient (the gates' gradient reads the expert outputs).
    @staticmethod
    def forward(ctx, x, indices, bin_ids, weights, bins, padded_bins, top_k):
        ctx.save_for_backward(indices, bin_ids, weights, bins, padded_bins, *([x] if ctx.needs_input_grad[3] else []))
        tokens = indices.shape[0] // top_k
        out = record.label(torch.empty((tokens, top_k, x.shape[1]), dtype=x.dtype), 'out [tokens, top_k, d]')  # backend/kernels.py L187
        flat = out.view(-1, x.shape[1])
        start = 0
        for e in range(len(bins)):
            end = int(bins[e])
            first = int(padded_bins[e - 1]) if e > 0 else 0
            pairs = indices[start:end].long()
            flat[pairs] = x[first:first + end - start] * weights.flatten()[pairs, None].to(x.dtype)
            start = end
        return out.sum(dim=1) if top_k > 1 else out.view(tokens, x.shape[1])  # L203


def gather(x, indices, bin_ids, bins, top_k):
    # megablocks/ops/gather.py: GatherOp saves indices, bin_ids, bins; output [R, d] (kernels.py L156).
    return PaddedGather.apply(x, indices, bin_ids, bins, bins, top_k)


def scatter(x, indices, bin_ids, weights, bins, top_k):
    # megablocks/ops/scatter.py: ScatterOp saves indices, bin_ids, weights, bins (+ x).
    return Scatter.apply(x, indices, bin_ids, weights, bins, top_k)


class Scatter(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, indices, bin_ids, weights, bins, top_k):
        ctx.save_for_backward(indices, bin_ids, weights, bins, *([x] if ctx.needs_input_grad[3] else []))
        return PaddedScatter.forward(_NoSave(), x, indices, bin_ids, weights, bins, bins, top_k)


class _NoSave:
    needs_input_grad = (False,) * 8

    def save_for_backward(self, *tensors):
        pass


class Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, indices, bin_ids, bins, top_k):
        ctx.save_for_backward(indices, bin_ids, bins)
        return PaddedGather.forward(_NoSave(), x, indices, bin_ids, bins, bins, top_k)


class SDD(torch.autograd.Function):
    # stk/backend/sputnik.py SDD: saves lhs, rhs and the six topology tensors; out = blocks of lhs·rhs.
    @staticmethod
    def forward(ctx, lhs, rhs, shape, offsets, row_indices, column_indices, offsets_t, column_indices_t, block_offsets_t):
        ctx.save_for_backward(lhs, rhs, offsets, row_indices, column_indices, offsets_t, column_indices_t, block_offsets_t)
        out = torch.empty((column_indices.numel(), BLOCKING, BLOCKING), dtype=lhs.dtype)
        for b in range(column_indices.numel()):
            r, c = int(row_indices[b]), int(column_indices[b])
            out[b] = lhs[r * BLOCKING:(r + 1) * BLOCKING] @ rhs[:, c * BLOCKING:(c + 1) * BLOCKING]
        return out


class DSD(torch.autograd.Function):
    # stk/backend/sputnik.py DSD: saves data, the six topology tensors and rhs; out [rows, rhs cols].
    @staticmethod
    def forward(ctx, shape, data, offsets, row_indices, column_indices, offsets_t, column_indices_t, block_offsets_t, rhs):
        ctx.save_for_backward(data, offsets, row_indices, column_indices, offsets_t, column_indices_t, block_offsets_t, rhs)
        out = torch.zeros((shape[0], rhs.shape[1]), dtype=data.dtype)
        for b in range(column_indices.numel()):
            r, c = int(row_indices[b]), int(column_indices[b])
            out[r * BLOCKING:(r + 1) * BLOCKING] += data[b] @ rhs[c * BLOCKING:(c + 1) * BLOCKING]
        return out


class GroupedGemm(torch.autograd.Function):
    # grouped_gemm/ops.py L8-11: saves a, b, batch_sizes.
    @staticmethod
    def forward(ctx, a, b, batch_sizes, trans_b):
        ctx.save_for_backward(a, b, batch_sizes)
        out = torch.empty((a.shape[0], b.shape[1] if trans_b else b.shape[2]), dtype=a.dtype)
        start = 0
        for e, n in enumerate(batch_sizes.tolist()):
            w = b[e].t() if trans_b else b[e]
            out[start:start + n] = a[start:start + n] @ w
            start += n
        return out


def indices_and_bins(rec, top_experts, E, padded):
    # dmoe.py L131-154 (ops.sort keeps the input's width: int32), under torch.no_grad() (L162).
    top_experts = top_experts.int()
    bin_ids, indices = torch.sort(top_experts, stable=True)
    indices = indices.int()
    tokens_per_expert = torch.bincount(top_experts, minlength=E).int()
    bins = torch.cumsum(tokens_per_expert, 0).int()
    rec.name(indices, 'indices'), rec.name(bin_ids, 'bin_ids'), rec.name(bins, 'bins')
    if not padded:
        return indices, bin_ids, bins, tokens_per_expert, None
    padded_tokens_per_expert = (tokens_per_expert + BLOCKING - 1) // BLOCKING * BLOCKING
    padded_bins = torch.cumsum(padded_tokens_per_expert, 0).int()
    rec.name(padded_bins, 'padded_bins')
    return indices, bin_ids, bins, tokens_per_expert, padded_bins


def topology(rec, padded_tokens, ffn, E, padded_bins):
    # dmoe.py L68-129 and sparse_transpose L35-66: stk's blocked topology of the [P, E·h] hidden matrix.
    block_rows, blocks_per_row = padded_tokens // BLOCKING, ffn // BLOCKING
    offsets = torch.arange(0, block_rows * blocks_per_row + 1, blocks_per_row, dtype=torch.int32)
    starts = torch.cat([torch.zeros(1, dtype=torch.int32), padded_bins[:-1]])
    column_indices = torch.empty(block_rows * blocks_per_row, dtype=torch.int16)  # ops/topology.py
    row_indices = torch.empty(block_rows * blocks_per_row, dtype=torch.int16)
    for r in range(block_rows):
        e = int(torch.searchsorted(padded_bins, torch.tensor(r * BLOCKING), right=True))
        for j in range(blocks_per_row):
            column_indices[r * blocks_per_row + j] = e * blocks_per_row + j
            row_indices[r * blocks_per_row + j] = r
    _, gather_indices = torch.sort(column_indices.int(), stable=True)
    column_indices_t = row_indices.gather(0, gather_indices.long())
    block_offsets_t = gather_indices.int()
    nnz_per_column = torch.cumsum(torch.bincount(column_indices.long(), minlength=E * blocks_per_row), 0).int()
    offsets_t = torch.cat([torch.zeros(1, dtype=torch.int32), nnz_per_column])
    for t, n in [(offsets, 'topo.offsets'), (row_indices, 'topo.row_indices'), (column_indices, 'topo.column_indices'),
                 (column_indices_t, 'topo.column_indices_t'), (offsets_t, 'topo.offsets_t'), (block_offsets_t, 'topo.block_offsets_t')]:
        rec.name(t, n)
    return (padded_tokens, ffn * E), (offsets, row_indices, column_indices, offsets_t, column_indices_t, block_offsets_t)


def activation_fn(case):
    # arguments.py: DEFAULT_ACTIVATION_FN = partial(F.gelu, approximate='tanh'); silu for SwiGLU/--activation silu.
    return F.silu if case['activation'] in ('swiglu', 'silu') else functools.partial(F.gelu, approximate='tanh')


def sparse_forward(rec, case, x, expert_weights, top_experts, w1, v1, w2):
    E, k = case['experts'], case['topK']
    expert_weights, top_experts = expert_weights.flatten(), top_experts.flatten()
    with torch.no_grad():
        indices, bin_ids, bins, tokens_per_expert, padded_bins = indices_and_bins(rec, top_experts, E, True)
    x = rec.name(PaddedGather.apply(x, indices, bin_ids, bins, padded_bins, k), 'x (padded_gather)')
    with torch.no_grad():
        shape, topo = topology(rec, x.shape[0], case['ffn'], E, padded_bins)
    act = activation_fn(case)
    if v1 is not None:  # glu.py SparseGLU.forward L57-63
        x1 = rec.name(SDD.apply(x, w1.t(), shape, *topo), 'x1 (sdd)')
        x2 = rec.name(SDD.apply(x, v1.t(), shape, *topo), 'x2 (sdd)')
        activation_fn_out = rec.name(act(x1), 'activation_fn_out')  # activation_fn.py: function(x.data)
        x1 = rec.name(activation_fn_out * x2, 'x1 (mul)')  # stk.ops.mul: a.data * b.data
    else:  # mlp.py SparseMLP.forward L392-394
        x1 = rec.name(SDD.apply(x, w1.t(), shape, *topo), 'x (sdd)')
        x1 = rec.name(act(x1), 'activation_fn(x)')
    y = rec.name(DSD.apply(shape, x1, *topo, w2), 'x (dsd)')
    return PaddedScatter.apply(y, indices, bin_ids, expert_weights, bins, padded_bins, k)


def grouped_forward(rec, case, x, expert_weights, top_experts, w1, v1, w2):
    E, k, d = case['experts'], case['topK'], case['hidden']
    expert_weights, top_experts = expert_weights.flatten(), top_experts.flatten()
    with torch.no_grad():
        indices, bin_ids, bins, tokens_per_expert, _ = indices_and_bins(rec, top_experts, E, False)
    x = rec.name(Gather.apply(x, indices, bin_ids, bins, k), 'x (gather)')
    batch_sizes = rec.name(tokens_per_expert.to(torch.long), 'batch_sizes (host)')  # .cpu(): host memory upstream
    act = activation_fn(case)
    w1, w2 = w1.view(E, -1, d), w2.view(E, -1, d)
    if v1 is not None:  # glu.py GroupedGLU.forward L200-205
        v1 = v1.view(E, -1, d)
        x1 = rec.name(GroupedGemm.apply(x, w1, batch_sizes, True), 'x1 (gmm)')
        x2 = rec.name(GroupedGemm.apply(x, v1, batch_sizes, True), 'x2 (gmm)')
        s = rec.name(act(x1), 'activation_fn(x1)')
        x1 = rec.name(s * x2, 'x1 (mul)')
    else:  # mlp.py GroupedMLP.forward L519-523
        x1 = rec.name(GroupedGemm.apply(x, w1, batch_sizes, True), 'x (gmm)')
        x1 = rec.name(act(x1), 'activation_fn(x)')
    y = rec.name(GroupedGemm.apply(x1, w2, batch_sizes, False), 'x (gmm out)')
    return Scatter.apply(y, indices, bin_ids, expert_weights, bins, k)


def run(mode):
    cases = []
    for case in CASES:
        dt, (_, gates, idx, loads), x, (E, d, h) = setup(case)
        # SparseMLP/SparseGLU weights: [E·h, d] each (mlp.py L315-330, glu.py L23-30).
        w1 = weight(E * h, d, dtype=dt, seed=1)
        v1 = weight(E * h, d, dtype=dt, seed=2) if case['activation'] == 'swiglu' else None
        w2 = weight(E * h, d, dtype=dt, seed=3)
        ew = gates.detach().to(dt).requires_grad_()
        leaves = {n: t for n, t in [('x', x), ('w1', w1), ('v1', v1), ('w2', w2), ('expert_weights', ew), ('top_experts', idx)] if t is not None}
        fwd = sparse_forward if mode == 'sparse' else grouped_forward
        result = measure(case, lambda rec: fwd(rec, case, x, ew, idx, w1, v1, w2), leaves)
        cases.append(case_record(case, loads, record.name_unnamed(result, case, [])))
    return cases


UPSTREAM = [
    {'repo': 'databricks/megablocks', 'commit': None, 'files': ['megablocks/layers/dmoe.py', 'megablocks/layers/glu.py', 'megablocks/layers/mlp.py', 'megablocks/ops/padded_gather.py', 'megablocks/ops/padded_scatter.py', 'megablocks/ops/gather.py', 'megablocks/ops/scatter.py', 'megablocks/backend/kernels.py']},
    {'repo': 'stanford-futuredata/stk', 'commit': None, 'files': ['stk/backend/sputnik.py', 'stk/ops/eltwise_ops.py']},
    {'repo': 'tgale96/grouped_gemm', 'commit': None, 'files': ['grouped_gemm/ops.py']},
]

if __name__ == '__main__':
    upstream = [dict(u, commit=record.upstream_commit(f"/work/.mirror/{u['repo'].replace('/', '+')}/repo")) for u in UPSTREAM]
    record.write('megablocks', upstream, run('sparse'))
    record.write('megablocks-grouped', upstream, run('grouped'))
