import { bindingPrelude, type KernelSource, type StepEncoder } from '../program.js';
import { WORKGROUP_EXCLUSIVE_SCAN } from './workgroup-scan.js';
import type { TrackedBuffer } from '../../src/gpu/allocator.js';
import { TILE_M } from '../gemm/core.js';

/**
 * Builds the zero-buffer index lists from the router's [T,k] expert ids, without atomics, so the
 * order (and every result computed through it) is deterministic:
 *   count per token block → scan → stable placement.
 * Rows are ordered by expert, then slot, then token. Expert-major order gives the GEMMs
 * contiguous per-expert segments; slot-minor order gives, within each expert, one contiguous
 * segment per slot, which lets the combine and dX run slot by slot without write conflicts
 * (each token appears once per slot) and is exactly Tutel's capacity order (slot 0 first).
 *
 * Outputs: expertTokenIndices [R] (token of each row), tokenSlotMap [T·k] (row of each pair),
 * expertOffsets [E+1], expertSlotOffsets [E·k+1] (row offsets of each (expert, slot) segment),
 * expertTileOffsets [E+1] and slotTileOffsets [k·(E+1)] (first GEMM row tile of each segment).
 */
export const BLOCK_TOKENS = 256;
/** The scan holds every (expert, slot) count in workgroup memory. */
export const MAX_PAIRS = 4096;

export function metadataSizes(tokens: number, experts: number, topK: number) {
  return {
    blocks: Math.ceil(tokens / BLOCK_TOKENS),
    blockCounts: Math.ceil(tokens / BLOCK_TOKENS) * experts * topK,
    expertOffsets: experts + 1,
    expertSlotOffsets: experts * topK + 1,
    expertTileOffsets: experts + 1,
    slotTileOffsets: topK * (experts + 1),
  };
}

const PARAMS = [
  { name: 'T', type: 'u32' },
  { name: 'E', type: 'u32' },
  { name: 'k', type: 'u32' },
  { name: 'blocks', type: 'u32' },
] as const;

/** A kernel over u32 buffers, each given as [name, access]. */
function kernel(name: string, buffers: [string, 'read' | 'read_write'][], body: string): KernelSource {
  const bindings = buffers.map(([name, access]) => ({ name, type: 'u32', access }));
  const code = `${bindingPrelude({ bindings, params: PARAMS })}
${body}`;
  return { name, code, bindings, params: PARAMS };
}

/** blockCounts[b][s][e] = tokens of block b whose slot s is expert e. wg = (block, pair group). */
export const countBlocks = kernel(
  'routing-count',
  [
    ['tokenExperts', 'read'],
    ['blockCounts', 'read_write'],
  ],
  `@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let pair = wg.y * 256u + li;
  if (pair >= P.E * P.k) { return; }
  let s = pair / P.E;
  let e = pair % P.E;
  let start = wg.x * ${BLOCK_TOKENS}u;
  let end = min(start + ${BLOCK_TOKENS}u, P.T);
  var count = 0u;
  for (var t = start; t < end; t++) { count += select(0u, 1u, tokenExperts[t * P.k + s] == e); }
  blockCounts[wg.x * P.E * P.k + pair] = count;
}`,
);

