import type { Activation, DType } from '../../src/config.js';
import { ACTIVATION_WGSL, activationGrad, plainActivation } from '../../kernels/activation.js';
import { gemmSource, type GemmBinding } from '../../kernels/gemm/core.js';
import { DEFAULT_TILE, type TileShape } from '../../kernels/gemm/spec.js';
import { reduceStore, SEGMENT_TILE, type ReduceMode } from '../../kernels/gemm/tiling.js';
import { perDtype, type KernelSource } from '../../kernels/program.js';
import { plainLoads } from '../../kernels/gemm/plain-loads.js';
import { inputGradLoads } from '../../kernels/gemm/segment-vectors.js';

/**
 * GEMMs of the capacity strategies, all instances of the shared core.
 *
 * Expert MLP over the padded [E, C, ·] grid: expert e owns the C rows [e·C, (e+1)·C), padding
 * slots included (that is the capacity design's cost). A dispatch sees one row chunk
 * [rowBegin, rowEnd) of every [E·C, ·] tensor (they share one chunking) and one weight chunk
 * (experts from expertBase); wg.z walks the experts present in both, from expertFirst.
 *
 * GShard's einsums: plain range GEMMs over [mBegin, mEnd) × [nBegin, nEnd) with K in
 * [kBegin, kEnd); every chunked operand's chunk starts at the range's beginning, so the range
 * bounds double as chunk bases. `accumulate` adds onto C (later K chunks).
 *
 * Every float operand (X, dO, weights, the [E,C,·] tensors, combine weights, O, dX, gradients) is
 * stored at the layer's dtype, bound as `dt`; tiles and accumulators are f32. Sums across K chunks
 * go through storage, so at f16 they are rounded once per chunk.
 */
/**
 * The expert GEMMs' tile: on the matrix engine every strategy's (SEGMENT_TILE.matrix, 128×128);
 * SIMT keeps 64×64, what these kernels always had: MegaBlocks' SIMT tiles (64×128 rows, 128×128
 * reductions) made Tutel and GShard 24–43% slower against zero-buffer in the lavapipe gate's
 * quick shapes, and their effect at full size on a GPU's SIMT path is not measured.
 */
const CAPACITY_TILE: TileShape = { ...DEFAULT_TILE, matrix: SEGMENT_TILE.matrix, class: 'segment' };

export const EXPERT_PARAMS = [
  { name: 'M', type: 'u32' },
  { name: 'N', type: 'u32' },
  { name: 'K', type: 'u32' },
  { name: 'C', type: 'u32' },
  { name: 'rowBegin', type: 'u32' },
  { name: 'rowEnd', type: 'u32' },
  { name: 'expertFirst', type: 'u32' },
  { name: 'expertBase', type: 'u32' },
  { name: 'd', type: 'u32' },
  { name: 'h', type: 'u32' },
] as const;

/** Output rows of expert e (one tile of them per wg.x), clipped to the row chunk. */
const EXPERT_ROWS_TILING = `
fn tileOf(wg: vec3u) -> Tile {
  var t: Tile;
  let e = P.expertFirst + wg.z;
  t.seg = e;
  let segEnd = min((e + 1u) * P.C, P.rowEnd);
  t.m0 = max(e * P.C, P.rowBegin) + wg.x * TM;
  t.mEnd = min(t.m0 + TM, segEnd);
  t.n0 = wg.y * TN;
  t.nEnd = min(t.n0 + TN, P.N);
  t.kBegin = 0u;
  t.kEnd = P.K;
  t.valid = t.m0 < t.mEnd && t.n0 < t.nEnd;
  return t;
}`;

/** Weight-gradient tiles of expert e: the reduction runs over its rows within the row chunk. */
const EXPERT_REDUCE_TILING = `
fn tileOf(wg: vec3u) -> Tile {
  var t: Tile;
  let e = P.expertFirst + wg.z;
  t.seg = e;
  t.m0 = wg.x * TM;
  t.mEnd = min(t.m0 + TM, P.M);
  t.n0 = wg.y * TN;
  t.nEnd = min(t.n0 + TN, P.N);
  t.kBegin = max(e * P.C, P.rowBegin);
  t.kEnd = min((e + 1u) * P.C, P.rowEnd);
  t.valid = t.m0 < t.mEnd && t.n0 < t.nEnd && t.kBegin < t.kEnd;
  return t;
}`;

