import { dgParts } from '../zero-buffer/expert-gemm.js';
import type { BufferTable } from '../strategy/buffer-table.js';
import type { LayerConfig } from '../config.js';
import { floatBytes } from '../f16.js';
import type { PlanDType } from './memory.js';
import type { ExpectedRouting } from './routing.js';

/**
 * An estimate of the bytes each kernel of a step moves: the compulsory traffic of its main
 * tensors (every input read once, every output written once; tile re-reads, caches and the
 * small index arrays of offsets are ignored, so real kernels move more). Kept per strategy from
 * its kernels' structure; a strategy without an entry here gets a table-derived fallback
 * (each buffer written once and read once, weights read twice). Router state (probabilities,
 * gates, dg) is f32 at every dtype, like the tables declare it; everything else moves at the dtype.
 */
export interface KernelTraffic {
  pass: 'forward' | 'backward';
  phase: string;
  kernel: string;
  read: number;
  written: number;
}

export interface StrategyTraffic {
  basis: 'kernel model' | 'buffer table (fallback)';
  kernels: KernelTraffic[];
  forward: number;
  backward: number;
  total: number;
}

interface Dims {
  T: number;
  d: number;
  h: number;
  E: number;
  k: number;
  R: number;
  /** Bytes of a float element at the dtype, of an index, of router state (always f32). */
  f: number;
  i: number;
  g: number;
  /** Up-projection matrices (W1, W3) and the hidden tensors they produce (a, b). */
  up: number;
  /** One expert matrix for all experts, E·d·h·f. */
  W: number;
  kept: number;
  checkpoint: LayerConfig['checkpoint'];
}

type Add = (pass: KernelTraffic['pass'], phase: string, kernel: string, read: number, written: number) => void;

function routerForward(x: Dims, add: Add): void {
  add('forward', 'router', 'router logits, softmax, top-k', x.T * x.d * x.f + x.d * x.E * x.f, x.T * x.E * x.g + x.T * x.k * (x.i + x.g));
}

function routerBackward(x: Dims, add: Add): void {
  add('backward', 'router-grad', 'router gradient (dz, dWr, dX)', x.T * x.E * x.g + x.R * (x.i + 2 * x.g) + x.T * x.d * x.f + x.d * x.E * x.f, x.d * x.E * x.f + x.T * x.d * x.f);
}

function zeroBuffer(x: Dims, add: Add): void {
  const { T, d, h, R, f, g, i, up, W, k } = x;
  const hidden = up * R * h * f;
  const keptU = x.checkpoint === 'none';
  const upProjection = (pass: KernelTraffic['pass'], phase: string) => add(pass, phase, 'up-projection (gather fused)', R * d * f + R * i + up * W, hidden + (keptU && pass === 'forward' ? R * h * f : 0));
  routerForward(x, add);
  add('forward', 'metadata', 'index lists (no atomics)', R * i, 2 * R * i);
  upProjection('forward', 'experts');
  // k slot passes, each reading W2 and accumulating into token rows.
  add('forward', 'experts', 'down-projection + combine, slot by slot (W2 read once a slot)', (keptU ? R * h * f : hidden) + k * W + R * g + (k - 1) * T * d * f, k * T * d * f);
  if (x.checkpoint === 'full') upProjection('backward', 'recompute');
  add('backward', 'expert-grads', 'dW2 (silu(a)·b recomputed)', (keptU ? R * h * f : hidden) + R * d * f + R * g, W);
  add('backward', 'expert-grads', 'hidden gradient (da, db in place, dg)', R * d * f + W + hidden, hidden + R * dgParts(h) * g);
  add('backward', 'expert-grads', 'dW1, dW3 (gather fused)', R * d * f + hidden, up * W);
  routerBackward(x, add);
  add('backward', 'input-grad', 'dX, slot by slot (W1, W3 read once a slot)', hidden + k * up * W + k * T * d * f, k * T * d * f);
}

