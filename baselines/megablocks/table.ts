import { sortEndBit, sortPlan } from './sort.js';
import { spec, type BufferSpec, type BufferTable } from '../../src/strategy/buffer-table.js';
import type { LayerConfig } from '../../src/config.js';
import { floatBytes } from '../../src/f16.js';
import { chunkLayout, type ChunkLayout } from '../../src/gpu/tensor.js';
import { persistentSpecs, type RoutingSummary, type TableLimits } from '../../src/strategy/contract.js';

/**
 * MegaBlocks dMoE's memory, phase by phase (docs/design.md#memory). Buffers are allocated when their
 * first phase begins and freed when their last phase ends; the runner follows this table.
 *
 * Forward, as dMoE's autograd graph keeps things: the router's probs, top-k ids and gates;
 * the sort's outputs (indices, bin_ids, bins, padded_bins: saved by padded_gather and
 * padded_scatter); X_perm (saved by the first sdd), a (saved by the activation), silu(a) and b
 * (saved by the product `act(x1) * x2`, glu.py SparseGLU.forward and GroupedGLU.forward), u
 * (saved by dsd), Y (saved by padded_scatter for the gates' gradient); the [T,k,d] scatter
 * result that is summed over k into O. fidelity/megablocks*.json records what upstream's autograd
 * saves (tools/fidelity/megablocks.py) and test/baselines/fidelity.test.ts holds this table to it.
 * Simplifications, all small against these: stk's block-sparse topology
 * ((P/128)·(h/128) block indices) is replaced by per-bin tile offsets [E+1]; CUB's sort
 * workspace is this sort's own (two [R] ping-pong buffers when it needs two passes).
 *
 * Backward, in autograd order: dY = g·dO gathered into the padded rows and dg = ⟨Y, dO⟩
 * (padded_scatter's backward; Y is freed after it); dW2 and dU = dY·W2ᵀ (u, dY freed);
 * da, db (a, b, silu(a), dU freed: autograd's mul and silu nodes, run here as one kernel that
 * recomputes silu(a) from a); dW1, dW3 and dX_perm [P,d] (X_perm, da, db freed); the router;
 * then padded_gather's backward: dX_perm scattered to a [T,k,d] transient and summed into dX.
 *
 * dtype: every activation and gradient tensor above is in the input dtype, as MegaBlocks keeps
 * it (f16 in, f16 out); the router state (probs, gates, dz), the dg sums and the sort's integers
 * are f32/u32 at any dtype.
 */
export const BLOCKING = 128;

export const PHASES = ['router', 'sort', 'permute', 'experts', 'scatter', 'scatter-grad', 'down-grad', 'act-grad', 'up-grad', 'router-grad', 'input-grad'];
export const FORWARD_END = 'scatter';
const LAST = 'input-grad';

export type MegaBlocksMode = 'sparse' | 'grouped';

/** Σ_e ⌈n_e/128⌉·128: the rows of the padded buffers for the realised expert loads. */
export function paddedRows(loads: readonly number[]): number {
  return loads.reduce((sum, n) => sum + Math.ceil(n / BLOCKING) * BLOCKING, 0);
}

/**
 * Rows of the permuted buffers. Sparse: the padded total of the realised loads; without loads
 * (planning), its upper bound R + 127·min(E, R), rounded down to whole blocks. Grouped: R.
 */
export function permutedRows(c: LayerConfig, mode: MegaBlocksMode, loads: readonly number[] | null): number {
  const R = c.tokens * c.topK;
  if (mode === 'grouped') return R;
  if (loads && loads.length === c.experts) return paddedRows(loads);
  // Σ⌈n_e/128⌉ ≤ Σ(n_e + 127)/128 over the at most min(E, R) non-empty bins, and it is an integer.
  return Math.floor((R + (BLOCKING - 1) * Math.min(c.experts, R)) / BLOCKING) * BLOCKING;
}

/** Layouts of a [rows, cols] tensor split at given row boundaries (shared by all [P,·] buffers). */
function rowsLayout(rows: number, cols: number, elementBytes: number, rowsPerChunk: number): ChunkLayout {
  return { rows, cols, elementBytes, rowsPerChunk, chunkCount: Math.max(1, Math.ceil(rows / rowsPerChunk)) };
}

export function megablocksLayouts(c: LayerConfig, rows: number, chunkBytes: number) {
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
  const R = T * k;
  const f = floatBytes(c.dtype);
  const whole = (n: number, cols: number, bytes = 4) => chunkLayout(n, cols, bytes, Infinity);
  // One set of row boundaries for [P,d] and [P,h], so a GEMM's input and output chunks align.
  const rowsPerChunk = Math.min(chunkLayout(rows, d, f, chunkBytes).rowsPerChunk, chunkLayout(rows, h, f, chunkBytes).rowsPerChunk);
  const plan = sortPlan(R, sortEndBit(E));
  return {
    R,
    rows,
    sort: plan,
    probs: whole(T, E),
    pairs: whole(T, k),
    perPair: whole(R, 1),
    bins: whole(E + 1, 1),
    hist: whole(plan.histEntries, 1),
    permutedD: rowsLayout(rows, d, f, rowsPerChunk),
    permutedH: rowsLayout(rows, h, f, rowsPerChunk),
    // Whole tokens per chunk, so the sum over k never straddles two chunks.
    pairRowsD: chunkLayout(R, d, f, chunkBytes, k),
    tokenRows: whole(T, d, f),
  };
}

