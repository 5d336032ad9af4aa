import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { layerConfig, type DType, type LayerConfig } from '../../src/config.js';
import { summaryFromLoads } from '../../src/plan/routing.js';
import { findStrategy } from '../../src/registry.js';
import type { BufferSpec, BufferTable } from '../../src/strategy/buffer-table.js';

/**
 * Every baseline's buffer table against what its upstream's autograd saves (issue 30):
 * fidelity/<strategy>.json, written by tools/fidelity/*.py from saved_tensors_hooks on CPU torch
 * (README "Fidelity to upstream"). Tensor by tensor, element for element: each tensor upstream
 * saves maps to one table buffer with the same number of elements (or to a named reason it has
 * none), and each buffer the table keeps across the end of the forward pass is one upstream
 * keeps (or has a named reason). The differences allowed are named here, each with its reason.
 */
interface Saved {
  name: string | null;
  bytes: number;
  input: boolean;
  views: { shape: number[]; dtype: string; savers: string[] }[];
}
interface Case {
  config: { tokens: number; hidden: number; ffn: number; experts: number; topK: number; activation: LayerConfig['activation']; dtype: string };
  loads: number[] | null;
  capacity?: number;
  saved: Saved[];
  savedBytes: number;
}

/**
 * An upstream tensor's counterpart: a table buffer (with `extra` elements more), the same content
 * in another encoding (`encoding`: the buffer must be kept alike; its size is its own, as stated),
 * or a reason for none.
 */
type Counterpart = { buffer: string; extra?: (c: LayerConfig) => number; encoding?: { elements: (c: LayerConfig) => number; why: string } } | { none: string };

const LEADING_ZERO = { extra: () => 1 }; // offsets lists keep a leading 0 here: [E+1] for upstream's inclusive cumsum [E]
/** The name the scripts give the gating's [T]- and [T,E]-sized tensors (softmax output, one-hot masks, gates). */
const GATING = 'gating bookkeeping';
const ROUTER = 'the gating bookkeeping of the router, here the shared router (probabilities, ids, gates: docs/design.md#the-layer)';

const MEGABLOCKS: Record<string, Counterpart> = {
  'x (padded_gather)': { buffer: 'Xperm' },
  'x (gather)': { buffer: 'Xperm' },
  'x1 (sdd)': { buffer: 'a' },
  'x1 (gmm)': { buffer: 'a' },
  'x (sdd)': { buffer: 'a' },
  'x (gmm)': { buffer: 'a' },
  'x2 (sdd)': { buffer: 'b' },
  'x2 (gmm)': { buffer: 'b' },
  activation_fn_out: { buffer: 'siluA' }, // swiglu; the plain MLP's act output is u (below)
  'activation_fn(x1)': { buffer: 'siluA' },
  'activation_fn(x)': { buffer: 'u' },
  'x1 (mul)': { buffer: 'u' },
  'x (dsd)': { buffer: 'Y' },
  'x (gmm out)': { buffer: 'Y' },
  indices: { buffer: 'indices' },
  bin_ids: { buffer: 'binIds' },
  bins: { buffer: 'bins', ...LEADING_ZERO },
  padded_bins: { buffer: 'paddedBins', ...LEADING_ZERO },
  'batch_sizes (host)': { none: 'host memory upstream (tokens_per_expert.cpu()); here the tile offsets built from it are uploaded (tileOffsets)' },
  'topo.offsets': { none: "stk's block-sparse topology; here per-bin tile offsets (tileOffsets [E+1])" },
  'topo.offsets_t': { none: "stk's block-sparse topology; here per-bin tile offsets (tileOffsets [E+1])" },
  'topo.row_indices': { none: "stk's block-sparse topology; here per-bin tile offsets (tileOffsets [E+1])" },
  'topo.column_indices': { none: "stk's block-sparse topology; here per-bin tile offsets (tileOffsets [E+1])" },
  'topo.column_indices_t': { none: "stk's block-sparse topology; here per-bin tile offsets (tileOffsets [E+1])" },
  'topo.block_offsets_t': { none: "stk's block-sparse topology; here per-bin tile offsets (tileOffsets [E+1])" },
};

