import { UsageError } from './errors.js';

const UNITS: Record<string, number> = {
  b: 1,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

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
  return bytes;
}

/** Human-readable bytes in binary units, e.g. "1.50 GiB". */
export function formatBytes(bytes: number): string {
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  for (const unit of ['B', 'KiB', 'MiB', 'GiB']) {
    if (value < 1024 || unit === 'GiB') {
      return unit === 'B' ? `${sign}${value} B` : `${sign}${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${unit}`;
    }
    value /= 1024;
  }
  return `${sign}${value} TiB`;
}