const read = (name: string, type: GemmBinding['type'] = 'dt'): GemmBinding => ({ name, type, access: 'read' });
const write = (name: string): GemmBinding => ({ name, type: 'dt', access: 'read_write' });
/** An operand the matrix engine's vector hooks read 8 halves at a time (kernels/gemm/plain-loads.ts). */
const operand = (name: string): GemmBinding => ({ ...read(name), vector: true });
/** target[i] += c through storage: widened, summed in f32, narrowed back. */
const addTo = (target: string, i: string, c = 'c') => `${target}[${i}] = dt(f32(${target}[${i}]) + ${c});`;
/** Row r of a chunked [E·C, ·] tensor, relative to its chunk. */
const LOCAL = (r: string) => `(${r} - P.rowBegin)`;
/** Offset of expert t.seg's matrix in its weight chunk. */
const WEIGHT = '(t.seg - P.expertBase) * P.d * P.h';

/**
 * a = x·W1_e, b = x·W3_e, silu(a) and u = act(a)(·b) for every capacity slot, all kept (autograd
 * saves them: silu's input, mul's two factors, the last matmul's input), each computed from the
 * stored values of the one before, as torch's ops are.
 */
export function capacityUp(activation: Activation, dtype: DType): KernelSource {
  const swiglu = activation === 'swiglu';
  const u = swiglu ? 'f32(s) * f32(dt(c2))' : `${plainActivation(activation as Exclude<Activation, 'swiglu'>).fn}(f32(dt(c)))`;
  const loads = plainLoads({ A: ['dispatched', `${LOCAL('m')} * P.d + k`], B: ['W1', `${WEIGHT} + k * P.h + n`], ...(swiglu && { B2: ['W3', `${WEIGHT} + k * P.h + n`] as const }) });
  return gemmSource({
    dtype,
    name: `capacity-up-${activation}`,
    dual: swiglu,
    tile: CAPACITY_TILE,
    aContiguous: 'k',
    bContiguous: 'n',
    bindings: [operand('dispatched'), operand('W1'), ...(swiglu ? [operand('W3')] : []), write('A'), ...(swiglu ? [write('B'), write('S')] : []), write('U')],
    params: EXPERT_PARAMS,
    vectorLoads: loads.vectorLoads,
    functions: `${ACTIVATION_WGSL}
${EXPERT_ROWS_TILING}
${loads.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32${swiglu ? ', c2: f32' : ''}) {
  let l = ${LOCAL('m')} * P.h + n;
  A[l] = dt(c);
  ${swiglu ? 'B[l] = dt(c2); let s = dt(silu(f32(dt(c)))); S[l] = s;' : ''}
  U[l] = dt(${u});
}`,
  });
}

/** y = u·W2_e, the expert output of every capacity slot. */
const DOWN_LOADS = plainLoads({ A: ['U', `${LOCAL('m')} * P.h + k`], B: ['W2', `${WEIGHT} + k * P.d + n`] });
export const capacityDown = perDtype((dtype) => gemmSource({
  dtype,
  name: 'capacity-down',
  tile: CAPACITY_TILE,
    aContiguous: 'k',
  bContiguous: 'n',
  bindings: [operand('U'), operand('W2'), write('Y')],
  params: EXPERT_PARAMS,
  vectorLoads: DOWN_LOADS.vectorLoads,
  functions: `${EXPERT_ROWS_TILING}
${DOWN_LOADS.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32) { Y[${LOCAL('m')} * P.d + n] = dt(c); }`,
}));

/** dW2_e (+)= uᵀ·dy over the expert's slots in this row chunk (dy already carries the gate). */
const DW2_LOADS = plainLoads({ A: ['U', `${LOCAL('k')} * P.h + m`], B: ['dY', `${LOCAL('k')} * P.d + n`] });
const weightGradW2 = (dtype: DType, mode: ReduceMode) => gemmSource({
  dtype,
  name: 'capacity-dW2',
  tile: CAPACITY_TILE,
    aContiguous: 'm',
  bContiguous: 'n',
  bindings: [operand('U'), operand('dY'), write('dW2')],
  params: EXPERT_PARAMS,
  vectorLoads: DW2_LOADS.vectorLoads,
  functions: `${EXPERT_REDUCE_TILING}
${DW2_LOADS.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32) { let w = ${WEIGHT} + m * P.d + n; ${reduceStore('dW2', 'w', 'c', mode)} }`,
});