const COUNTERPARTS: Record<string, { saved: Record<string, Counterpart>; inputs: Record<string, string>; portOnly: Record<string, string> }> = {
  megablocks: {
    saved: MEGABLOCKS,
    inputs: { expert_weights: 'gates' },
    portOnly: { tileOffsets: "the GEMM tiles' row layout: stands for stk's topology (sparse) or the host's batch sizes (grouped)", routerProbs: ROUTER, tokenExperts: ROUTER },
  },
  'megablocks-grouped': {
    saved: MEGABLOCKS,
    inputs: { expert_weights: 'gates' },
    portOnly: { tileOffsets: "the GEMM tiles' row layout, uploaded from the host's batch sizes", routerProbs: ROUTER, tokenExperts: ROUTER },
  },
  scattermoe: {
    saved: {
      'h (experts)': { buffer: 'hidden' },
      'activation(gates)': { buffer: 'siluA' },
      'h (mul)': { buffer: 'u' },
      'h (activation)': { buffer: 'u' },
      output_expanded: { buffer: 'Y' },
      sorted_expert_idxs: { buffer: 'sortedExpertIdxs' },
      sorted_scattered_idxs: { buffer: 'sortedScatteredIdxs' },
      expert_offsets: { buffer: 'expertOffsets', ...LEADING_ZERO },
      // v0.2.0's block list: each expert's rows padded to whole 128-row blocks, one entry per block.
      padded_block_idxs: {
        buffer: 'tileOffsets',
        encoding: { elements: (c) => c.experts + 1, why: "the same expert-aligned blocks as each expert's first block [E+1] (64-row blocks; rows from expert_offsets), not each block's first row" },
      },
    },
    inputs: { expert_p: 'gates' },
    portOnly: { routerProbs: ROUTER, tokenExperts: ROUTER },
  },
  tutel: {
    saved: {
      dispatched_input: { buffer: 'dispatched' },
      y1: { buffer: 'a' },
      y2: { buffer: 'b' },
      'activation_fn(y1)': { buffer: 'siluA' },
      'y (mul)': { buffer: 'u' },
      'y (activation)': { buffer: 'u' },
      expert_output: { buffer: 'y' },
    },
    inputs: {},
    portOnly: { routerProbs: ROUTER, tokenExperts: ROUTER, gates: 'Tutel keeps the gates on ctx (GatingDecoder ctx.gates_h2), outside saved_tensors', slots: 'Tutel keeps indices_ and locations_ on its dispatcher, outside saved_tensors', expertOffsets: 'the expert loads of the load-balancing term (Tutel: the gating bookkeeping)' },
  },
  gshard: {
    saved: {
      dispatched_input: { buffer: 'dispatched' },
      a: { buffer: 'a' },
      b: { buffer: 'b' },
      'silu(a)': { buffer: 'siluA' },
      u: { buffer: 'u' },
      'combine einsum copy of expert_output': { buffer: 'y' },
      'dispatch_mask.type_as(input)': { buffer: 'dispatchMask' },
      'combine einsum copy of combine_weights': { buffer: 'combineWeights' },
      locations1_sc: { buffer: 'locations1Sc' },
      locations2_sc: { buffer: 'locations2Sc' },
      locations_sc: { buffer: 'locationsSc' },
      'input_fp32 (gate)': { none: "TopKGate's f32 copy of a 16-bit input, saved for the gate weight's gradient: the shared router reads X itself" },
    },
    inputs: {},
    portOnly: { routerProbs: ROUTER, tokenExperts: ROUTER, gates: ROUTER, slots: 'the pairs\' capacity slots, the routing metadata the kernels read (DeepSpeed reads them off the dense mask)', expertOffsets: 'the expert loads of the load-balancing term (DeepSpeed: exp_counts)' },
  },
};

const ELEMENT = { f32: 4, f16: 2, bf16: 2, i64: 8, i32: 4, i16: 2, u8: 1, bool: 1 } as Record<string, number>;
/** dtype pairs allowed between upstream and here, each with its reason. */
const SAME_WIDTH: Record<string, string> = {
  'i64>u32': 'index lists are u32 here (torch.sort and one_hot give int64)',
  'i32>u32': 'index lists are u32 here (MegaBlocks sorts int32)',
  'bf16>f16': 'the scripts run bf16 (CPU torch 1.13 has no f16 matmul); the table at f16 is the same width',
};

