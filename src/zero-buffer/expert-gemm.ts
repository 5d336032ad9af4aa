import type { Activation, DType } from '../config.js';
import { ACTIVATION_WGSL, plainActivation } from '../../kernels/activation.js';
import { gemmSource, type GemmBinding } from '../../kernels/gemm/core.js';
import { REDUCE_TILE, reduceStore, SEGMENT_REDUCE_PARAMS, SEGMENT_TILE, TRANSPOSED_SEGMENT_TILE, type ReduceMode, SEGMENT_ROWS_PARAMS, segmentReduceTiling, segmentRowsTiling } from '../../kernels/gemm/tiling.js';
import type { KernelSource } from '../../kernels/program.js';
import { ACT, inputGradLoads } from '../../kernels/gemm/segment-vectors.js';
import { combineVectors, dW13Vectors, dW2Vectors, hiddenGradVectors, upVectors } from './vector-hooks.js';

/**
 * (Over 300 lines on purpose: the six GEMMs share their gather hooks and row-target stores, and
 * reading them side by side is how one checks that forward and backward gather alike.)
 *
 * The zero-buffer expert GEMMs: the shared core with loads that gather through the index lists
 * (no permuted copy of X or dO), u recomputed from a and b on load, and stores that either
 * write [R,h] rows or add gate-weighted results straight into token rows of O and dX.
 *
 * Every kernel sees one weight chunk (experts [expertBase, …)) and one activation chunk
 * (rows [rowChunkBase, …)); the host dispatches each pair. Extra params beyond the tiling's:
 * d, h, k, expertBase, rowChunkBase (and slot for the slot-by-slot passes).
 *
 * X, dO, the weights, a/b/u, O, dX and the weight gradients are stored at the layer's dtype
 * (bindings of type 'dt'); gates and dg partial sums stay f32. Sums across slot passes and
 * activation chunks go through storage, so at f16 they are rounded once per pass or chunk.
 */

export const SHAPE_PARAMS = [
  { name: 'd', type: 'u32' },
  { name: 'h', type: 'u32' },
  { name: 'k', type: 'u32' },
  { name: 'expertBase', type: 'u32' },
  { name: 'rowChunkBase', type: 'u32' },
  { name: 'slot', type: 'u32' },
] as const;

export const read = (name: string, type: GemmBinding['type'] = 'dt'): GemmBinding => ({ name, type, access: 'read' });
/** An operand the matrix engine's vector hooks read 8 halves at a time (vector-hooks.ts). */
const operand = (name: string): GemmBinding => ({ name, type: 'dt', access: 'read', vector: true });
export const write = (name: string, type: GemmBinding['type'] = 'dt'): GemmBinding => ({ name, type, access: 'read_write' });

export { ACT };

/** u(r, j), the expert's hidden activation, from what the checkpoint policy kept. */
export function hiddenLoad(activation: Activation, keptU: boolean): string {
  if (keptU) return 'f32(U[l])';
  if (activation === 'swiglu') return 'silu(f32(Ab[l])) * f32(Bb[l])';
  return `${plainActivation(activation).fn}(f32(Ab[l]))`;
}

export function hiddenBindings(activation: Activation, keptU: boolean): GemmBinding[] {
  if (keptU) return [operand('U')];
  return activation === 'swiglu' ? [operand('Ab'), operand('Bb')] : [operand('Ab')];
}

export interface ExpertKernelOptions {
  activation: Activation;
  /** checkpoint 'none': u was stored in the forward pass. */
  keptU: boolean;
  dtype: DType;
}

