import { bindingPrelude, grid, LINEAR_WORKGROUP, perDtype, type KernelBinding, type KernelSource, type StepEncoder } from '../program.js';
import type { TrackedBuffer } from '../../src/gpu/allocator.js';
import type { DType, LayerConfig } from '../../src/config.js';
import { gemmGrid, gemmSource } from '../gemm/core.js';
import { DENSE_PARAMS, DENSE_ROWS_TILING, tiles } from '../gemm/tiling.js';

/**
 * (Just over 300 lines: the router's forward and backward kernels and their host code belong
 * together, since the backward inverts the forward's choices step by step.)
 *
 * The router: logits = X·Wr + β (β from the zipf skew), softmax, top-k by logit (ties to the
 * lower expert id) or the fixed balanced assignment (docs/design.md#balanced-routing), gates;
 * and its backward, dg → dp → dz, then dWr = Xᵀ·dz and dX = dz·Wrᵀ.
 * Every strategy shares it: they differ after routing, not in it. X and dX are stored at the
 * layer's dtype; Wr, dWr, logits, probabilities, gates and dz stay f32 at any dtype, so that the
 * softmax and the top-k see the same numbers as an f32 router on the same inputs.
 */
export const MAX_TOP_K = 8;

export const routerLogits = perDtype((dtype) =>
  gemmSource({
    name: 'router-logits',
    dtype,
    // The router stays full width at any dtype (Wr, dz are f32): never staged as f16.
    tensorCores: false,
    aContiguous: 'k',
    bContiguous: 'n',
    bindings: [
      { name: 'X', type: 'dt', access: 'read' },
      { name: 'Wr', type: 'f32', access: 'read' },
      { name: 'logits', type: 'f32', access: 'read_write' },
    ],
    params: [...DENSE_PARAMS, { name: 'skewS', type: 'f32' }],
    functions: `${DENSE_ROWS_TILING}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(X[m * P.K + k]); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return Wr[k * P.N + n]; }
fn storeC(t: Tile, m: u32, n: u32, c: f32) { logits[m * P.N + n] = c - P.skewS * log(f32(n + 1u)); }`,
  }),
);

const TOKEN_WG = 64;

function tokenKernel(name: string, bindings: KernelBinding[], params: KernelSource['params'], body: string): KernelSource {
  const code = `${bindingPrelude({ bindings, params })}
@compute @workgroup_size(${TOKEN_WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (${LINEAR_WORKGROUP}) * ${TOKEN_WG}u + li;
  if (t >= P.T) { return; }
${body}
}`;
  return { name, code, bindings, params };
}

/** Softmax in place (logits → probs), top-k (or pair t·k + s → expert (t·k + s) mod E when balanced), gates. */
export const routerTopK = tokenKernel(
  'router-topk',
  [
    { name: 'probs', type: 'f32', access: 'read_write' },
    { name: 'tokenExperts', type: 'u32', access: 'read_write' },
    { name: 'gates', type: 'f32', access: 'read_write' },
  ],
  [
    { name: 'T', type: 'u32' },
    { name: 'E', type: 'u32' },
    { name: 'k', type: 'u32' },
    { name: 'normalize', type: 'u32' },
    { name: 'balanced', type: 'u32' },
  ],
  `
  let base = t * P.E;
  var zmax = probs[base];
  for (var e = 1u; e < P.E; e++) { zmax = max(zmax, probs[base + e]); }
  var total = 0.0;
  for (var e = 0u; e < P.E; e++) { total += exp(probs[base + e] - zmax); }
  // Selection in the order (logit descending, expert id ascending): each pick is the best
  // candidate strictly after the previous pick in that order, so ties go to the lower id.
  var chosen: array<u32, ${MAX_TOP_K}>;
  var prevZ = 0.0;
  var prevE = 0u;
  var chosenSum = 0.0;
  for (var s = 0u; s < P.k; s++) {
    var best = P.E;
    var bestZ = 0.0;
    if (P.balanced == 1u) {
      // k ≤ E consecutive pairs fall on k distinct experts.
      best = (t * P.k + s) % P.E;
      bestZ = probs[base + best];
    } else {
      for (var e = 0u; e < P.E; e++) {
        let z = probs[base + e];
        let after = s == 0u || z < prevZ || (z == prevZ && e > prevE);
        if (after && (best == P.E || z > bestZ)) { best = e; bestZ = z; }
      }
    }
    chosen[s] = best;
    prevZ = bestZ;
    prevE = best;
    chosenSum += exp(bestZ - zmax) / total;
  }
  for (var s = 0u; s < P.k; s++) {
    let p = exp(probs[base + chosen[s]] - zmax) / total;
    tokenExperts[t * P.k + s] = chosen[s];
    gates[t * P.k + s] = select(p, p / chosenSum, P.normalize == 1u);
  }
  for (var e = 0u; e < P.E; e++) { probs[base + e] = exp(probs[base + e] - zmax) / total; }`,
);

