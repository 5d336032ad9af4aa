import type { Activation } from '../config.js';
import { plainActivation } from '../../kernels/activation.js';
import type { VectorLoads } from '../../kernels/gemm/core.js';
import { ACT, EXPERT_WEIGHTS, ROWS_ALIGNED } from '../../kernels/gemm/segment-vectors.js';

/**
 * The zero-buffer expert GEMMs' 8-wide operand loads for the subgroup-matrix engine at f16
 * (kernels/gemm/spec.ts, VectorLoads): the same gathers and recomputations as the scalar hooks
 * in expert-gemm.ts, once per 8 contiguous elements: one row lookup (rowTokens, rowGates) per
 * vector instead of per element, one 16-byte load per operand. Each element is computed in f32
 * and rounded to f16 once, as the scalar hooks' values are when staged.
 */

/** `hidden8(l)`: u at elements l … l + 7 of the [R,h] activations, recomputed from what the checkpoint kept. */
function hidden8(activation: Activation, keptU: boolean): string {
  if (keptU) return 'fn hidden8(l: u32) -> mat2x4<f16> { return U8(l); }';
  const per = (f: string, x: string) => `vec4f(${f}(${x}.x), ${f}(${x}.y), ${f}(${x}.z), ${f}(${x}.w))`;
  if (activation === 'swiglu')
    return `fn swiglu4(a: vec4<f16>, b: vec4<f16>) -> vec4<f16> { let x = vec4f(a); return vec4<f16>(${per('silu', 'x')} * vec4f(b)); }
fn hidden8(l: u32) -> mat2x4<f16> { let a = Ab8(l); let b = Bb8(l); return mat2x4<f16>(swiglu4(a[0], b[0]), swiglu4(a[1], b[1])); }`;
  const fn = plainActivation(activation).fn;
  return `fn act4(a: vec4<f16>) -> vec4<f16> { let x = vec4f(a); return vec4<f16>(${per(fn, 'x')}); }
fn hidden8(l: u32) -> mat2x4<f16> { let a = Ab8(l); return mat2x4<f16>(act4(a[0]), act4(a[1])); }`;
}

const W = EXPERT_WEIGHTS;

/** a, b = X·W1, X·W3: X rows gathered once per vector. */
export function upVectors(swiglu: boolean): VectorLoads {
  return {
    when: ROWS_ALIGNED,
    functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return X8(rowTokens[m] * P.d + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W18(${W} + k * P.h + n); }
${swiglu ? `fn loadB28(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W38(${W} + k * P.h + n); }` : ''}`,
  };
}

/** The combine: u recomputed from a and b, 8 at a time, · W2. */
export function combineVectors(activation: Activation, keptU: boolean): VectorLoads {
  return {
    when: ROWS_ALIGNED,
    functions: `${hidden8(activation, keptU)}
fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return hidden8(${ACT('m')} + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W28(${W} + k * P.d + n); }`,
  };
}

/** dW2 = uᵀ·(g·dO): the gate and the token looked up once per vector of dO. */
export function dW2Vectors(activation: Activation, keptU: boolean): VectorLoads {
  return {
    when: ROWS_ALIGNED,
    functions: `${hidden8(activation, keptU)}
fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return hidden8(${ACT('k')} + m); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> {
  let g = rowGates[k];
  let v = dO8(rowTokens[k] * P.d + n);
  return mat2x4<f16>(vec4<f16>(g * vec4f(v[0])), vec4<f16>(g * vec4f(v[1])));
}`,
  };
}

/** G = dO·W2ᵀ: dO rows gathered once per vector, W2 read along d. */
export function hiddenGradVectors(): VectorLoads {
  return {
    when: ROWS_ALIGNED,
    functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return dO8(rowTokens[m] * P.d + k); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return W28(${W} + n * P.d + k); }`,
  };
}

/** dW1, dW3 = Xᵀ·da, Xᵀ·db: X rows gathered once per vector along d. */
export function dW13Vectors(swiglu: boolean): VectorLoads {
  return {
    when: ROWS_ALIGNED,
    functions: `fn loadA8(t: Tile, m: u32, k: u32) -> mat2x4<f16> { return X8(rowTokens[k] * P.d + m); }
fn loadB8(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return dA8(${ACT('k')} + n); }
${swiglu ? `fn loadB28(t: Tile, k: u32, n: u32) -> mat2x4<f16> { return dB8(${ACT('k')} + n); }` : ''}`,
  };
}