function savedBuffers(table: BufferTable): BufferSpec[] {
  const end = table.phases.indexOf(table.forwardEnd);
  return table.step.filter((s) => (s.tag === 'activations-saved' || s.tag === 'routing-metadata') && table.phases.indexOf(s.from) <= end && table.phases.indexOf(s.to) > end);
}

function tableFor(strategy: string, kase: Case): { config: LayerConfig; table: BufferTable } {
  const { dtype, ...shape } = kase.config;
  const config = layerConfig({ ...shape, dtype: dtype === 'f32' ? 'f32' : ('f16' as DType), capacityFactor: 1 });
  const s = findStrategy(strategy);
  const loads = kase.loads ?? new Array(config.experts).fill((config.tokens * config.topK) / config.experts);
  const table = s.bufferTable(config, summaryFromLoads(config, s.dropless, loads), { chunkBytes: 2 ** 30 });
  return { config, table };
}

describe('buffer tables against upstream autograd (fidelity/*.json)', () => {
  for (const strategy of Object.keys(COUNTERPARTS)) {
    const file = JSON.parse(readFileSync(new URL(`../../fidelity/${strategy}.json`, import.meta.url), 'utf8')) as { cases: Case[] };
    const map = COUNTERPARTS[strategy];
    for (const kase of file.cases) {
      const c = kase.config;
      it(`${strategy} T${c.tokens} d${c.hidden} h${c.ffn} E${c.experts} k${c.topK} ${c.activation} ${c.dtype}`, () => {
        const { config, table } = tableFor(strategy, kase);
        const saved = savedBuffers(table);
        const byName = new Map(table.step.map((b) => [b.name, b]));
        if (kase.capacity !== undefined) expect(byName.get('a')!.shape[1], 'capacity C').toBe(kase.capacity);
        // Upstream tensors, grouped by name (DeepSpeed's experts save one per expert).
        const groups = new Map<string, { elements: number; dtype: string }>();
        for (const s of kase.saved) {
          const name = s.input ? `input:${s.name}` : s.name;
          expect(name, `an unnamed tensor saved by ${s.views.map((v) => v.savers).join(', ')}`).not.toBeNull();
          if (name === GATING) {
            // Router state of the upstream gating: never more than a [T,E] tensor each.
            expect(s.bytes / ELEMENT[s.views[0].dtype]).toBeLessThanOrEqual(config.tokens * config.experts);
            continue;
          }
          const g = groups.get(name!) ?? { elements: 0, dtype: s.views[0].dtype };
          g.elements += s.bytes / ELEMENT[s.views[0].dtype];
          groups.set(name!, g);
        }
        const matched = new Set<string>();
        for (const [name, g] of groups) {
          if (name.startsWith('input:')) {
            const target = map.inputs[name.slice(6)];
            if (target) matched.add(target);
            continue; // the layer's own inputs and weights (persistent), or the router's outputs
          }
          const counterpart = map.saved[name];
          expect(counterpart, `upstream saves ${name} (${g.elements} ${g.dtype}): no counterpart named`).toBeDefined();
          if ('none' in counterpart!) continue;
          const buffer = byName.get(counterpart!.buffer);
          expect(buffer, `${name} → ${counterpart!.buffer}: not in the table`).toBeDefined();
          expect(saved.includes(buffer!), `${counterpart!.buffer} is kept across the forward pass's end`).toBe(true);
          const elements = buffer!.shape.reduce((a, b) => a * b, 1);
          const encoding = counterpart!.encoding;
          if (encoding) expect(elements, `${name} → ${counterpart!.buffer} (${encoding.why}): elements`).toBe(encoding.elements(config));
          else expect(elements, `${name} → ${counterpart!.buffer}: elements`).toBe(g.elements + (counterpart!.extra?.(config) ?? 0));
          const here = buffer!.dtype;
          if (g.dtype !== here) expect(SAME_WIDTH[`${g.dtype}>${here}`], `${name}: ${g.dtype} upstream, ${here} here`).toBeDefined();
          matched.add(buffer!.name);
        }
        for (const b of saved) {
          if (matched.has(b.name)) continue;
          expect(map.portOnly[b.name], `the table keeps ${b.name} across the forward pass; upstream does not`).toBeDefined();
        }
      });
    }
  }
});
