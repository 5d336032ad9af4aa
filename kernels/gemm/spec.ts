/**
 * What every GEMM engine shares: the spec a strategy writes (tile, hooks, bindings), the engine
 * interface, and the WGSL both engines emit around their own staging and multiply (the Tile
 * struct, the per-thread output layout, and the default epilogue; the one K-loop skeleton is k-loop.ts).
 * Engines live in kernels/gemm/engines/; kernels/gemm/core.ts picks one (docs/design.md#tensor-cores).
 */
import type { DType, GemmEngine } from '../../src/config.js';
import type { KernelBinding, KernelSource } from '../program.js';
import type { TileClass, TuningTable } from '../../src/gpu/tuning.js';

export type { GemmEngine };

/** Invocations of every GEMM workgroup: 16×16 for the SIMT engine's per-thread layout, 8 subgroups of 32 for the matrix engine. */
export const THREADS = 256;

/** Output tile of one workgroup: 16×16 threads, each (m/16)×(n/16) outputs. n = 256 only where the caller's grid follows the kernel's tile (gemmGrid). */
export interface TileShape {
  m: 64 | 128;
  n: 64 | 128 | 256;
  /** SIMT K step through workgroup memory [default: 8, the fastest on the H200: docs/performance.md]. */
  k?: 8 | 16 | 32;
  /**
   * SIMT workgroup tile buffers [default: 1]. With 2 the next K step is stored into the other
   * buffer while this one is read, so one barrier per step instead of two (twice the memory).
   */
  stages?: 1 | 2;
  /**
   * SIMT floats of padding after each K row of a workgroup tile [default: 4]. The register-staged
   * stores of an operand loaded along K write one K row per 8 adjacent threads: unpadded, the rows
   * start 128 floats apart and land in one memory bank (+60% with B loaded along K at BK 16).
   */
  pad?: 0 | 4;
  /**
   * The subgroup-matrix engine's own tile for this spec [default: the same as SIMT's]. A segment
   * tiling may take more rows than the routing metadata's row tile: its grid counts metadata tiles,
   * and a workgroup whose tile starts past its segment's end exits at once (tiling.ts), so a taller
   * tile over-covers the grid but computes every row once (SEGMENT_TILE).
   */
  matrix?: Pick<TileShape, 'm' | 'n'>;
  /** Which entry of a tuning table sets the matrix engine's tile [default: none, the tile is fixed] (src/gpu/tuning.ts). */
  class?: TileClass;
}

/** A storage binding of a GEMM: its name is the WGSL variable the hooks use and the dispatch's buffer key. */
export interface GemmBinding extends KernelBinding {
  /** 'dt': a float tensor stored as the spec's dtype (loads convert to f32, stores back). */
  type: 'f32' | 'u32' | 'i32' | 'dt' | 'vec4<u32>';
  /**
   * A 'dt' operand the vector hooks read 8 halves at a time: at f16 the matrix engine declares
   * `fn NAME8(i: u32) -> mat2x4<f16>` (elements i … i + 7, i a multiple of 8), one 16-byte load
   * through a second, vec4<u32>-typed read-only binding of the same buffer.
   */
  vector?: boolean;
}

/**
 * 8-wide operand loads for the subgroup-matrix engine at f16 (docs/performance.md, session 5):
 * `loadA8(t, m, k)`, `loadB8(t, k, n)` (and `loadB28` when dual) return 8 consecutive elements
 * along the operand's contiguous index as mat2x4<f16> (columns: elements 0–3, 4–7). The engine
 * calls them only where `when` holds (uniform WGSL: the contiguous rows' lengths are multiples of
 * 8, so every vector is 16-byte aligned) and the tile's range along the contiguous index starts
 * and ends on a multiple of 8; with indices clamped into the tile and the result zeroed outside
 * it. Elsewhere the scalar hooks run. `functions` holds the three hooks.
 */
export interface VectorLoads {
  when: string;
  functions: string;
  /** Which operands have vector hooks [default: both]. */
  a?: boolean;
  b?: boolean;
}

