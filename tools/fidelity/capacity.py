"""Tutel's fast dispatcher and DeepSpeed's GShard einsum MoE, re-created on CPU torch. Tutel's
CUDA encode/decode kernels become autograd Functions that save what GatingEncoder/GatingDecoder
save; DeepSpeed's gating and MOELayer are plain torch and run as upstream wrote them (the
all-to-all of one process is a copy, as all_to_all_single into torch.empty_like is).
Writes fidelity/tutel.json and fidelity/gshard.json. Run: see README.md beside.

Upstream, at the commits recorded in the JSON:
- microsoft/tutel tutel/impls/fast_dispatch.py GatingEncoder (L16-29), GatingDecoder (L50-66),
  extract_critical (L143-204: one-hot masks, gates, cumsum locations, capacity
  top_k·int(cf·⌈T/E⌉)), fast_encode/fast_decode (L209-221); tutel/impls/moe_layer.py forward
  (L255-363); tutel/experts/llama_ffn.py LlamaFFNNetwork.forward (L33-42: silu(x·W1) * (x·W2), ·W3)
- microsoft/DeepSpeed deepspeed/moe/sharded_moe.py top1gating (L183-287, use_rts), top2gating
  (L290-371, 2nd expert by Gumbel sampling), topkgating (L374-446, drop_policy 'probs'),
  TopKGate.forward (L499-530: input.float(), the f32 gate linear), MOELayer.forward (L586-677:
  einsum 'sec,sm->ecm' of dispatch_mask.type_as(input), _AllToAll, Experts, einsum 'sec,ecm->sm' of
  combine_weights.type_as(input)); deepspeed/moe/experts.py Experts.forward (per-expert chunks, cat)
"""
import math

import torch
import torch.nn.functional as F

import record
from cases import CASES, case_record, measure, setup, weight


# ---- Tutel ----

class GatingEncoder(torch.autograd.Function):
    # fast_dispatch.py L16-29: saves reshaped_input; dispatched = zeros [E·C, d], rows scattered in.
    @staticmethod
    def forward(ctx, config, reshaped_input):
        ctx.save_for_backward(reshaped_input)
        out = torch.zeros([config['E'] * config['C'], reshaped_input.shape[1]], dtype=reshaped_input.dtype)
        for i, l in zip(config['indices'], config['locations']):
            for t in range(reshaped_input.shape[0]):
                if l[t] < config['C']:
                    out[i[t] * config['C'] + l[t]] = reshaped_input[t]
        return out


class GatingDecoder(torch.autograd.Function):
    # fast_dispatch.py L50-66: saves expert_output; gates kept on ctx (ctx.gates_h2), a [T, d]
    # single_output per k summed into the result.
    @staticmethod
    def forward(ctx, config, expert_output, *gates_):
        ctx.gates_h2 = gates_
        ctx.save_for_backward(expert_output)
        last_result = None
        for g, i, l in zip(gates_, config['indices'], config['locations']):
            single_output = record.label(torch.zeros([len(i), expert_output.shape[1]], dtype=expert_output.dtype), 'single_output')
            for t in range(len(i)):
                if l[t] < config['C']:
                    single_output[t] = g[t] * expert_output[i[t] * config['C'] + l[t]]
            last_result = single_output if last_result is None else last_result + single_output
        return last_result


def extract_critical(rec, scores, top_k, capacity_factor=1.0):
    # fast_dispatch.py L143-204 (normalize_gate=True, no batch-prioritized routing).
    E = scores.size(1)
    topk_indices = torch.topk(scores, top_k, dim=1).indices
    indices_s = [x.view(-1) for x in topk_indices.chunk(top_k, dim=1)]
    masks_se = [F.one_hot(x, num_classes=E).to(x.dtype) for x in indices_s]
    gates_s = [(scores * x).sum(dim=1) for x in masks_se]
    locations1 = torch.cumsum(masks_se[0], dim=0) - 1
    locations_s = [torch.sum(locations1 * masks_se[0], dim=1).to(torch.int32)]
    acc_base = None
    for k in range(1, top_k):
        acc_base = torch.sum(masks_se[k - 1], dim=0, keepdim=True) if acc_base is None else acc_base + torch.sum(masks_se[k - 1], dim=0, keepdim=True)
        locations2 = torch.cumsum(masks_se[k], dim=0) - 1
        locations2 += acc_base
        locations_s.append(torch.sum(locations2 * masks_se[k], dim=1).to(torch.int32))
    if top_k > 1:
        denom_s = torch.clamp(sum(gates_s), min=torch.finfo(gates_s[0].dtype).eps)
        gates_s = [x / denom_s for x in gates_s]
    samples_per_expert = (scores.size(0) + E - 1) // E
    capacity = top_k * int(capacity_factor * samples_per_expert)
    return {'E': E, 'C': capacity, 'indices': [x.tolist() for x in indices_s], 'locations': [x.tolist() for x in locations_s]}, gates_s


