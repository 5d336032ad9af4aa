import type { LayerConfig } from './config.js';
import { EnvironmentError, UsageError } from './errors.js';
import { floatBytes } from './f16.js';
import { findStrategy } from './registry.js';
import { formatBytes } from './units.js';

/*
 * The size checks every command makes before it allocates or generates anything, in one place:
 * a shape the tool cannot run is refused with the size and the limit, not found out by a crash
 * (or a quiet PASS) after the GPU opened.
 */

/**
 * The strategies that can run `config`; a UsageError (exit 2) when none can: a command that
 * skipped every strategy has checked or measured nothing and must not exit 0.
 */
export function requireRunnable(ids: readonly string[], config: LayerConfig): string[] {
  const reasons = ids.map((id) => [id, findStrategy(id).unsupported(config)] as const);
  const runnable = reasons.filter(([, reason]) => reason === null).map(([id]) => id);
  if (runnable.length === 0) {
    throw new UsageError(`no chosen strategy can run this config: ${reasons.map(([id, reason]) => `${id}: ${reason}`).join('; ')}`);
  }
  return runnable;
}

/**
 * What a layer's tensors need of one storage binding (X whole, each expert's weight matrix whole);
 * an EnvironmentError (exit 4) naming the size and this adapter's limit otherwise.
 */
export function requireBindingFits(config: LayerConfig, maxBindingBytes: number, chunkBytes = maxBindingBytes): void {
  const { tokens: T, hidden: d, ffn: h } = config;
  const f = floatBytes(config.dtype);
  const tokenBytes = T * d * f;
  if (tokenBytes > maxBindingBytes) {
    throw new EnvironmentError(`X [${T}×${d}] needs ${formatBytes(tokenBytes)}, more than one storage binding holds on this adapter (${formatBytes(maxBindingBytes)}); use fewer --tokens`);
  }
  if (d * h * f > chunkBytes && d * h * f <= maxBindingBytes) {
    throw new UsageError(`--chunk-limit: ${formatBytes(chunkBytes)} is smaller than one expert's weight matrix [${d}×${h}] (${formatBytes(d * h * f)}); use at least that`);
  }
  if (d * h * f > chunkBytes) {
    throw new EnvironmentError(`one expert's weight matrix [${d}×${h}] needs ${formatBytes(d * h * f)}, more than one storage binding holds (${formatBytes(chunkBytes)})`);
  }
}

/** verify keeps every input and gradient on the host in f32 and f64, with the f64 reference's intermediates. */
export const VERIFY_HOST_LIMIT_BYTES = 4 * 2 ** 30;

/** Host bytes verify needs for `config`, roughly: inputs in f32, their f64 copies, f64 gradients and the reference's per-pair activations. */
export function verifyHostBytes(config: LayerConfig): number {
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = config;
  const matrices = config.activation === 'swiglu' ? 3 : 2;
  const inputs = 2 * T * d + d * E + matrices * E * d * h;
  const pairs = T * k * h * 4;
  return inputs * (4 + 8 + 8) + pairs * 8;
}

/** A UsageError (exit 2) before any input is generated when verify's float64 reference would not fit on the host. */
export function requireVerifiable(config: LayerConfig, limit = VERIFY_HOST_LIMIT_BYTES): void {
  const bytes = verifyHostBytes(config);
  if (bytes > limit) {
    throw new UsageError(
      `verify computes a float64 reference on the CPU: this shape needs about ${formatBytes(bytes)} of host memory, more than verify allows (at most ${formatBytes(limit)}); use smaller shapes (bench checks large ones against zero-buffer)`,
    );
  }
}