/** a = X·W1_e and b = X·W3_e for every routed row (X rows gathered on load). */
export function upProjection(o: ExpertKernelOptions): KernelSource {
  const swiglu = o.activation === 'swiglu';
  const uStore = o.keptU ? `U[l] = dt(${swiglu ? 'silu(c) * c2' : `${plainActivation(o.activation as Exclude<Activation, 'swiglu'>).fn}(c)`});` : '';
  return gemmSource({
    dtype: o.dtype,
    name: `expert-up-${o.activation}${o.keptU ? '-keep-u' : ''}`,
    tile: SEGMENT_TILE,
    dual: swiglu,
    aContiguous: 'k',
    bContiguous: 'n',
    vectorLoads: upVectors(swiglu),
    bindings: [
      operand('X'),
      read('rowTokens', 'u32'),
      read('expertOffsets', 'u32'),
      read('expertTileOffsets', 'u32'),
      operand('W1'),
      ...(swiglu ? [operand('W3')] : []),
      write('Ab'),
      ...(swiglu ? [write('Bb')] : []),
      ...(o.keptU ? [write('U')] : []),
    ],
    params: [...SEGMENT_ROWS_PARAMS, ...SHAPE_PARAMS],
    functions: `${ACTIVATION_WGSL}
${segmentRowsTiling('expertOffsets', 'expertTileOffsets')}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(X[rowTokens[m] * P.d + k]); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(W1[(t.seg - P.expertBase) * P.d * P.h + k * P.h + n]); }
${swiglu ? 'fn loadB2(t: Tile, k: u32, n: u32) -> f32 { return f32(W3[(t.seg - P.expertBase) * P.d * P.h + k * P.h + n]); }' : ''}
fn storeC(t: Tile, m: u32, n: u32, c: f32${swiglu ? ', c2: f32' : ''}) {
  let l = ${ACT('m')} + n;
  Ab[l] = dt(c);
  ${swiglu ? 'Bb[l] = dt(c2);' : ''}
  ${uStore}
}`,
  });
}

/**
 * Where the combine and dX GEMMs put their rows. 'tokens': slot pass s adds each row straight
 * into its token's row of O or dX (one row per token per pass, so no write conflicts).
 * 'rows': expert-major tiles over the full expert segments write a bounded block of rows
 * [rowBegin, rowEnd) to a scratch buffer that src/zero-buffer/row-reduce.ts then sums into token rows;
 * with few rows per (expert, slot) this keeps tiles full and reads each weight once.
 */
export type RowTarget = 'tokens' | 'rows';

function rowTargetParts(into: RowTarget, out: string) {
  return into === 'tokens'
    ? { suffix: '', tiling: segmentRowsTiling('expertSlotOffsets', 'slotTileOffsets'), offsets: [read('expertSlotOffsets', 'u32'), read('slotTileOffsets', 'u32')], out: write(out) }
    : {
        suffix: '-rows',
        tiling: segmentRowsTiling('expertOffsets', 'expertTileOffsets'),
        offsets: [read('expertOffsets', 'u32'), read('expertTileOffsets', 'u32')],
        out: write('rowsOut'),
      };
}

/** The combine: O[token] (+)= g·(u·W2_e) slot by slot, or g·(u·W2_e) into scratch rows. */
export function downCombine(o: ExpertKernelOptions, into: RowTarget = 'tokens'): KernelSource {
  const target = rowTargetParts(into, 'O');
  // Once per row in the epilogue: a gate lookup per element (storeC) cost 5× on the H200.
  const rowsEpilogue = `
  for (var i = 0u; i < RM; i++) {
    let m = t.m0 + accRow(ty, i);
    if (m >= t.mEnd) { continue; }
    let g = rowGates[m];
    let base = (m - P.rowBegin) * P.d;
    for (var j = 0u; j < RN; j++) {
      let n = t.n0 + accCol(tx, j);
      if (n < t.nEnd) { rowsOut[base + n] = dt(g * acc[i * RN4 + j / 4u][j % 4u]); }
    }
  }`;
  return gemmSource({
    dtype: o.dtype,
    name: `expert-down-combine-${o.activation}${o.keptU ? '-keep-u' : ''}${target.suffix}`,
    tile: SEGMENT_TILE,
    aContiguous: 'k',
    bContiguous: 'n',
    vectorLoads: combineVectors(o.activation, o.keptU),
    bindings: [...hiddenBindings(o.activation, o.keptU), read('rowTokens', 'u32'), ...target.offsets, read('rowGates', 'f32'), operand('W2'), target.out],
    params: [...SEGMENT_ROWS_PARAMS, ...SHAPE_PARAMS],
    functions: `${ACTIVATION_WGSL}
${target.tiling}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { let l = ${ACT('m')} + k; return ${hiddenLoad(o.activation, o.keptU)}; }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(W2[(t.seg - P.expertBase) * P.h * P.d + k * P.d + n]); }
${
  into === 'tokens'
    ? `fn storeC(t: Tile, m: u32, n: u32, c: f32) {
  let token = rowTokens[m];
  let i = token * P.d + n;
  let y = rowGates[m] * c;
  if (P.slot == 0u) { O[i] = dt(y); } else { O[i] = dt(f32(O[i]) + y); }
}`
    : ''
}`,
    ...(into === 'rows' && { epilogue: rowsEpilogue }),
  });
}

