import type { Activation, DType } from '../src/config.js';
import { bindingPrelude, grid, LINEAR_WORKGROUP, perDtype, type KernelSource } from './program.js';

/**
 * WGSL of the expert activations and their derivatives, in f32. WGSL has no erf: this one is
 * erfc's Chebyshev-fitted exponential form (fractional error < 1.2e-7, below f32 rounding of
 * the GEMM outputs it is applied to).
 */
export const ACTIVATION_WGSL = `
fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn silu(x: f32) -> f32 { return x * sigmoid(x); }
fn siluGrad(x: f32) -> f32 { let s = sigmoid(x); return s * (1.0 + x * (1.0 - s)); }
fn erfc32(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  let r = t * exp(poly);
  return select(2.0 - r, r, x >= 0.0);
}
fn gelu(x: f32) -> f32 { return 0.5 * x * erfc32(-x * 0.70710678118654752); }
fn geluGrad(x: f32) -> f32 {
  return 0.5 * erfc32(-x * 0.70710678118654752) + x * 0.39894228040143268 * exp(-0.5 * x * x);
}
`;

/** Name of the WGSL function for u = act(a) of a plain MLP, and of its derivative. */
export function plainActivation(activation: Exclude<Activation, 'swiglu'>): { fn: string; grad: string } {
  return activation === 'gelu' ? { fn: 'gelu', grad: 'geluGrad' } : { fn: 'silu', grad: 'siluGrad' };
}

const GRAD_WORKGROUP = 256;

function buildActivationGrad(activation: Activation, dtype: DType): KernelSource {
  const swiglu = activation === 'swiglu';
  const inputs = swiglu ? ['dU', 'A', 'B'] : ['dU', 'A'];
  const outputs = swiglu ? ['dA', 'dB'] : ['dA'];
  const bindings = [...inputs.map((name) => ({ name, type: 'dt', access: 'read' as const })), ...outputs.map((name) => ({ name, type: 'dt', access: 'read_write' as const }))];
  const params = [{ name: 'count', type: 'u32' }] as const;
  const body = swiglu
    ? `let a = f32(A[i]); let g = f32(dU[i]);
  dA[i] = dt(g * f32(B[i]) * siluGrad(a));
  dB[i] = dt(g * silu(a));`
    : `dA[i] = dt(f32(dU[i]) * ${plainActivation(activation).grad}(f32(A[i])));`;
  const code = `${bindingPrelude({ bindings, params }, dtype)}
${ACTIVATION_WGSL}
@compute @workgroup_size(${GRAD_WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (${LINEAR_WORKGROUP}) * ${GRAD_WORKGROUP}u + li;
  if (i >= P.count) { return; }
  ${body}
}`;
  return { name: `activation-grad-${activation}`, code, bindings, params };
}

const activationGradByDtype = perDtype((dtype) => ({
  swiglu: buildActivationGrad('swiglu', dtype),
  silu: buildActivationGrad('silu', dtype),
  gelu: buildActivationGrad('gelu', dtype),
}));

/**
 * The activation's backward as its own elementwise pass, da (and db) from dU and the saved a (and
 * b): what the autograd frameworks the baselines follow run (zero-buffer fuses it into a GEMM
 * epilogue instead). Bindings: dU, A, [B,] dA[, dB]; param count.
 */
export function activationGrad(activation: Activation, dtype: DType): KernelSource {
  return activationGradByDtype(dtype)[activation];
}

export function activationGradGrid(count: number): [number, number] {
  return grid(Math.ceil(count / GRAD_WORKGROUP));
}
