"""ScatterMoE (shawntan/scattermoe) v0.2.0, re-created line for line on CPU torch: its Triton ops
(scatter2scatter, group, group_bwd_W) become the ParallelLinear autograd Function computing the
same values; everything around it (flatten_and_sort, padded_block_indices, the MLPs, the
activation) is upstream's torch code. Writes fidelity/scattermoe.json. Run: see README.md beside.

v0.2.0 (commit ec4a1a3, the last with expert-aligned blocks, as in the paper arXiv 2403.08245):
- scattermoe/mlp.py  GLUMLP.forward (L30-51), MLP.forward (L76-97)
- scattermoe/parallel_experts.py ParallelLinear.forward (L7-41: saves x, expert_weights,
  sorted_expert_idxs, sorted_scattered_idxs, padded_block_idxs, expert_offsets, gates,
  output_expanded)
- scattermoe/kernels/ops.py flatten_and_sort (L17-21), padded_block_indices (L23-43: each expert's
  rows padded to whole BLOCK_M = 128 blocks, so no block spans two experts), scatter2scatter
  (L125-140)
Version 0.3.0 (2d15f31) drops padded_block_idxs and lets a block span experts; it saves the same
tensors but that one.
"""
import torch
import torch.nn.functional as F

import record
from cases import CASES, case_record, measure, setup, weight

BLOCK_M = 128


def flatten_and_sort(expert_idxs):
    flattened_expert_idxs = expert_idxs.flatten()
    sorted_expert_idxs, sorted_scattered_idxs = torch.sort(flattened_expert_idxs, stable=True)
    return sorted_expert_idxs, sorted_scattered_idxs


def padded_block_indices(sorted_experts_idxs, k, N_BLOCK_SIZE=BLOCK_M):
    # ops.py L23-43, as written (k is num_experts at the call site).
    expert_counts = torch.bincount(sorted_experts_idxs, minlength=k)
    padded_block_counts = ((expert_counts - 1) // N_BLOCK_SIZE) + 1
    padded_expert_block_end = padded_block_counts.cumsum(-1)
    expert_boundaries_end = expert_counts.cumsum(-1)
    expert_boundaries_start = expert_boundaries_end - expert_counts
    padded_expert_block_start = padded_expert_block_end - padded_block_counts
    block_idxs = torch.arange(padded_expert_block_end[-1], dtype=sorted_experts_idxs.dtype)
    block_mask = (block_idxs[:, None] < padded_expert_block_start) | (block_idxs[:, None] >= padded_expert_block_end)
    expanded_block_idxs = N_BLOCK_SIZE * (block_idxs[:, None] - padded_expert_block_start) + expert_boundaries_start
    expanded_block_idxs = expanded_block_idxs.masked_fill(block_mask, 0).sum(-1)
    return expanded_block_idxs, expert_boundaries_end


def scatter2scatter(X, W, sorted_expert_idxs, sorted_scattered_idxs, k, x_grouped=False, y_grouped=False):
    # ops.py scatter2scatter: output [L_scattered, y_dim] in X's dtype, rows grouped or scattered.
    L = sorted_expert_idxs.size(0)
    out = torch.empty((L, W.size(-1)), dtype=X.dtype)
    for i in range(L):
        src = i if x_grouped else int(sorted_scattered_idxs[i]) // k
        dst = i if y_grouped else int(sorted_scattered_idxs[i])
        out[dst] = X[src] @ W[int(sorted_expert_idxs[i])]
    return out


class ParallelLinear(torch.autograd.Function):
    # parallel_experts.py L7-41.
    @staticmethod
    def forward(ctx, x, expert_weights, k, sorted_expert_idxs, sorted_scattered_idxs, padded_block_idxs, expert_offsets, gates=None, grouped_in=False, grouped_out=False):
        output = scatter2scatter(x, expert_weights, sorted_expert_idxs, sorted_scattered_idxs, k, grouped_in, grouped_out)
        if gates is not None:
            output_expanded = record.label(output.view(gates.size(0), gates.size(1), output.size(-1)), 'output_expanded')
            output = torch.bmm(gates[:, None, :], output_expanded).squeeze(1)
        else:
            output_expanded = None
        ctx.save_for_backward(x, expert_weights, sorted_expert_idxs, sorted_scattered_idxs, padded_block_idxs, expert_offsets, gates, output_expanded)
        return output


def forward(rec, case, x, expert_p, expert_idxs, w_experts, w_output):
    E, k = case['experts'], case['topK']
    with torch.no_grad():
        sorted_expert_idxs, sorted_scattered_idxs = flatten_and_sort(expert_idxs)
        padded_block_idxs, expert_offsets = padded_block_indices(sorted_expert_idxs, E)
    for t, n in [(sorted_expert_idxs, 'sorted_expert_idxs'), (sorted_scattered_idxs, 'sorted_scattered_idxs'),
                 (padded_block_idxs, 'padded_block_idxs'), (expert_offsets, 'expert_offsets')]:
        rec.name(t, n)
    # ParallelExperts.forward passes weight.permute(0, 2, 1): [E, in, out].
    h = rec.name(ParallelLinear.apply(x, w_experts.permute(0, 2, 1), k, sorted_expert_idxs, sorted_scattered_idxs, padded_block_idxs, expert_offsets, None, False, True), 'h (experts)')
    if case['activation'] == 'swiglu':  # GLUMLP: .chunk(2, dim=-1), silu(gates) * h
        h, gates = h.chunk(2, dim=-1)
        s = rec.name(F.silu(gates), 'activation(gates)')
        h = rec.name(s * h, 'h (mul)')
    else:  # MLP: activation(h)
        h = rec.name(F.gelu(h), 'h (activation)')
    y = ParallelLinear.apply(h, w_output.permute(0, 2, 1), 1, sorted_expert_idxs, sorted_scattered_idxs, padded_block_idxs, expert_offsets, expert_p, True, False)
    return y


def run():
    cases = []
    for case in CASES:
        dt, (_, gates, idx, loads), x, (E, d, h) = setup(case)
        width = 2 * h if case['activation'] == 'swiglu' else h
        # ParallelExperts.weight is [E, output_size, input_size].
        leaves = {'x': x, 'experts.weight': weight(E, width, d, dtype=dt, seed=1), 'output_experts.weight': weight(E, d, h, dtype=dt, seed=3),
                  'expert_p': gates.detach().to(dt).requires_grad_(), 'expert_idxs': idx}
        result = measure(case, lambda rec: forward(rec, case, x, leaves['expert_p'], idx, leaves['experts.weight'], leaves['output_experts.weight']), leaves)
        cases.append(case_record(case, loads, record.name_unnamed(result, case, [])))
    return cases


if __name__ == '__main__':
    upstream = [{'repo': 'shawntan/scattermoe', 'commit': 'ec4a1a3 (v0.2.0)', 'files': ['scattermoe/mlp.py', 'scattermoe/parallel_experts.py', 'scattermoe/kernels/ops.py']}]
    record.write('scattermoe', upstream, run())