def tutel_forward(rec, case, x, logits, W_fc1, W_fc2, W_fc3):
    scores = F.softmax(logits, dim=1)  # moe_layer.py L290
    crit, gates_s = extract_critical(rec, scores, case['topK'])
    E, C, d = crit['E'], crit['C'], x.shape[1]
    y = rec.name(GatingEncoder.apply(crit, x).view(E, -1, d), 'dispatched_input')  # fast_encode (is_postscore)
    # llama_ffn.py L38-42 (sharded_count 1: the gathered params are the params).
    y1 = rec.name(torch.matmul(y, W_fc1), 'y1')
    if W_fc2 is not None:
        y2 = rec.name(torch.matmul(y, W_fc2), 'y2')
        s = rec.name(F.silu(y1), 'activation_fn(y1)')
        h = rec.name(s * y2, 'y (mul)')
    else:
        h = rec.name(F.gelu(y1), 'y (activation)')
    out = rec.name(torch.matmul(h, W_fc3), 'expert_output')
    out = out.reshape(E, C, -1)
    return GatingDecoder.apply(crit, out.view(E * C, -1), *gates_s)  # fast_decode (is_postscore)


# ---- DeepSpeed GShard ----

def _capacity(T, E, capacity_factor, min_capacity):
    return max(math.ceil(T / E * capacity_factor), min_capacity)  # sharded_moe.py L161-170


def top1gating(rec, logits, capacity_factor, min_capacity):
    # sharded_moe.py L183-287 (no noise, drop_tokens, use_rts).
    gates = F.softmax(logits, dim=1)
    capacity = _capacity(logits.shape[0], logits.shape[1], capacity_factor, min_capacity)
    indices1_s = torch.argmax(gates, dim=1)
    E = int(gates.shape[1])
    mask1 = F.one_hot(indices1_s, num_classes=E)
    me = torch.mean(gates, dim=0)
    ce = torch.mean(mask1.float(), dim=0)
    l_aux = torch.sum(me * ce) * E
    mask1_rand = mask1 * torch.rand(mask1.shape)
    top_idx = torch.topk(mask1_rand, k=capacity, dim=0)[1]
    mask1 = mask1 * torch.zeros_like(mask1).scatter_(0, top_idx, 1)
    locations1 = torch.cumsum(mask1, dim=0) - 1
    locations1_s = torch.sum(locations1 * mask1, dim=1)
    mask1_float = mask1.float()
    gates = gates * mask1_float
    locations1_sc = rec.name(F.one_hot(locations1_s, capacity).float(), 'locations1_sc')
    combine_weights = rec.name(torch.einsum('se,sc->sec', gates, locations1_sc), 'combine_weights')
    dispatch_mask = rec.name(combine_weights.bool(), 'dispatch_mask')
    return l_aux, combine_weights, dispatch_mask