export type StagingGuards = 'always' | 'edges' | 'never';

export interface SubgroupMatrixOptions {
  /** K step staged per barrier [default: the longest of 64, 32, 16 whose staging fits the workgroup budget]. */
  k?: 16 | 32 | 64;
  /** `k` is the longest to try: a shorter one where it does not fit (a tuning table's K, measured on a single product, may not fit a dual one). */
  fitK?: boolean;
  /** Staging buffers [default 1]: with 2, the next step is staged while this one multiplies. */
  stages?: 1 | 2;
  /** Workgroup bytes the kernel may use [default 32 KiB, what every adapter offers]. */
  workgroupBytes?: number;
  /** Subgroup grid over the tile, rows × columns of subgroups (all of the workgroup's: 8 of 32 invocations) [default: the squarest per-subgroup tile]. */
  grid?: [number, number];
  /** Vector hooks through 16-byte views [default true]; false: the same hooks, 8 scalar loads each (a measurement switch). */
  views?: boolean;
  /** The engine's own output tile [default: the spec's tile.matrix, else its tile]; the dispatch counts its grid with gemmGrid. */
  tile?: TileShape;
  /** Use the spec's vector hooks at all [default true]. */
  vectors?: boolean;
  /**
   * Range tests on staged 8-wide loads [default 'edges'] (the scalar path always tests). 'edges':
   * only in workgroups whose tile crosses an edge of the output or whose K range is not a whole
   * number of steps (a uniform branch per tile; interior tiles load without clamps or selects). 'never': none at all, a
   * measurement switch (tools/gemm-bench.mjs) for shapes whose every tile and step is whole.
   * 'edges' against 'always': 114.4 against 109.4 TFLOP/s robust, 132.0 against 125.0 without
   * robustness, dense 8192³ on the H100 (docs/performance.md, session 6).
   */
  guards?: StagingGuards;
  /**
   * Measurement switches that give wrong products, for tools/gemm-bench.mjs only: 'stage-once'
   * stages the first K step and multiplies it every step (the multiply and barriers without the
   * staging); 'no-multiply' stages every step and multiplies nothing (the staging and barriers);
   * 'fragments-once' is 'stage-once' with the fragments loaded from workgroup memory once too
   * (the multiply-adds and barriers alone: against 'stage-once', what the fragment loads cost).
   */
  diagnostic?: 'stage-once' | 'no-multiply' | 'fragments-once';
  /**
   * Subgroups that only stage (warp specialization) [default 0: every subgroup stages and
   * multiplies]. The others multiply one staging buffer while these fill the other, one barrier
   * per K step (two buffers, the loop unrolled over them: engines/k-loop.ts): without async copies
   * this is how the global loads and workgroup stores of one workgroup overlap its multiply.
   */
  producers?: number;
}

export interface GemmSpec {
  name: string;
  /** Storage type of the 'dt' bindings [default: f32]; the tiles and accumulators are f32 either way. */
  dtype?: DType;
  /** Two B operands sharing A (e.g. W1 and W3 for SwiGLU), two accumulators. */
  dual?: boolean;
  /** Which index of A is contiguous in memory: tile loads walk it with adjacent threads. */
  aContiguous: 'k' | 'm';
  bContiguous: 'n' | 'k';
  bindings: readonly GemmBinding[];
  params: KernelSource['params'];
  functions: string;
  vectorLoads?: VectorLoads;
  tile?: TileShape;
  /**
   * Replaces the default epilogue (storeC per output). It sees t, tx, ty, li, wg and the
   * accumulators: output (i, j) of this thread, i < RM, j < RN, is row t.m0 + accRow(ty, i),
   * column t.n0 + accCol(tx, j), value acc[i * RN4 + j / 4u][j % 4u] (acc2 likewise).
   */
  epilogue?: string;
  /** Extra module-scope WGSL (workgroup arrays for custom epilogues). */
  moduleScope?: string;
  /** K loop engine [default 'simt']; the subgroup-matrix engines apply at dtype f16 only. */
  engine?: GemmEngine;
  /**
   * false: stay on SIMT whatever the engine asked for, because an operand must not be rounded
   * to f16 (the router's f32 Wr and dz, kept full width as DeepSpeed and Megatron keep them).
   */
  tensorCores?: boolean;
  subgroupMatrix?: SubgroupMatrixOptions;
}

