import { Flags } from '@oclif/core';
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { parseTuningText, tuningHash, type TuningRecord, type TuningTable } from '../gpu/tuning.js';
import type { GpuContext } from '../gpu/runtime.js';

/** A tuning file read and checked while the flags are parsed, so a bad one exits 2 before any GPU work. */
export function readTuningFile(path: string): TuningTable {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`--tuning: cannot read "${path}" (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); give a table \`moeblaze tune\` wrote`);
  }
  return parseTuningText(text, `--tuning ${path}`);
}

/** `--tuning FILE` as parsed: the file (a resume command names it again) and its table. */
export interface TuningFlag {
  path: string;
  table: TuningTable;
}

export const tuningFlag = Flags.custom<TuningFlag>({
  parse: async (path) => ({ path, table: readTuningFile(path) }),
  helpValue: '<file>',
  description:
    'tile table of the matrix engine (tile, K step and stages per GEMM shape class) that `moeblaze tune` wrote; applied to the subgroup-matrix kernels (SIMT is unchanged) and recorded in provenance. A table measured on another adapter is used all the same, with a warning (docs/design.md#tensor-cores)',
  helpGroup: 'GPU',
})();

/** What provenance records of --tuning: absent without it, so older and untuned results read alike. */
export function tuningProvenance(given: TuningFlag | undefined): { tuning?: TuningRecord } {
  return given ? { tuning: { hash: tuningHash(given.table), table: given.table } } : {};
}

/** The one warning for a table measured on another adapter: its tiles may not be this one's best, but they are valid anywhere. */
export function tuningAdapterWarning(given: TuningFlag | undefined, gpu: Pick<GpuContext, 'adapter'>): string | null {
  if (!given || given.table.adapter === gpu.adapter.description) return null;
  return `warning: --tuning ${given.path} was measured on "${given.table.adapter}", this adapter is "${gpu.adapter.description}"; its tiles are used all the same (run \`moeblaze tune\` here for this adapter's)`;
}
