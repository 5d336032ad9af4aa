/**
 * Tile configurations as data (issue 26, docs/design.md#tensor-cores): a per-adapter table of the
 * matrix engine's output tile, subgroup grid (the warp tile: the tile over the grid), K step and
 * staging buffers for each GEMM shape class, chosen when a
 * kernel is built. The model is vLLM's fused_moe/configs/*.json (one file per device and shape,
 * measured by a tuning script); here `moeblaze tune` measures and writes it, and `bench --tuning`
 * reads it. Only the subgroup-matrix engines are tuned: SIMT kernels are built as before. This
 * file is the format (the device layer carries a table: GpuContext.tuning); kernels/gemm/core.ts
 * (tunedSpec) applies it to a spec when a kernel is built.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../errors.js';

/** The GEMM shape classes a table tunes: routed-row products (TileShape.class of the segment tiles) and per-segment reductions. */
export type TileClass = 'segment' | 'reduce';

export const TUNING_FORMAT = 'moeblaze.tuning/v1';
export const TILE_CLASSES: readonly TileClass[] = ['segment', 'reduce'];
export const TUNED_M = [64, 128] as const;
export const TUNED_N = [64, 128, 256] as const;
export const TUNED_K = [16, 32, 64] as const;
export const TUNED_STAGES = [1, 2] as const;
/** Subgroups along one side of the grid (the grid's product is the workgroup's subgroup count, checked when a kernel is built). */
export const TUNED_GRID_SIDE = [1, 2, 4, 8, 16] as const;

/** The matrix engine's choice for one shape class. */
export interface TunedTile {
  m: (typeof TUNED_M)[number];
  n: (typeof TUNED_N)[number];
  /** K step staged per barrier [default: the engine's, the longest that fits the workgroup memory]. */
  k?: (typeof TUNED_K)[number];
  stages?: (typeof TUNED_STAGES)[number];
  /** Subgroups over the tile, rows × columns [default: the engine's, fewest fragment loads per product]; a grid the adapter's fragments cannot take keeps the built-in tile. */
  grid?: [number, number];
}

export interface TuningTable {
  format: typeof TUNING_FORMAT;
  /** The adapter it was measured on (AdapterReport.description). */
  adapter: string;
  /** Classes without an entry keep the built-in tile. */
  classes: Partial<Record<TileClass, TunedTile>>;
}

/** The tile table a run used, as provenance records it: the table itself and its short hash (tuningHash). */
export interface TuningRecord {
  hash: string;
  table: TuningTable;
}

/** A tile's fields in canonical order (m, n, k, stages, grid), the optional ones only where set. */
export function tunedTile(t: TunedTile): TunedTile {
  return { m: t.m, n: t.n, ...(t.k !== undefined && { k: t.k }), ...(t.stages !== undefined && { stages: t.stages }), ...(t.grid && { grid: [t.grid[0], t.grid[1]] }) };
}

const FIELDS: Record<Exclude<keyof TunedTile, 'grid'>, readonly number[]> = { m: TUNED_M, n: TUNED_N, k: TUNED_K, stages: TUNED_STAGES };

/** A table from parsed JSON, or a UsageError naming the first thing wrong and what is allowed. `source` names the file. */
export function parseTuning(value: unknown, source: string): TuningTable {
  const fail = (what: string): never => {
    throw new UsageError(`${source}: ${what}`);
  };
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(value)) return fail(`not a tuning table (a JSON object with format "${TUNING_FORMAT}", adapter and classes)`);
  for (const key of Object.keys(value)) if (!['format', 'adapter', 'classes'].includes(key)) fail(`unknown field "${key}"; allowed: format, adapter, classes`);
  if (value.format !== TUNING_FORMAT) fail(`format is ${JSON.stringify(value.format)}; allowed: "${TUNING_FORMAT}"`);
  if (typeof value.adapter !== 'string' || !value.adapter.trim()) fail('adapter must be the description of the adapter the table was measured on (a non-empty string)');
  if (!isObject(value.classes)) return fail(`classes must be an object of ${TILE_CLASSES.join(', ')}`);
  const classes: TuningTable['classes'] = {};
  for (const [name, entry] of Object.entries(value.classes)) {
    if (!TILE_CLASSES.includes(name as TileClass)) fail(`unknown class "${name}"; allowed: ${TILE_CLASSES.join(', ')}`);
    if (!isObject(entry)) fail(`classes.${name} must be an object with m, n and optional k, stages, grid`);
    const e = entry as Record<string, unknown>;
    for (const key of Object.keys(e)) if (!(key in FIELDS) && key !== 'grid') fail(`classes.${name}: unknown field "${key}"; allowed: m, n, k, stages, grid`);
    for (const [key, allowed] of Object.entries(FIELDS)) {
      const required = key === 'm' || key === 'n';
      if (e[key] === undefined && !required) continue;
      if (!allowed.includes(e[key] as number)) fail(`classes.${name}.${key} is ${JSON.stringify(e[key] ?? null)}; allowed: ${allowed.join(', ')}`);
    }
    const g = e.grid;
    if (g !== undefined && !(Array.isArray(g) && g.length === 2 && g.every((x) => (TUNED_GRID_SIDE as readonly unknown[]).includes(x))))
      fail(`classes.${name}.grid is ${JSON.stringify(g)}; allowed: [rows, columns] of subgroups, each one of ${TUNED_GRID_SIDE.join(', ')}`);
    classes[name as TileClass] = tunedTile(e as unknown as TunedTile);
  }
  return { format: TUNING_FORMAT, adapter: value.adapter as string, classes };
}

/** The table from a file's text (JSON errors are one line too). */
export function parseTuningText(text: string, source: string): TuningTable {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${source}: not JSON (${(error as Error).message.split('\n')[0]})`);
  }
  return parseTuning(value, source);
}

/** The table in one canonical form: classes in TILE_CLASSES order, fields in m, n, k, stages, grid order. */
export function canonicalTuning(table: TuningTable): string {
  const classes = TILE_CLASSES.flatMap((c) => {
    const t = table.classes[c];
    return t ? [[c, tunedTile(t)]] : [];
  });
  return JSON.stringify({ format: table.format, adapter: table.adapter, classes: Object.fromEntries(classes) });
}

/** A short name of the table (first 12 hex digits of the SHA-256 of its canonical form): provenance and the kernel cache key. */
export function tuningHash(table: TuningTable): string {
  return createHash('sha256').update(canonicalTuning(table)).digest('hex').slice(0, 12);
}