/** dW2_e (+)= Σ_r u_rᵀ·(g_r·dO_token(r)) over the rows of this activation chunk. */
export function weightGradW2(o: ExpertKernelOptions, mode: ReduceMode = 'add'): KernelSource {
  return gemmSource({
    dtype: o.dtype,
    name: `expert-dW2-${o.activation}${o.keptU ? '-keep-u' : ''}`,
    tile: REDUCE_TILE,
    aContiguous: 'm',
    bContiguous: 'n',
    vectorLoads: dW2Vectors(o.activation, o.keptU),
    bindings: [
      ...hiddenBindings(o.activation, o.keptU),
      operand('dO'),
      read('rowTokens', 'u32'),
      read('expertOffsets', 'u32'),
      read('rowGates', 'f32'),
      write('dW2'),
    ],
    params: [...SEGMENT_REDUCE_PARAMS, ...SHAPE_PARAMS],
    functions: `${ACTIVATION_WGSL}
${segmentReduceTiling('expertOffsets', mode)}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { let l = ${ACT('k')} + m; return ${hiddenLoad(o.activation, o.keptU)}; }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return rowGates[k] * f32(dO[rowTokens[k] * P.d + n]); }
fn storeC(t: Tile, m: u32, n: u32, c: f32) { let w = (t.seg - P.expertBase) * P.h * P.d + m * P.d + n; ${reduceStore('dW2', 'w', 'c', mode)} }`,
  });
}

/**
 * G = dO_token·W2_eᵀ per routed row, consumed in the epilogue: da and db (or da alone) are
 * written over a and b in place, and ⟨G, u⟩ is reduced per row and column tile into dgPartial.
 */
export function hiddenGrad(o: ExpertKernelOptions): KernelSource {
  const swiglu = o.activation === 'swiglu';
  const plain = swiglu ? null : plainActivation(o.activation as Exclude<Activation, 'swiglu'>);
  const perElement = swiglu
    ? `let a = f32(Ab[l]); let b = f32(Bb[l]); let sa = silu(a);
        dgSum += G * sa * b;
        Ab[l] = dt(g * G * b * siluGrad(a));
        Bb[l] = dt(g * G * sa);`
    : `let a = f32(Ab[l]);
        dgSum += G * ${plain!.fn}(a);
        Ab[l] = dt(g * G * ${plain!.grad}(a));`;
  return gemmSource({
    dtype: o.dtype,
    name: `expert-hidden-grad-${o.activation}`,
    // Untuned (no class): dgParts counts this kernel's column tiles, SEGMENT_TILE.n wide, in the buffer table.
    tile: { ...TRANSPOSED_SEGMENT_TILE, class: undefined },
    aContiguous: 'k',
    bContiguous: 'k',
    vectorLoads: hiddenGradVectors(),
    bindings: [
      operand('dO'),
      read('rowTokens', 'u32'),
      read('expertOffsets', 'u32'),
      read('expertTileOffsets', 'u32'),
      read('rowGates', 'f32'),
      operand('W2'),
      write('Ab'),
      ...(swiglu ? [write('Bb')] : []),
      write('dgPartial', 'f32'),
    ],
    params: [...SEGMENT_ROWS_PARAMS, ...SHAPE_PARAMS, { name: 'dgParts', type: 'u32' }],
    moduleScope: `var<workgroup> rowDg: array<f32, ${Math.max(SEGMENT_TILE.m, SEGMENT_TILE.matrix?.m ?? 0) * 16}>;`,
    functions: `${ACTIVATION_WGSL}
${segmentRowsTiling('expertOffsets', 'expertTileOffsets')}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(dO[rowTokens[m] * P.d + k]); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(W2[(t.seg - P.expertBase) * P.h * P.d + n * P.d + k]); }`,
    epilogue: `
  for (var i = 0u; i < RM; i++) {
    let m = t.m0 + accRow(ty, i);
    var dgSum = 0.0;
    if (m < t.mEnd) {
      let g = rowGates[m];
      for (var j = 0u; j < RN; j++) {
        let n = t.n0 + accCol(tx, j);
        if (n >= t.nEnd) { continue; }
        let l = ${ACT('m')} + n;
        let G = acc[i * RN4 + j / 4u][j % 4u];
        ${perElement}
      }
    }
    rowDg[accRow(ty, i) * 16u + tx] = dgSum;
  }
  workgroupBarrier();
  if (li < TM && t.m0 + li < t.mEnd) {
    var total = 0.0;
    for (var x = 0u; x < 16u; x++) { total += rowDg[li * 16u + x]; }
    dgPartial[(t.m0 + li) * P.dgParts + wg.y] = total;
  }`,
  });
}