/** One workgroup: segment sizes, their exclusive scan, per-block placement bases, tile offsets. */
export const scanCounts = kernel(
  'routing-scan',
  [
    ['blockCounts', 'read_write'],
    ['expertOffsets', 'read_write'],
    ['expertSlotOffsets', 'read_write'],
    ['expertTileOffsets', 'read_write'],
    ['slotTileOffsets', 'read_write'],
  ],
  `var<workgroup> sizes: array<u32, ${MAX_PAIRS}>;
${WORKGROUP_EXCLUSIVE_SCAN}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  let pairs = P.E * P.k;
  // Segment q = e·k + s (expert-major, slot-minor); blockCounts is indexed [b][s][e].
  for (var q = li; q < pairs; q += 256u) {
    let e = q / P.k;
    let s = q % P.k;
    var n = 0u;
    for (var b = 0u; b < P.blocks; b++) { n += blockCounts[b * pairs + s * P.E + e]; }
    sizes[q] = n;
  }
  workgroupBarrier();
  // Exclusive scan: each thread sums a contiguous run, then a Hillis–Steele scan of the runs.
  let run = (pairs + 255u) / 256u;
  let first = li * run;
  var local = 0u;
  for (var q = first; q < min(first + run, pairs); q++) { local += sizes[q]; }
  var offset = workgroupExclusiveScan(li, local);
  for (var q = first; q < min(first + run, pairs); q++) {
    let n = sizes[q];
    expertSlotOffsets[q] = offset;
    if (q % P.k == 0u) { expertOffsets[q / P.k] = offset; }
    // Placement base of this segment in each block: its offset plus earlier blocks' counts.
    let e = q / P.k;
    let s = q % P.k;
    var base = offset;
    for (var b = 0u; b < P.blocks; b++) {
      let i = b * pairs + s * P.E + e;
      let c = blockCounts[i];
      blockCounts[i] = base;
      base += c;
    }
    offset += n;
  }
  if (li == 255u) {
    expertSlotOffsets[pairs] = offset;
    expertOffsets[P.E] = offset;
  }
  // Tile offsets: thread s < k scans slot s over experts; thread k scans whole experts.
  if (li <= P.k) {
    var tilesSoFar = 0u;
    for (var e = 0u; e < P.E; e++) {
      var n = 0u;
      if (li < P.k) {
        n = sizes[e * P.k + li];
        slotTileOffsets[li * (P.E + 1u) + e] = tilesSoFar;
      } else {
        for (var s = 0u; s < P.k; s++) { n += sizes[e * P.k + s]; }
        expertTileOffsets[e] = tilesSoFar;
      }
      tilesSoFar += (n + ${TILE_M - 1}u) / ${TILE_M}u;
    }
    if (li < P.k) { slotTileOffsets[li * (P.E + 1u) + P.E] = tilesSoFar; } else { expertTileOffsets[P.E] = tilesSoFar; }
  }
}`,
);

/** Stable placement: a pair's row is its segment's block base plus its rank among earlier tokens of the block. */
export const placeRows = kernel(
  'routing-place',
  [
    ['tokenExperts', 'read'],
    ['blockCounts', 'read'],
    ['expertTokenIndices', 'read_write'],
    ['tokenSlotMap', 'read_write'],
  ],
  `var<workgroup> blockExperts: array<u32, ${BLOCK_TOKENS}>;

@compute @workgroup_size(${BLOCK_TOKENS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x * ${BLOCK_TOKENS}u + li;
  let live = t < P.T;
  for (var s = 0u; s < P.k; s++) {
    var e = 0xffffffffu;
    if (live) { e = tokenExperts[t * P.k + s]; }
    blockExperts[li] = e;
    workgroupBarrier();
    if (live) {
      var rank = 0u;
      for (var i = 0u; i < li; i++) { rank += select(0u, 1u, blockExperts[i] == e); }
      let row = blockCounts[wg.x * P.E * P.k + s * P.E + e] + rank;
      expertTokenIndices[row] = t;
      tokenSlotMap[t * P.k + s] = row;
    }
    workgroupBarrier();
  }
}`,
);

export interface RoutingMetadataBuffers {
  tokenExperts: TrackedBuffer;
  blockCounts: TrackedBuffer;
  expertTokenIndices: TrackedBuffer;
  tokenSlotMap: TrackedBuffer;
  expertOffsets: TrackedBuffer;
  expertSlotOffsets: TrackedBuffer;
  expertTileOffsets: TrackedBuffer;
  slotTileOffsets: TrackedBuffer;
}

export async function encodeRoutingMetadata(enc: StepEncoder, shape: { tokens: number; experts: number; topK: number }, b: RoutingMetadataBuffers): Promise<void> {
  const { tokens: T, experts: E, topK: k } = shape;
  const { blocks } = metadataSizes(T, E, k);
  if (E * k > MAX_PAIRS) throw new Error(`experts × top-k = ${E * k} exceeds the routing scan's ${MAX_PAIRS}`);
  const params = { T, E, k, blocks };
  await enc.dispatch({ source: countBlocks, params, buffers: { tokenExperts: b.tokenExperts, blockCounts: b.blockCounts }, workgroups: [blocks, Math.ceil((E * k) / 256), 1] });
  await enc.dispatch({
    source: scanCounts,
    params,
    buffers: { blockCounts: b.blockCounts, expertOffsets: b.expertOffsets, expertSlotOffsets: b.expertSlotOffsets, expertTileOffsets: b.expertTileOffsets, slotTileOffsets: b.slotTileOffsets },
    workgroups: 1,
  });
  await enc.dispatch({ source: placeRows, params, buffers: { tokenExperts: b.tokenExperts, blockCounts: b.blockCounts, expertTokenIndices: b.expertTokenIndices, tokenSlotMap: b.tokenSlotMap }, workgroups: blocks });
}