export function megablocksTable(c: LayerConfig, mode: MegaBlocksMode, routing: RoutingSummary | null, limits: TableLimits): BufferTable {
  return tableForRows(c, mode, permutedRows(c, mode, routing?.expertLoads ?? null), limits);
}

/** The table once the permuted row count P is known (the runner learns it mid-step, from the bins). */
export function tableForRows(c: LayerConfig, mode: MegaBlocksMode, P: number, limits: TableLimits): BufferTable {
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
  const L = megablocksLayouts(c, P, limits.chunkBytes);
  const R = L.R;
  const step: BufferSpec[] = [];
  const add = (name: string, tag: BufferSpec['tag'], layout: ChunkLayout, shape: number[], dtype: BufferSpec['dtype'], from: string, to: string) =>
    step.push(spec(name, tag, layout, shape, dtype, from, to));
  const swiglu = c.activation === 'swiglu';
  const f = c.dtype;
  add('routerProbs', 'activations-saved', L.probs, [T, E], 'f32', 'router', 'router-grad');
  // The router's output, each token's k expert ids (upstream's top_experts): tokenExperts in every strategy.
  add('tokenExperts', 'routing-metadata', L.pairs, [T, k], 'u32', 'router', 'router-grad');
  add('gates', 'routing-metadata', L.pairs, [T, k], 'f32', 'router', 'router-grad');
  if (L.sort.needsTemp) {
    add('sortTempKeys', 'workspace', L.perPair, [R], 'u32', 'sort', 'sort');
    add('sortTempValues', 'workspace', L.perPair, [R], 'u32', 'sort', 'sort');
  }
  add('sortHist', 'workspace', L.hist, [L.sort.histEntries], 'u32', 'sort', 'sort');
  add('binIds', 'routing-metadata', L.perPair, [R], 'u32', 'sort', LAST);
  add('indices', 'routing-metadata', L.perPair, [R], 'u32', 'sort', LAST);
  add('bins', 'routing-metadata', L.bins, [E + 1], 'u32', 'sort', LAST);
  if (mode === 'sparse') {
    add('paddedBins', 'routing-metadata', L.bins, [E + 1], 'u32', 'sort', LAST);
    add('tileOffsets', 'routing-metadata', L.bins, [E + 1], 'u32', 'sort', 'up-grad');
  } else {
    add('tileOffsets', 'routing-metadata', L.bins, [E + 1], 'u32', 'experts', 'up-grad');
  }
  add('Xperm', 'activations-saved', L.permutedD, [P, d], f, 'permute', 'up-grad');
  add('a', 'activations-saved', L.permutedH, [P, h], f, 'experts', 'act-grad');
  if (swiglu) add('b', 'activations-saved', L.permutedH, [P, h], f, 'experts', 'act-grad');
  // silu(a): torch's mul saves both its factors, silu(a) and b (fidelity/megablocks.json).
  if (swiglu) add('siluA', 'activations-saved', L.permutedH, [P, h], f, 'experts', 'act-grad');
  add('u', 'activations-saved', L.permutedH, [P, h], f, 'experts', 'down-grad');
  add('Y', 'activations-saved', L.permutedD, [P, d], f, 'experts', 'scatter-grad');
  if (k > 1) add('scattered', 'workspace', L.pairRowsD, [T, k, d], f, 'scatter', 'scatter');
  add('O', 'output', L.tokenRows, [T, d], f, 'scatter', LAST);
  add('dY', 'workspace', L.permutedD, [P, d], f, 'scatter-grad', 'down-grad');
  add('dg', 'workspace', L.perPair, [R], 'f32', 'scatter-grad', 'router-grad');
  add('pairRows', 'workspace', L.perPair, [R], 'u32', 'scatter-grad', 'router-grad');
  add('dU', 'workspace', L.permutedH, [P, h], f, 'down-grad', 'act-grad');
  add('dA', 'workspace', L.permutedH, [P, h], f, 'act-grad', 'up-grad');
  if (swiglu) add('dB', 'workspace', L.permutedH, [P, h], f, 'act-grad', 'up-grad');
  add('dXperm', 'workspace', L.permutedD, [P, d], f, 'up-grad', LAST);
  add('routerGrad', 'workspace', L.probs, [T, E], 'f32', 'router-grad', 'router-grad');
  add('dX', 'output', L.tokenRows, [T, d], f, 'router-grad', LAST);
  if (k > 1) add('scatteredGrad', 'workspace', L.pairRowsD, [T, k, d], f, LAST, LAST);
  return { phases: PHASES, forwardEnd: FORWARD_END, persistent: persistentSpecs(c, limits), step };
}
