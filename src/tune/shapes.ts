import type { LayerConfig } from '../config.js';
import type { TileClass } from '../gpu/tuning.js';

/** One GEMM of a shape class: C[M, N] = A[M, K]·B[K, N]. */
export interface GemmShape {
  M: number;
  N: number;
  K: number;
}

/**
 * The representative product of each shape class for a layer (docs/design.md#tensor-cores): an
 * expert's up-projection over its share of the routed rows, T·k/E rounded up (segment), and a
 * weight gradient reducing over those rows, d × h (reduce). With even routing every expert's
 * GEMMs are these; uneven routing makes some taller or shorter.
 */
export function classShapes(config: Pick<LayerConfig, 'tokens' | 'topK' | 'experts' | 'hidden' | 'ffn'>): Record<TileClass, GemmShape> {
  const rows = Math.max(1, Math.ceil((config.tokens * config.topK) / config.experts));
  return {
    segment: { M: rows, N: config.ffn, K: config.hidden },
    reduce: { M: config.hidden, N: config.ffn, K: rows },
  };
}

/**
 * The candidates timed per class: the matrix tiles of tools/gemm-bench.mjs's H100 runs, at K 32 and
 * 64, one staging buffer, and two other subgroup grids (the warp tile); a grid the adapter's
 * subgroups cannot take is skipped.
 */
export const TUNE_CANDIDATES: readonly { m: 64 | 128; n: 64 | 128 | 256; k: 32 | 64; stages: 1; grid?: [number, number] }[] = [
  { m: 64, n: 128, k: 32, stages: 1 },
  { m: 64, n: 128, k: 64, stages: 1 },
  { m: 128, n: 128, k: 32, stages: 1 },
  { m: 128, n: 128, k: 64, stages: 1 },
  // The other warp tile of 8 subgroups (the built-in grid is 4×2 here: 32×64 per subgroup).
  { m: 128, n: 128, k: 64, stages: 1, grid: [2, 4] },
  { m: 128, n: 256, k: 32, stages: 1 },
  { m: 128, n: 256, k: 64, stages: 1 },
  // 32×128 per subgroup against the built-in 64×64 (2×4).
  { m: 128, n: 256, k: 32, stages: 1, grid: [4, 2] },
];