/** dU = dy·W2_eᵀ. */
const DU_LOADS = plainLoads({ A: ['dY', `${LOCAL('m')} * P.d + k`], B: ['W2', `${WEIGHT} + n * P.d + k`] });
export const capacityHiddenGrad = perDtype((dtype) => gemmSource({
  dtype,
  name: 'capacity-dU',
  tile: CAPACITY_TILE,
    aContiguous: 'k',
  bContiguous: 'k',
  bindings: [operand('dY'), operand('W2'), write('dU')],
  params: EXPERT_PARAMS,
  vectorLoads: DU_LOADS.vectorLoads,
  functions: `${EXPERT_ROWS_TILING}
${DU_LOADS.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32) { dU[${LOCAL('m')} * P.h + n] = dt(c); }`,
}));

/** dW1_e (+)= xᵀ·da and dW3_e (+)= xᵀ·db over the expert's slots, x being the dispatched input. */
function weightGradW13(activation: Activation, dtype: DType, mode: ReduceMode): KernelSource {
  const swiglu = activation === 'swiglu';
  const loads = plainLoads({ A: ['dispatched', `${LOCAL('k')} * P.d + m`], B: ['dA', `${LOCAL('k')} * P.h + n`], ...(swiglu && { B2: ['dB', `${LOCAL('k')} * P.h + n`] as const }) });
  return gemmSource({
    dtype,
    name: `capacity-dW13-${swiglu ? 'swiglu' : 'plain'}`,
    dual: swiglu,
    tile: CAPACITY_TILE,
    aContiguous: 'm',
    bContiguous: 'n',
    bindings: [operand('dispatched'), operand('dA'), ...(swiglu ? [operand('dB')] : []), write('dW1'), ...(swiglu ? [write('dW3')] : [])],
    params: EXPERT_PARAMS,
    vectorLoads: loads.vectorLoads,
    functions: `${EXPERT_REDUCE_TILING}
${loads.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32${swiglu ? ', c2: f32' : ''}) {
  let w = ${WEIGHT} + m * P.h + n;
  ${reduceStore('dW1', 'w', 'c', mode)}
  ${swiglu ? reduceStore('dW3', 'w', 'c2', mode) : ''}
}`,
  });
}

/**
 * The expert kernels of a capacity layer for its activation and storage dtype, built once per
 * runner. Weight gradients come in both reduction modes: an expert's first row chunk stores, later
 * ones add.
 */
export function capacityGemms(activation: Activation, dtype: DType) {
  return {
    up: capacityUp(activation, dtype),
    down: capacityDown(dtype),
    dW2: { store: weightGradW2(dtype, 'store'), add: weightGradW2(dtype, 'add') },
    dU: capacityHiddenGrad(dtype),
    actGrad: activationGrad(activation, dtype),
    dW13: { store: weightGradW13(activation, dtype, 'store'), add: weightGradW13(activation, dtype, 'add') },
    dDispatched: capacityDispatchedGrad(activation, dtype),
  };
}

/** Gradient of the dispatched input: da·W1_eᵀ (+ db·W3_eᵀ, as one K = 2h product). */
export function capacityDispatchedGrad(activation: Activation, dtype: DType): KernelSource {
  const swiglu = activation === 'swiglu';
  const loads = inputGradLoads(swiglu, (m) => `${LOCAL(m)} * P.h`);
  return gemmSource({
    dtype,
    name: `capacity-dDispatched-${swiglu ? 'swiglu' : 'plain'}`,
    tile: CAPACITY_TILE,
    aContiguous: 'k',
    bContiguous: 'k',
    bindings: [operand('dA'), ...(swiglu ? [operand('dB')] : []), operand('W1'), ...(swiglu ? [operand('W3')] : []), write('dDispatched')],
    params: EXPERT_PARAMS,
    vectorLoads: loads.vectorLoads,
    functions: `${EXPERT_ROWS_TILING}
${loads.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32) { dDispatched[${LOCAL('m')} * P.d + n] = dt(c); }`,
  });
}