/** One subgroup multiplies an m×k by a k×n fragment into an m×n f32 accumulator, `subgroupSize` invocations sharing it (engines/fragment.ts). */
export interface FragmentShape {
  m: number;
  n: number;
  k: number;
  subgroupSize: number;
}

/** What an engine may learn of the device it builds for. */
export interface EngineTarget {
  /** The matrix engine's fragment, from the adapter's configurations [default: 16×16×16, subgroups of 32]. */
  fragment?: FragmentShape;
  /** Workgroup bytes the device offers (maxComputeWorkgroupStorageSize). */
  workgroupBytes?: number;
  /** The tuning table the matrix engine's tiles follow (src/gpu/tuning.ts) [default: none]. */
  tuning?: TuningTable | null;
}

/**
 * A tile the matrix engine cannot build on this device: its staging does not fit the workgroup
 * memory, or its subgroup grid does not cover it with whole fragments. A tuned tile falls back to
 * the built-in one on it (core.ts); `tune` skips the candidate.
 */
export class TileRefusedError extends Error {}

/** The WGSL an engine contributes to a GEMM module; the core wraps it with the shared parts. */
export interface EngineCode {
  enables: string;
  /** Extra storage bindings (views), appended after the spec's. */
  bindings: GemmBinding[];
  moduleScope: string;
  main: string;
}

/** A K-loop engine: which specs it can build, and their WGSL. */
export interface GemmEngineImpl {
  id: GemmEngine;
  /** Why this engine cannot build `spec` (null: it can). */
  applies(spec: GemmSpec, target: EngineTarget): string | null;
  emit(spec: GemmSpec, target: EngineTarget): EngineCode;
}

export const DEFAULT_TILE: TileShape = { m: 64, n: 64 };

/** Module-scope WGSL of every GEMM: the tile constants, the Tile struct and the per-thread output layout. */
export function tileWgsl(tile: TileShape): string {
  const RM = tile.m / 16;
  const RN = tile.n / 16;
  return `const TM = ${tile.m}u;
const TN = ${tile.n}u;
const RM = ${RM}u;
const RN = ${RN}u;
const RN4 = ${RN / 4}u;

struct Tile {
  valid: bool,
  seg: u32,
  m0: u32, mEnd: u32,
  n0: u32, nEnd: u32,
  kBegin: u32, kEnd: u32,
}

// Thread (tx, ty) owns rows ty·4 + 64·q + r and columns tx·4 + 64·q + c: vec4 reads of
// workgroup memory are then contiguous across a warp.
fn accRow(ty: u32, i: u32) -> u32 { return (i / 4u) * 64u + ty * 4u + i % 4u; }
fn accCol(tx: u32, j: u32) -> u32 { return (j / 4u) * 64u + tx * 4u + j % 4u; }`;
}

/** The epilogue a spec without its own runs: storeC for every in-range output of this thread. */
export function epilogueOf(spec: GemmSpec): string {
  if (spec.epilogue) return spec.epilogue;
  const second = spec.dual ? ', acc2[i * RN4 + j / 4u][j % 4u]' : '';
  return `
  for (var i = 0u; i < RM; i++) {
    let m = t.m0 + accRow(ty, i);
    if (m >= t.mEnd) { continue; }
    for (var j = 0u; j < RN; j++) {
      let n = t.n0 + accCol(tx, j);
      if (n < t.nEnd) { storeC(t, m, n, acc[i * RN4 + j / 4u][j % 4u]${second}); }
    }
  }`;
}