/**
 * dz for each token from the gate gradients dg (one per routed pair; dropped pairs have 0),
 * through the renormalisation and the softmax, plus the load-balancing loss's share.
 * dg arrives as per-column-tile partial sums [pairs × dgParts], summed here in a fixed order.
 * Gates are indexed by pair ([T,k]) or, with gatesByRow, by routed row through pairRows.
 */
export const routerBackward = tokenKernel(
  'router-backward',
  [
    { name: 'probs', type: 'f32', access: 'read' },
    { name: 'tokenExperts', type: 'u32', access: 'read' },
    { name: 'gates', type: 'f32', access: 'read' },
    { name: 'pairRows', type: 'u32', access: 'read' },
    { name: 'dgPartial', type: 'f32', access: 'read' },
    { name: 'expertOffsets', type: 'u32', access: 'read' },
    { name: 'dz', type: 'f32', access: 'read_write' },
  ],
  [
    { name: 'T', type: 'u32' },
    { name: 'E', type: 'u32' },
    { name: 'k', type: 'u32' },
    { name: 'normalize', type: 'u32' },
    { name: 'dgParts', type: 'u32' },
    { name: 'auxScale', type: 'f32' },
    { name: 'gatesByRow', type: 'u32' },
  ],
  `
  let base = t * P.E;
  var dg: array<f32, ${MAX_TOP_K}>;
  var g: array<f32, ${MAX_TOP_K}>;
  var pc: array<f32, ${MAX_TOP_K}>;
  var chosenSum = 0.0;
  for (var s = 0u; s < P.k; s++) {
    let row = pairRows[t * P.k + s];
    var sum = 0.0;
    if (row != 0xffffffffu) {
      for (var j = 0u; j < P.dgParts; j++) { sum += dgPartial[row * P.dgParts + j]; }
    }
    dg[s] = sum;
    g[s] = gates[select(t * P.k + s, row, P.gatesByRow == 1u)];
    pc[s] = probs[base + tokenExperts[t * P.k + s]];
    chosenSum += pc[s];
  }
  // A gate or probability near 1 makes 1 − x vanish in f32; every "1 − x" below is therefore
  // formed as the sum of the other terms, which keeps the small gradients a skewed router has.
  var dp: array<f32, ${MAX_TOP_K}>;
  for (var s = 0u; s < P.k; s++) {
    if (P.normalize == 1u) {
      var others = 0.0;
      for (var r = 0u; r < P.k; r++) { if (r != s) { others += g[r] * (dg[s] - dg[r]); } }
      dp[s] = others / chosenSum;
    } else {
      dp[s] = dg[s];
    }
  }
  var dpp = 0.0;
  for (var s = 0u; s < P.k; s++) { dpp += dp[s] * pc[s]; }
  var qp = 0.0;
  if (P.auxScale != 0.0) {
    for (var e = 0u; e < P.E; e++) { qp += P.auxScale * f32(expertOffsets[e + 1u] - expertOffsets[e]) * probs[base + e]; }
  }
  for (var e = 0u; e < P.E; e++) {
    let p = probs[base + e];
    var slot = P.k;
    for (var s = 0u; s < P.k; s++) { if (tokenExperts[t * P.k + s] == e) { slot = s; } }
    var q = 0.0;
    if (P.auxScale != 0.0) { q = P.auxScale * f32(expertOffsets[e + 1u] - expertOffsets[e]); }
    var grad = -dpp;
    var aux = q - qp;
    if (slot < P.k || (p > 0.5 && P.auxScale != 0.0)) {
      // dp_e − ⟨dp, p⟩ = dp_e·Σ_{j≠e} p_j − Σ_{j≠e} p_j·dp_j, and likewise for q; the sums
      // over the other experts never subtract a number close to 1 from 1.
      var others = 0.0;
      var othersAux = 0.0;
      for (var j = 0u; j < P.E; j++) {
        if (j == e) { continue; }
        let pj = probs[base + j];
        others += pj;
        if (P.auxScale != 0.0) { othersAux += pj * P.auxScale * f32(expertOffsets[j + 1u] - expertOffsets[j]); }
      }
      if (slot < P.k) {
        var chosenOthers = 0.0;
        for (var r = 0u; r < P.k; r++) { if (r != slot) { chosenOthers += pc[r] * dp[r]; } }
        grad = dp[slot] * others - chosenOthers;
      }
      if (P.auxScale != 0.0) { aux = q * others - othersAux; }
    }
    dz[base + e] = p * grad + select(0.0, p * aux, P.auxScale != 0.0);
  }`,
);

/** dWr[d,E] = Xᵀ·dz: a reduction over tokens through the shared core. */
export const routerWeightGrad = perDtype((dtype) =>
  gemmSource({
    name: 'router-dWr',
    dtype,
    // The router stays full width at any dtype (Wr, dz are f32): never staged as f16.
    tensorCores: false,
    aContiguous: 'm',
    bContiguous: 'n',
    bindings: [
      { name: 'X', type: 'dt', access: 'read' },
      { name: 'dz', type: 'f32', access: 'read' },
      { name: 'dWr', type: 'f32', access: 'read_write' },
    ],
    params: DENSE_PARAMS,
    functions: `${DENSE_ROWS_TILING}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return f32(X[k * P.M + m]); }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return dz[k * P.N + n]; }
fn storeC(t: Tile, m: u32, n: u32, c: f32) { dWr[m * P.N + n] = c; }`,
  }),
);