def top2gating(rec, logits, capacity_factor, min_capacity):
    # sharded_moe.py L290-371 (drop_tokens, top2_2nd_expert_sampling).
    gates = F.softmax(logits, dim=1)
    indices1_s = torch.argmax(gates, dim=1)
    E = int(gates.shape[1])
    mask1 = F.one_hot(indices1_s, num_classes=E)
    logits = logits + (-torch.log(-torch.log(torch.rand(logits.shape))))  # gumbel_rsample (L308 adds in place)
    logits_except1 = logits.masked_fill(mask1.bool(), float('-inf'))
    indices2_s = torch.argmax(logits_except1, dim=1)
    mask2 = F.one_hot(indices2_s, num_classes=E)
    locations1 = torch.cumsum(mask1, dim=0) - 1
    locations2 = torch.cumsum(mask2, dim=0) - 1
    locations2 += torch.sum(mask1, dim=0, keepdim=True)
    me = torch.mean(gates, dim=0)
    ce = torch.mean(mask1.float(), dim=0)
    l_aux = torch.mean(me * ce) * E * E
    capacity = _capacity(logits.shape[0], E, capacity_factor * 2, min_capacity)
    mask1 = mask1 * torch.lt(locations1, capacity)
    mask2 = mask2 * torch.lt(locations2, capacity)
    locations1_s = torch.sum(locations1 * mask1, dim=1)
    locations2_s = torch.sum(locations2 * mask2, dim=1)
    mask1_float = mask1.float()
    mask2_float = mask2.float()
    gates1_s = torch.einsum('se,se->s', gates, mask1_float)
    gates2_s = torch.einsum('se,se->s', gates, mask2_float)
    denom_s = gates1_s + gates2_s
    denom_s = torch.clamp(denom_s, min=torch.finfo(denom_s.dtype).eps)
    gates1_s = gates1_s / denom_s
    gates2_s = gates2_s / denom_s
    gates1 = torch.einsum('s,se->se', gates1_s, mask1_float)
    gates2 = torch.einsum('s,se->se', gates2_s, mask2_float)
    locations1_sc = rec.name(F.one_hot(locations1_s, capacity).float(), 'locations1_sc')
    locations2_sc = rec.name(F.one_hot(locations2_s, capacity).float(), 'locations2_sc')
    combine1_sec = rec.name(torch.einsum('se,sc->sec', gates1, locations1_sc), 'combine1_sec')
    combine2_sec = rec.name(torch.einsum('se,sc->sec', gates2, locations2_sc), 'combine2_sec')
    combine_weights = rec.name(combine1_sec + combine2_sec, 'combine_weights')
    dispatch_mask = rec.name(combine_weights.bool(), 'dispatch_mask')
    return l_aux, combine_weights, dispatch_mask


def topkgating(rec, logits, k, capacity_factor, min_capacity):
    # sharded_moe.py L374-446 (drop_tokens, drop_policy 'probs').
    top_gate, top_idx = torch.topk(logits, k=k, dim=1)
    gates = F.softmax(logits, dim=1)
    E = int(gates.shape[1])
    topk_masked_gates = torch.zeros_like(logits).scatter(1, top_idx, top_gate)
    mask = torch.zeros_like(gates, dtype=torch.bool).scatter_(1, top_idx, 1)
    me = torch.mean(gates, dim=0)
    ce = torch.mean(mask.float(), dim=0)
    l_aux = torch.mean(me * ce) * E * E / k
    capacity = _capacity(logits.shape[0], E, capacity_factor * k, min_capacity)
    capacity_probs, capacity_indices = torch.topk(topk_masked_gates, k=capacity, dim=0, sorted=False)
    capacity_mask = torch.zeros_like(logits).scatter(0, capacity_indices, 1)
    mask = torch.logical_and(mask, capacity_mask)
    locations = torch.cumsum(mask, dim=0) - 1
    gates_masked = gates * mask
    gates_s = torch.sum(gates_masked, dim=-1, keepdim=True)
    denom_s = torch.clamp(gates_s, min=torch.finfo(gates_masked.dtype).eps)
    gates_masked = gates_masked / denom_s
    locations_sc = rec.name(F.one_hot((locations * mask), capacity).float(), 'locations_sc')
    combine_weights = rec.name(torch.einsum('se,sec->sec', gates_masked, locations_sc), 'combine_weights')
    dispatch_mask = rec.name(combine_weights.bool(), 'dispatch_mask')
    return l_aux, combine_weights, dispatch_mask


def all_to_all(x):
    # sharded_moe.py _AllToAll.forward (L99-104): contiguous, empty_like, all_to_all_single (a copy for one process).
    x = x.contiguous()
    out = torch.empty_like(x)
    out.copy_(x)
    return out