/** The expert MLP over a dense [rows, ·] grid that Tutel, GShard and MegaBlocks share. */
function denseExperts(x: Dims, add: Add, rows: number, phases: { up: string; down: string; downGrad: string; actGrad: string; upGrad: string }): void {
  const { d, h, f, up, W } = x;
  const hidden = up * rows * h * f;
  add('forward', phases.up, 'up-projection + activation', rows * d * f + up * W, hidden + rows * h * f);
  add('forward', phases.down, 'down-projection', rows * h * f + W, rows * d * f);
  add('backward', phases.downGrad, 'dW2', rows * h * f + rows * d * f, W);
  add('backward', phases.downGrad, 'dU = dY·W2ᵀ', rows * d * f + W, rows * h * f);
  add('backward', phases.actGrad, 'activation gradient', rows * h * f + hidden, hidden);
  add('backward', phases.upGrad, 'dW1, dW3', rows * d * f + hidden, up * W);
  add('backward', phases.upGrad, 'd(dispatched) = da·W1ᵀ + db·W3ᵀ', hidden + up * W, rows * d * f);
}

function tutel(x: Dims, add: Add, C: number): void {
  const { T, d, E, R, f, g, i, kept } = x;
  const Q = E * C;
  routerForward(x, add);
  add('forward', 'metadata', 'locations (cumsum, slot 0 first)', R * i, 2 * R * i);
  add('forward', 'encode', 'zero-fill + scatter into [E,C,d]', kept * d * f, Q * d * f + kept * d * f);
  denseExperts(x, add, Q, { up: 'up', down: 'down', downGrad: 'down-grad', actGrad: 'act-grad', upGrad: 'up-grad' });
  add('forward', 'decode', 'gated gather into O', kept * d * f + R * g, T * d * f);
  add('backward', 'decode-grad', 'encode g·dO into dY, dg = ⟨dO, y⟩', 3 * kept * d * f, Q * d * f + kept * d * f + Q * g);
  routerBackward(x, add);
  add('backward', 'encode-grad', 'gather d(dispatched) into dX', kept * d * f + T * d * f, T * d * f);
}

function gshard(x: Dims, add: Add, C: number): void {
  const { T, d, E, R, f, g, i } = x;
  const Q = E * C;
  const mask = T * Math.ceil(Q / 4) * 4;
  const dense = T * Q * f;
  routerForward(x, add);
  add('forward', 'metadata', 'locations (cumsum, slot 0 first)', R * i, 2 * R * i);
  add('forward', 'masks', 'dispatch mask and combine weights [T,E,C]', R * (i + g), mask + dense);
  add('forward', 'dispatch', 'einsum sec,sm->ecm', mask + T * d * f, Q * d * f);
  denseExperts(x, add, Q, { up: 'up', down: 'down', downGrad: 'down-grad', actGrad: 'act-grad', upGrad: 'up-grad' });
  add('forward', 'combine', 'einsum sec,ecm->sm', dense + Q * d * f, T * d * f);
  add('backward', 'combine-grad', 'dY = combineᵀ·dO', dense + T * d * f, Q * d * f);
  add('backward', 'combine-grad', 'dcombine = dO·yᵀ, dg', T * d * f + Q * d * f + R * g, dense + R * g);
  routerBackward(x, add);
  add('backward', 'dispatch-grad', 'dX += maskᵀ·d(dispatched)', mask + Q * d * f + T * d * f, T * d * f);
}

function megablocks(x: Dims, add: Add, P: number): void {
  const { T, d, k, R, f, g, i } = x;
  const scatter = k > 1 ? T * k * d * f : 0;
  routerForward(x, add);
  add('forward', 'sort', 'radix sort, histogram, bins', R * i, 2 * R * i);
  add('forward', 'permute', 'gather X into padded bins', R * d * f, P * d * f);
  denseExperts(x, add, P, { up: 'experts', down: 'experts', downGrad: 'down-grad', actGrad: 'act-grad', upGrad: 'up-grad' });
  add('forward', 'scatter', 'gated scatter to [T,k,d], sum over k', R * d * f + R * g + scatter, scatter + T * d * f);
  add('backward', 'scatter-grad', 'gather g·dO into dY, dg = ⟨Y, dO⟩', 3 * R * d * f, P * d * f + R * g);
  routerBackward(x, add);
  add('backward', 'input-grad', 'scatter dX_perm to [T,k,d], sum over k', R * d * f + scatter + T * d * f, scatter + T * d * f);
}