/** dW1_e (+)= Σ_r x_rᵀ·da_r and dW3_e (+)= Σ_r x_rᵀ·db_r (X rows gathered on load). */
export function weightGradW13(o: ExpertKernelOptions, mode: ReduceMode = 'add'): KernelSource {
  const swiglu = o.activation === 'swiglu';
  return gemmSource({
    dtype: o.dtype,
    name: `expert-dW13-${swiglu ? 'swiglu' : 'plain'}`,
    tile: REDUCE_TILE,
    dual: swiglu,
    aContiguous: 'm',
    bContiguous: 'n',
    vectorLoads: dW13Vectors(swiglu),
    bindings: [
      operand('X'),
      read('rowTokens', 'u32'),
      read('expertOffsets', 'u32'),
      operand('dA'),
      ...(swiglu ? [operand('dB')] : []),
      write('dW1'),
      ...(swiglu ? [write('dW3')] : []),
    ],
    params: [...SEGMENT_REDUCE_PARAMS, ...SHAPE_PARAMS],
    functions: `
${segmentReduceTiling('expertOffsets', mode)}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(X[rowTokens[k] * P.d + m]); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return f32(dA[${ACT('k')} + n]); }
${swiglu ? `fn loadB2(t: Tile, k: u32, n: u32) -> f32 { return f32(dB[${ACT('k')} + n]); }` : ''}
fn storeC(t: Tile, m: u32, n: u32, c: f32${swiglu ? ', c2: f32' : ''}) {
  let w = (t.seg - P.expertBase) * P.d * P.h + m * P.h + n;
  ${reduceStore('dW1', 'w', 'c', mode)}
  ${swiglu ? reduceStore('dW3', 'w', 'c2', mode) : ''}
}`,
  });
}

/** dX[token] += da·W1_eᵀ + db·W3_eᵀ slot by slot, or into scratch rows (K = 2h for SwiGLU, the halves concatenated). */
export function inputGrad(o: ExpertKernelOptions, into: RowTarget = 'tokens'): KernelSource {
  const swiglu = o.activation === 'swiglu';
  const target = rowTargetParts(into, 'dX');
  const store = into === 'tokens' ? 'let i = rowTokens[m] * P.d + n; dX[i] = dt(f32(dX[i]) + c);' : 'rowsOut[(m - P.rowBegin) * P.d + n] = dt(c);';
  const loads = inputGradLoads(swiglu);
  return gemmSource({
    dtype: o.dtype,
    name: `expert-dX-${swiglu ? 'swiglu' : 'plain'}${target.suffix}`,
    tile: TRANSPOSED_SEGMENT_TILE,
    aContiguous: 'k',
    bContiguous: 'k',
    vectorLoads: loads.vectorLoads,
    bindings: [operand('dA'), ...(swiglu ? [operand('dB')] : []), read('rowTokens', 'u32'), ...target.offsets, operand('W1'), ...(swiglu ? [operand('W3')] : []), target.out],
    params: [...SEGMENT_ROWS_PARAMS, ...SHAPE_PARAMS],
    functions: `
${target.tiling}
${loads.functions}
fn storeC(t: Tile, m: u32, n: u32, c: f32) { ${store} }`,
  });
}

/** Every zero-buffer expert kernel for one layer, built once (a runner dispatches them each step). */
export function expertKernels(o: ExpertKernelOptions) {
  return {
    up: upProjection(o),
    combine: { tokens: downCombine(o, 'tokens'), rows: downCombine(o, 'rows') },
    dW2: { store: weightGradW2(o, 'store'), add: weightGradW2(o, 'add') },
    hiddenGrad: hiddenGrad(o),
    dW13: { store: weightGradW13(o, 'store'), add: weightGradW13(o, 'add') },
    dX: { tokens: inputGrad(o, 'tokens'), rows: inputGrad(o, 'rows') },
  };
}

/** Column tiles of a hidden-size output: the number of dg partial sums per routed row. */
export function dgParts(ffn: number): number {
  return Math.ceil(ffn / SEGMENT_TILE.n);
}