/** The router's share of dX: dX = dz·Wrᵀ (written first; the experts' shares add to it). */
export const routerInputGrad = perDtype((dtype) =>
  gemmSource({
    name: 'router-dX',
    dtype,
    // The router stays full width at any dtype (Wr, dz are f32): never staged as f16.
    tensorCores: false,
    aContiguous: 'k',
    bContiguous: 'k',
    bindings: [
      { name: 'dz', type: 'f32', access: 'read' },
      { name: 'Wr', type: 'f32', access: 'read' },
      { name: 'dX', type: 'dt', access: 'read_write' },
    ],
    params: DENSE_PARAMS,
    functions: `${DENSE_ROWS_TILING}
fn loadA(t: Tile, m: u32, k: u32) -> f32 { return dz[m * P.K + k]; }
fn loadB(t: Tile, k: u32, n: u32) -> f32 { return Wr[n * P.K + k]; }
fn storeC(t: Tile, m: u32, n: u32, c: f32) { dX[m * P.N + n] = dt(c); }`,
  }),
);

export interface RouterShape {
  tokens: number;
  hidden: number;
  experts: number;
  topK: number;
  normalizeGates: boolean;
  skewS: number;
  /** The fixed balanced assignment instead of the top-k (docs/design.md#balanced-routing). */
  balanced: boolean;
  dtype: DType;
}

/** The router's shape for a layer (β from the zipf skew). */
export function routerShape(c: LayerConfig): RouterShape {
  return {
    tokens: c.tokens,
    hidden: c.hidden,
    experts: c.experts,
    topK: c.topK,
    normalizeGates: c.normalizeGates,
    skewS: c.skew.kind === 'zipf' ? c.skew.s : 0,
    balanced: c.routing === 'balanced',
    dtype: c.dtype,
  };
}

export async function encodeRouterForward(
  enc: StepEncoder,
  shape: RouterShape,
  b: { X: TrackedBuffer; Wr: TrackedBuffer; probs: TrackedBuffer; tokenExperts: TrackedBuffer; gates: TrackedBuffer },
): Promise<void> {
  const { tokens: T, hidden: d, experts: E, topK: k } = shape;
  await enc.dispatch({ source: routerLogits(shape.dtype), params: { M: T, N: E, K: d, skewS: shape.skewS }, buffers: { X: b.X, Wr: b.Wr, logits: b.probs }, workgroups: gemmGrid({ M: T }, E) });
  await enc.dispatch({
    source: routerTopK,
    params: { T, E, k, normalize: shape.normalizeGates ? 1 : 0, balanced: shape.balanced ? 1 : 0 },
    buffers: { probs: b.probs, tokenExperts: b.tokenExperts, gates: b.gates },
    workgroups: grid(tiles(T, TOKEN_WG)),
  });
}

export async function encodeRouterBackward(
  enc: StepEncoder,
  shape: RouterShape & { dgParts: number; auxLoss: number; gatesByRow?: boolean },
  b: {
    X: TrackedBuffer;
    Wr: TrackedBuffer;
    probs: TrackedBuffer;
    tokenExperts: TrackedBuffer;
    gates: TrackedBuffer;
    pairRows: TrackedBuffer;
    dgPartial: TrackedBuffer;
    expertOffsets: TrackedBuffer;
    dz: TrackedBuffer;
    dWr: TrackedBuffer;
    dX: TrackedBuffer;
  },
): Promise<void> {
  const { tokens: T, hidden: d, experts: E, topK: k } = shape;
  // ∂/∂p̄_e of α·E·Σ f_e·p̄_e with p̄ = mean over T tokens and f_e = load_e/(T·k).
  const auxScale = shape.auxLoss > 0 ? (shape.auxLoss * E) / (T * k * T) : 0;
  await enc.dispatch({
    source: routerBackward,
    params: { T, E, k, normalize: shape.normalizeGates ? 1 : 0, dgParts: shape.dgParts, auxScale, gatesByRow: shape.gatesByRow ? 1 : 0 },
    buffers: { probs: b.probs, tokenExperts: b.tokenExperts, gates: b.gates, pairRows: b.pairRows, dgPartial: b.dgPartial, expertOffsets: b.expertOffsets, dz: b.dz },
    workgroups: grid(tiles(T, TOKEN_WG)),
  });
  await enc.dispatch({ source: routerWeightGrad(shape.dtype), params: { M: d, N: E, K: T }, buffers: { X: b.X, dz: b.dz, dWr: b.dWr }, workgroups: gemmGrid({ M: d }, E) });
  await enc.dispatch({ source: routerInputGrad(shape.dtype), params: { M: T, N: d, K: E }, buffers: { dz: b.dz, Wr: b.Wr, dX: b.dX }, workgroups: gemmGrid({ M: T }, d) });
}
