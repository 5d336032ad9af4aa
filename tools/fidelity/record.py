"""What a forward pass under torch autograd keeps, measured: every tensor autograd saves for
backward (through torch.autograd.graph.saved_tensors_hooks) and the live bytes of every storage
created during the pass (through a TorchDispatchMode that sees each op's outputs), with their peak.

Used by the scripts beside it, one per baseline, to write fidelity/<strategy>.json, which
test/baselines/fidelity.test.ts compares with the buffer tables. CPU torch (tested with 1.13);
never run in CI. Written for moeblaze; the recreated forwards cite the upstream lines they follow.
"""
import json
import os
import subprocess
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode

DTYPES = {torch.float32: 'f32', torch.float16: 'f16', torch.bfloat16: 'bf16', torch.int64: 'i64',
          torch.int32: 'i32', torch.int16: 'i16', torch.bool: 'bool', torch.uint8: 'u8'}


def storage_key(t):
    s = t.storage()
    return (s.data_ptr(), s.nbytes())


CURRENT = None


def label(t, name):
    """Names t's storage in the recording under way (for code that has no recorder at hand)."""
    if CURRENT is not None:
        CURRENT.name(t, name)
    return t


class Recorder(TorchDispatchMode):
    """Live storages (by data pointer) from op outputs and saved tensors; the peak of their bytes."""

    def __init__(self):
        super().__init__()
        self.live = {}  # key -> {'bytes', 'refs', 'name'}
        self.preexisting = set()
        self.now = 0
        self.peak = 0
        self.peak_at = {}
        self.saved = []  # one entry per pack: key, shape, dtype, holder
        self.names = {}  # key -> upstream name, for storages named while live
        self.unpacked = []

    def exclude(self, *tensors):
        """Tensors that exist before the pass (inputs, parameters): never counted."""
        for t in tensors:
            self.preexisting.add(storage_key(t)[0])

    def _ref(self, key, nbytes, obj):
        if key in self.preexisting or nbytes == 0:
            return
        entry = self.live.get(key)
        if entry is None:
            entry = self.live[key] = {'bytes': nbytes, 'refs': 0, 'name': None}
            self.now += nbytes
            if self.now > self.peak:
                self.peak = self.now
                self.peak_at = {k: (v['bytes'], v['name']) for k, v in self.live.items()}
                self.peak_op = getattr(self, 'op', None)
        entry['refs'] += 1
        weakref.finalize(obj, self._unref, key)

    def _unref(self, key):
        entry = self.live.get(key)
        if entry is None:
            return
        entry['refs'] -= 1
        if entry['refs'] == 0:
            self.now -= entry['bytes']
            del self.live[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.op = str(func.overloadpacket.__name__) if hasattr(func, 'overloadpacket') else str(func)
        for t in (out if isinstance(out, (tuple, list)) else [out]):
            if isinstance(t, torch.Tensor) and t.device.type == 'cpu':
                ptr, nbytes = storage_key(t)
                self._ref(ptr, nbytes, t)
        return out

    def name(self, t, name):
        """Names the storage of t after the upstream variable it is (the first name given sticks)."""
        ptr = storage_key(t)[0]
        if ptr in self.live and self.live[ptr]['name'] is None:
            self.live[ptr]['name'] = name
        if ptr in self.preexisting:
            self.names.setdefault(ptr, name)
        for entry in self.saved:
            if entry['ptr'] == ptr and entry['alive'] and entry['name'] is None:
                entry['name'] = name
        return t

    # saved_tensors_hooks
    def pack(self, t):
        ptr, nbytes = storage_key(t)
        holder = _Holder(t, len(self.saved))
        name = self.live[ptr]['name'] if ptr in self.live else self.names.get(ptr)
        entry = {'ptr': ptr, 'bytes': nbytes, 'shape': list(t.shape), 'dtype': DTYPES.get(t.dtype, str(t.dtype)),
                 'input': ptr in self.preexisting, 'savers': [], 'name': name, 'alive': True}
        self.saved.append(entry)
        weakref.finalize(holder, entry.__setitem__, 'alive', False)
        self._ref(ptr, nbytes, holder)
        return holder

    def unpack(self, holder):
        self.unpacked.append(holder.index)
        return holder.tensor


class _Holder:
    def __init__(self, tensor, index):
        self.tensor = tensor
        self.index = index


def name_savers(rec, outputs):
    """Walks the graph from the outputs and names, for each saved tensor, the nodes that saved it
    (a built-in node's `_saved_<arg>` attribute, a custom Function's `saved_tensors[i]`)."""
    seen = set()
    stack = [o.grad_fn for o in outputs if o.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        op = type(node).__name__
        slots = [a for a in dir(node) if a.startswith('_saved_')]
        if not slots and hasattr(node, 'saved_tensors'):
            slots = ['saved_tensors']
        for attr in slots:
            rec.unpacked = []
            try:
                getattr(node, attr)
            except RuntimeError:
                continue
            label = attr[len('_saved_'):] if attr.startswith('_saved_') else 'saved_tensors'
            for i, index in enumerate(rec.unpacked):
                suffix = f'[{i}]' if len(rec.unpacked) > 1 or label == 'saved_tensors' else ''
                rec.saved[index]['savers'].append(f'{op}.{label}{suffix}')
        for next_fn, _ in node.next_functions:
            stack.append(next_fn)


def summarize(rec, outputs):
    """Saved tensors deduplicated by storage (the bytes autograd holds), and the forward's peak."""
    by_storage = {}
    for entry in rec.saved:
        s = by_storage.setdefault(entry['ptr'], {'name': entry['name'], 'bytes': entry['bytes'],
                                               'input': entry['input'], 'views': []})
        view = {'shape': entry['shape'], 'dtype': entry['dtype'], 'savers': entry['savers']}
        if view not in s['views']:
            s['views'].append(view)
    saved = sorted(by_storage.values(), key=lambda s: (s['input'], -s['bytes'], s['name'] or ''))
    peak = sorted(({'name': n, 'bytes': b} for b, n in rec.peak_at.values()), key=lambda x: -x['bytes'])
    return {
        'saved': saved,
        'savedBytes': sum(s['bytes'] for s in saved if not s['input']),
        'forwardPeakBytes': rec.peak,
        'forwardPeakOp': getattr(rec, 'peak_op', None),
        'forwardPeak': peak,
        'forwardEndBytes': rec.now,
    }


def name_unnamed(result, case, rules):
    """Names what the recreation could not name at creation (tensors made inside an op): the first
    rule (saver, element count, name) that fits; else the gating's small bookkeeping ([T]/[T,E])."""
    T, E = case['tokens'], case['experts']
    for s in result['saved']:
        if s['name'] is not None:
            continue
        savers = [x for v in s['views'] for x in v['savers']]
        elements = s['bytes'] // {'f32': 4, 'bf16': 2, 'i64': 8, 'i32': 4, 'bool': 1}.get(s['views'][0]['dtype'], 1)
        for saver, count, name in rules:
            if saver in savers and elements == count:
                s['name'] = name
                break
        else:
            if elements <= T * E:
                s['name'] = 'gating bookkeeping'
    return result


def upstream_commit(mirror):
    try:
        return subprocess.check_output(['git', '-C', mirror, 'rev-parse', 'HEAD'], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write(strategy, upstream, cases):
    out = {
        'strategy': strategy,
        'upstream': upstream,
        'torch': torch.__version__,
        'how': 'tools/fidelity/README.md',
        'cases': cases,
    }
    path = os.path.join(os.path.dirname(__file__), '..', '..', 'fidelity', f'{strategy}.json')
    with open(path, 'w') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print(f'wrote {os.path.normpath(path)}')
