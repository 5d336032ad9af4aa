import { UsageError } from './errors.js';

const UNITS: Record<string, number> = {
  b: 1,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Sizes are counted in doubles: above 2^53 bytes (8 PiB, far beyond any GPU) they are no longer exact. */
export const MAX_SIZE_BYTES = 2 ** 53;

/**
 * Parses a byte size as docs/design.md#sizes defines it: B, KiB, MiB, GiB (and TiB) suffixes;
 * a bare number means GiB, because memory budgets are almost always given in GiB.
 */
export function parseBytes(text: string, flag = 'size'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = match?.[2].toLowerCase() ?? '';
  const scale = unit === '' ? UNITS.gib : UNITS[unit];
  if (!match || scale === undefined) {
    throw new UsageError(`--${flag}: "${text}" is not a size; use a number with B, KiB, MiB or GiB (a bare number is GiB), e.g. 80 or 512MiB`);
  }
  const bytes = Math.round(Number(match[1]) * scale);
  if (!(bytes > 0)) throw new UsageError(`--${flag}: "${text}" must be larger than zero`);
  if (bytes > MAX_SIZE_BYTES) throw new UsageError(`--${flag}: "${text}" is too large; at most ${formatBytes(MAX_SIZE_BYTES)}`);
  return bytes;
}

const DISPLAY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** Human-readable bytes in binary units, e.g. "1.50 GiB"; up to EiB, so that a huge plan reads "14.2 EiB", not "1.5e+10 GiB". */
export function formatBytes(bytes: number): string {
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  for (const unit of DISPLAY_UNITS) {
    if (value < 1024 || unit === DISPLAY_UNITS[DISPLAY_UNITS.length - 1]) {
      if (unit === 'B') return `${sign}${value} B`;
      const digits = value < 10 ? 2 : value < 100 ? 1 : 0;
      // Beyond 1024 EiB the number itself grows: group its digits rather than switch to e-notation.
      return `${sign}${value < 1e6 ? value.toFixed(digits) : Math.round(value).toLocaleString('en-US')} ${unit}`;
    }
    value /= 1024;
  }
  return `${sign}${value} B`;
}