/** ScatterMoE (docs/design.md#scattermoe): grouped GEMMs over sorted indices, autograd's tensors. */
function scatterMoE(x: Dims, add: Add): void {
  const { T, d, h, R, f, g, i, up, W } = x;
  const rows = (cols: number) => R * cols * f;
  routerForward(x, add);
  add('forward', 'sort', 'sort the flattened ids, sorted expert ids', 2 * R * i, 3 * R * i);
  // a (and b), then u (and silu(a), which autograd keeps for the product): 2·up [R,h] tensors.
  add('forward', 'up', 'scatter2scatter (X gathered) + activation', rows(d) + up * W + 2 * R * i, 2 * up * rows(h));
  add('forward', 'down', 'scatter2scatter (rows scattered)', rows(h) + W + 2 * R * i, rows(d));
  add('forward', 'combine', 'gates @ Y, batched', rows(d) + R * g, T * d * f);
  add('backward', 'down-grad', 'dg = Y·dO, g·dO grouped into Y', rows(d) + 2 * T * d * f + R * (i + g), R * g + rows(d));
  add('backward', 'down-grad', 'dW2 (groupXtY), dU = dY·W2ᵀ', 2 * rows(d) + rows(h) + W, W + rows(h));
  if (up === 2) {
    add('backward', 'mul-grad', 'product backward', 3 * rows(h), 2 * rows(h));
    add('backward', 'act-grad', 'silu backward', 2 * rows(h), rows(h));
    add('backward', 'cat-grad', 'chunk backward (cat)', 2 * rows(h), 2 * rows(h));
  } else {
    add('backward', 'act-grad', 'activation backward', 2 * rows(h), rows(h));
  }
  add('backward', 'up-grad', 'X grouped, dW1, dW3 (groupXtY)', T * d * f + R * i + rows(d) + up * rows(h), rows(d) + up * W);
  add('backward', 'up-grad', 'input-gradient rows, scattered', up * rows(h) + up * W + 2 * R * i, rows(d));
  routerBackward(x, add);
  add('backward', 'input-grad', 'sum over k into dX', rows(d) + T * d * f, T * d * f);
}

/** Fallback: each step buffer written in its first phase and read in its last; weights read twice. */
function fromTable(table: BufferTable, add: Add): void {
  const end = table.phases.indexOf(table.forwardEnd);
  const pass = (phase: string): KernelTraffic['pass'] => (table.phases.indexOf(phase) <= end ? 'forward' : 'backward');
  for (const s of table.step) {
    const bytes = s.bytes;
    add(pass(s.from), s.from, `write ${s.name}`, 0, bytes);
    add(pass(s.to), s.to, `read ${s.name}`, bytes, 0);
  }
  const weights = table.persistent.filter((s) => s.tag === 'weights').reduce((a, s) => a + s.bytes, 0);
  const grads = table.persistent.filter((s) => s.tag === 'gradients').reduce((a, s) => a + s.bytes, 0);
  add('forward', table.phases[0], 'read weights', weights, 0);
  add('backward', table.phases[end + 1] ?? table.forwardEnd, 'read weights, write gradients', weights, grads);
}

export function strategyTraffic(id: string, c: LayerConfig, dtype: PlanDType, routing: ExpectedRouting, table: BufferTable): StrategyTraffic {
  const swiglu = c.activation === 'swiglu';
  const f = floatBytes(dtype);
  const R = c.tokens * c.topK;
  const x: Dims = {
    T: c.tokens, d: c.hidden, h: c.ffn, E: c.experts, k: c.topK, R, f, i: 4, g: 4,
    up: swiglu ? 2 : 1,
    W: c.experts * c.hidden * c.ffn * f,
    kept: R - routing.droppedPairs,
    checkpoint: c.checkpoint,
  };
  const kernels: KernelTraffic[] = [];
  const add: Add = (pass, phase, kernel, read, written) => kernels.push({ pass, phase, kernel, read: Math.round(read), written: Math.round(written) });
  let basis: StrategyTraffic['basis'] = 'kernel model';
  const C = routing.capacity ?? 0;
  if (id === 'zero-buffer') zeroBuffer(x, add);
  else if (id === 'tutel') tutel(x, add, C);
  else if (id === 'gshard') gshard(x, add, C);
  else if (id === 'megablocks') megablocks(x, add, routing.paddedRows);
  else if (id === 'megablocks-grouped') megablocks(x, add, R);
  else if (id === 'scattermoe') scatterMoE(x, add);
  else {
    basis = 'buffer table (fallback)';
    fromTable(table, add);
  }
  const sum = (p: KernelTraffic['pass']) => kernels.filter((kt) => kt.pass === p).reduce((a, kt) => a + kt.read + kt.written, 0);
  const forward = sum('forward');
  const backward = sum('backward');
  return { basis, kernels, forward, backward, total: forward + backward };
}