export const RANGE_PARAMS = [
  { name: 'mBegin', type: 'u32' },
  { name: 'mEnd', type: 'u32' },
  { name: 'nBegin', type: 'u32' },
  { name: 'nEnd', type: 'u32' },
  { name: 'kBegin', type: 'u32' },
  { name: 'kEnd', type: 'u32' },
  { name: 'd', type: 'u32' },
  { name: 'slotCount', type: 'u32' },
  { name: 'accumulate', type: 'u32' },
] as const;

const RANGE_TILING = `
fn tileOf(wg: vec3u) -> Tile {
  var t: Tile;
  t.seg = 0u;
  t.m0 = P.mBegin + wg.x * TM;
  t.mEnd = min(t.m0 + TM, P.mEnd);
  t.n0 = P.nBegin + wg.y * TN;
  t.nEnd = min(t.n0 + TN, P.nEnd);
  t.kBegin = P.kBegin;
  t.kEnd = P.kEnd;
  t.valid = t.m0 < t.mEnd && t.n0 < t.nEnd;
  return t;
}`;

/** Slot q of token row t of a mask chunk (dispatch_mask.type_as(input): 0 or 1 at the layer's dtype). */
const MASK_AT = `
fn maskAt(row: u32, q: u32) -> f32 { return f32(mask[row * P.slotCount + q]); }`;

function store(target: string, index: string): string {
  return `fn storeC(t: Tile, m: u32, n: u32, c: f32) {
  let i = ${index};
  if (P.accumulate == 1u) { ${addTo(target, 'i')} } else { ${target}[i] = dt(c); }
}`;
}

/** One einsum, built once per storage dtype. */
function rangeGemm(name: string, aContiguous: 'k' | 'm', bContiguous: 'n' | 'k', bindings: GemmBinding[], functions: string): (dtype: DType) => KernelSource {
  return perDtype((dtype) => gemmSource({ dtype, name, aContiguous, bContiguous, bindings, params: RANGE_PARAMS, functions: `${RANGE_TILING}\n${functions}` }));
}

/** dispatched[q, :] (+)= Σ_t mask[t, q]·X[t, :]: M = slots of a dispatched chunk, K = tokens of a mask chunk. */
export const einsumDispatch = rangeGemm('gshard-dispatch', 'm', 'n', [read('mask'), read('X'), write('dispatched')], `${MASK_AT}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return maskAt(k - P.kBegin, m); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(X[k * P.d + n]); }
${store('dispatched', '(m - P.mBegin) * P.d + n')}`);

/** O[t, :] (+)= Σ_q combine[t, q]·y[q, :]: M = tokens of a combine chunk, K = slots of a y chunk. */
export const einsumCombine = rangeGemm('gshard-combine', 'k', 'n', [read('combine'), read('Y'), write('O')], `
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(combine[(m - P.mBegin) * P.slotCount + k]); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(Y[(k - P.kBegin) * P.d + n]); }
${store('O', 'm * P.d + n')}`);

/** dy[q, :] (+)= Σ_t combine[t, q]·dO[t, :]: the combine einsum's gradient with respect to y. */
export const einsumCombineGradY = rangeGemm('gshard-combine-dY', 'm', 'n', [read('combine'), read('dO'), write('dY')], `
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(combine[(k - P.kBegin) * P.slotCount + m]); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(dO[k * P.d + n]); }
${store('dY', '(m - P.mBegin) * P.d + n')}`);

/** dcombine[t, q] = ⟨dO_t, y_q⟩ for every (token, slot): the dense [T, E·C] gradient of the combine weights. */
export const einsumCombineGradWeights = rangeGemm('gshard-combine-dWeights', 'k', 'k', [read('dO'), read('Y'), write('dcombine')], `
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(dO[m * P.d + k]); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(Y[(n - P.nBegin) * P.d + k]); }
${store('dcombine', '(m - P.mBegin) * P.slotCount + n')}`);

/** dX[t, :] += Σ_q mask[t, q]·dDispatched[q, :]: the dispatch einsum's gradient, onto the router's share. */
export const einsumDispatchGradX = rangeGemm('gshard-dispatch-dX', 'k', 'n', [read('mask'), read('dDispatched'), write('dX')], `${MASK_AT}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return maskAt(m - P.mBegin, k); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(dDispatched[(k - P.kBegin) * P.d + n]); }
${store('dX', 'm * P.d + n')}`);