def gshard_forward(rec, case, x, wg, experts):
    k, E = case['topK'], case['experts']
    input_fp32 = x.float()  # TopKGate.forward L507-511
    logits = torch.nn.functional.linear(input_fp32, weight=wg.float(), bias=None)
    if k == 1:
        l_aux, combine_weights, dispatch_mask = top1gating(rec, logits, 1.0, 0)
    elif k == 2:
        l_aux, combine_weights, dispatch_mask = top2gating(rec, logits, 1.0, 0)
    else:
        l_aux, combine_weights, dispatch_mask = topkgating(rec, logits, k, 1.0, 0)
    d_model = x.shape[-1]
    reshaped_input = x.reshape(-1, d_model)
    mask = rec.name(dispatch_mask.type_as(x), 'dispatch_mask.type_as(input)')
    dispatched_input = rec.name(torch.einsum('sec,sm->ecm', mask, reshaped_input), 'dispatched_input (einsum)')
    del mask
    dispatched_input = rec.name(all_to_all(dispatched_input), 'dispatched_input')
    dispatched_input = dispatched_input.reshape(1, E, -1, d_model)
    # experts.py Experts.forward: one module per expert over its chunk, outputs concatenated.
    chunks = dispatched_input.chunk(E, dim=1)
    outputs = []
    for chunk, (w1, w3, w2) in zip(chunks, experts):
        a = rec.name(F.linear(chunk, w1), 'a')
        if w3 is not None:
            b = rec.name(F.linear(chunk, w3), 'b')
            u = rec.name(rec.name(F.silu(a), 'silu(a)') * b, 'u')
        else:
            u = rec.name(F.gelu(a), 'u')
        outputs.append(rec.name(F.linear(u, w2), 'expert out'))
    expert_output = rec.name(torch.cat(outputs, dim=1), 'expert_output (cat)')
    del outputs
    expert_output = expert_output.reshape(E, -1, d_model)
    expert_output = rec.name(all_to_all(expert_output), 'expert_output')
    combine = rec.name(combine_weights.type_as(x), 'combine_weights.type_as(input)')
    combined_output = torch.einsum('sec,ecm->sm', combine, expert_output)
    return combined_output.reshape(x.shape)


def run(strategy):
    cases = []
    for case in CASES:
        dt, (logits, gates, idx, _), x, (E, d, h) = setup(case)
        swiglu = case['activation'] == 'swiglu'
        torch.manual_seed(5)
        if strategy == 'tutel':
            leaves = {'x': x, 'logits': logits.requires_grad_(), 'W_fc1': weight(E, d, h, dtype=dt, seed=1), 'W_fc3': weight(E, h, d, dtype=dt, seed=3)}
            if swiglu:
                leaves['W_fc2'] = weight(E, d, h, dtype=dt, seed=2)
            result = measure(case, lambda rec: tutel_forward(rec, case, x, leaves['logits'], leaves['W_fc1'], leaves.get('W_fc2'), leaves['W_fc3']), leaves)
        else:
            wg = weight(E, d, dtype=dt, seed=4)
            experts = [(weight(h, d, dtype=dt, seed=10 + e), weight(h, d, dtype=dt, seed=30 + e) if swiglu else None, weight(d, h, dtype=dt, seed=50 + e)) for e in range(E)]
            leaves = {'x': x, 'wg': wg}
            for e, ws in enumerate(experts):
                for n, w in zip(('w1', 'w3', 'w2'), ws):
                    if w is not None:
                        leaves[f'{n}[{e}]'] = w
            result = measure(case, lambda rec: gshard_forward(rec, case, x, wg, experts), leaves)
        C = case['topK'] * math.ceil(case['tokens'] / E)
        result = record.name_unnamed(result, case, [
            ('BmmBackward0.self', case['tokens'] * E * C, 'combine einsum copy of combine_weights'),
            ('BmmBackward0.mat2', E * C * d, 'combine einsum copy of expert_output'),
            ('MmBackward0.self', case['tokens'] * d, 'input_fp32 (gate)'),
        ])
        # These gatings route by their own logits (loads not recorded); C does not depend on them.
        cases.append(case_record(case, None, result, capacity=C))
    return cases


UPSTREAM = {
    'tutel': [{'repo': 'microsoft/tutel', 'commit': None, 'files': ['tutel/impls/fast_dispatch.py', 'tutel/impls/moe_layer.py', 'tutel/experts/llama_ffn.py']}],
    'gshard': [{'repo': 'microsoft/DeepSpeed', 'commit': None, 'files': ['deepspeed/moe/sharded_moe.py', 'deepspeed/moe/experts.py']}],
}

if __name__ == '__main__':
    for strategy in ('tutel', 'gshard'):
        upstream = [dict(u, commit=record.upstream_commit(f"/work/.mirror/{u['repo'].replace('/', '+')}/repo")) for u in UPSTREAM[strategy]]
        record.write(strategy, upstream, run(strategy))
