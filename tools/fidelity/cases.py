"""The shapes every fidelity script runs, and their routing: a seeded top-k of random logits,
renormalised gates (the shared router of docs/design.md#the-layer, outside every strategy), handed
to each baseline's forward as its inputs (leaves, so they count as the caller's, not the layer's).
"""
import torch

import record
from record import Recorder, name_savers, summarize

# T is a multiple of E (so DeepSpeed's ceil(T/E·cf·k) equals moeblaze's k·⌊cf·⌈T/E⌉⌋) and h a
# multiple of 128 (stk's blocked topology needs whole 128×128 blocks).
CASES = [
    {'tokens': 96, 'hidden': 32, 'ffn': 128, 'experts': 4, 'topK': 2, 'activation': 'swiglu', 'dtype': 'f32'},
    {'tokens': 128, 'hidden': 48, 'ffn': 256, 'experts': 8, 'topK': 1, 'activation': 'gelu', 'dtype': 'f32'},
    {'tokens': 64, 'hidden': 32, 'ffn': 128, 'experts': 4, 'topK': 4, 'activation': 'swiglu', 'dtype': 'f32'},
    {'tokens': 64, 'hidden': 32, 'ffn': 128, 'experts': 8, 'topK': 2, 'activation': 'swiglu', 'dtype': 'bf16'},
]

TORCH_DTYPE = {'f32': torch.float32, 'bf16': torch.bfloat16}


def routing(case, seed=7):
    g = torch.Generator().manual_seed(seed)
    T, E, k = case['tokens'], case['experts'], case['topK']
    logits = torch.randn(T, E, generator=g)
    probs = logits.softmax(-1)
    p, idx = probs.topk(k, dim=-1)
    gates = p / p.sum(-1, keepdim=True) if k > 1 else p
    loads = torch.bincount(idx.flatten(), minlength=E).tolist()
    return logits, gates, idx, loads


def inputs(case, seed=11):
    g = torch.Generator().manual_seed(seed)
    dt = TORCH_DTYPE[case['dtype']]
    x = torch.randn(case['tokens'], case['hidden'], generator=g).to(dt).requires_grad_()
    return x


def setup(case):
    """What every script takes from a case: its dtype, routing (logits, gates, idx, loads), input and sizes (E, d, h)."""
    return TORCH_DTYPE[case['dtype']], routing(case), inputs(case), (case['experts'], case['hidden'], case['ffn'])


def weight(*shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) / shape[-2] ** 0.5).to(dtype).requires_grad_()


def measure(case, forward, leaves):
    """Runs forward() under the recorder: saved tensors and live storages; the leaves (a dict of
    upstream name to tensor: inputs, parameters, the router's outputs) are named and not counted."""
    rec = Recorder()
    rec.exclude(*leaves.values())
    for name, t in leaves.items():
        rec.name(t, name)
    record.CURRENT = rec
    with rec, torch.autograd.graph.saved_tensors_hooks(rec.pack, rec.unpack):
        out = forward(rec)
    outputs = out if isinstance(out, (tuple, list)) else [out]
    record.CURRENT = None
    name_savers(rec, outputs)
    result = summarize(rec, outputs)
    del out, outputs
    return result


def case_record(case, loads, result, **extra):
    return {'config': case, 'loads': loads, **extra, **result}
