import { UsageError } from './errors.js';

/*
 * Flag parsers throw UsageError with a one-line message that names the flag: oclif would
 * otherwise print a generic multi-line message, and exit 1 for a plain Error (docs/design.md#exit-codes
 * wants 2 for every bad value).
 */

export function parseIntegerFlag(text: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = /^\s*[+-]?\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  // Digits beyond the safe range are still "an integer": say what the limit is, not what an integer is.
  if (!Number.isNaN(value) && value > max) throw new UsageError(`--${flag}: "${text.trim()}" is too large; at most ${max}`);
  if (!Number.isSafeInteger(value) || value < min) {
    const atMost = max === Number.MAX_SAFE_INTEGER ? '' : ` (at most ${max})`;
    const range = min === 1 ? `a positive integer${atMost}` : max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer ${min}..${max}`;
    throw new UsageError(`--${flag}: "${text}" is not allowed; use ${range}`);
  }
  return value;
}

/**
 * The largest tokens, hidden, ffn, experts and top-k the tool takes: the kernels index elements
 * and rows with 32-bit integers, and an array of one row per token or expert must fit in memory.
 */
export const LAYER_DIMENSION_MAX = 2 ** 31 - 1;

/** Floats ≥ 0 (oclif has no float flag); exponents are accepted, NaN and Infinity are not. */
export function parseNonNegativeFloat(text: string, flag: string): number {
  const value = /^\s*\+?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$/.test(text) ? Number(text) : Number.NaN;
  // "1e400" overflows to Infinity: too large, and said so rather than "not a number".
  if (value === Infinity) throw new UsageError(`--${flag}: "${text.trim()}" is too large; use a finite number ≥ 0`);
  if (!Number.isFinite(value) || value < 0) throw new UsageError(`--${flag}: "${text}" is not allowed; use a number ≥ 0`);
  return value;
}

/** Comma-separated lists for sweeps: --experts 4,8,16. Each item is parsed and checked like the single flag. */
export function parseList<T>(text: string, flag: string, item: (text: string, flag: string) => T): T[] {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.some((p) => p === '')) throw new UsageError(`--${flag}: "${text}" has an empty item; use a comma-separated list, e.g. 4,8,16`);
  const values = parts.map((p) => item(p, flag));
  // A sweep runs each value once: a repeated one would be dropped without a word (as --impl a --impl a is refused).
  const twice = values.findIndex((v, i) => values.indexOf(v) !== i);
  if (twice >= 0) throw new UsageError(`--${flag}: "${text}" lists ${parts[twice]} twice; give each value once`);
  return values;
}
