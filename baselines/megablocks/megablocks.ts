import { MAX_TOP_K } from '../../kernels/routing/router.js';
import { MAX_BINS } from './sort.js';
import { SEGMENT_TILE } from '../../kernels/gemm/tiling.js';
import { MAX_WORKGROUPS_PER_DIM } from '../../kernels/program.js';
import type { LayerConfig } from '../../src/config.js';
import type { Strategy } from '../../src/strategy/contract.js';
import { MegaBlocksRunner } from './runner.js';
import { megablocksTable, permutedRows, type MegaBlocksMode } from './table.js';
import { megablocksRows, megablocksWork } from './work.js';

/**
 * MegaBlocks dMoE (databricks/megablocks `layers/dmoe.py`, `mlp_impl="sparse"`): the flattened
 * [T·k] expert ids are radix-sorted, histogrammed and binned; every bin is padded to 128 rows;
 * X is gathered into a zero-padded [P,d] copy; the expert MLP runs on [P,·] (padding rows
 * included); Y is scattered, gate-weighted, into [T,k,d] and summed over k. Dropless, so
 * --capacity-factor is ignored; MegaBlocks keeps every autograd tensor, so --checkpoint is too.
 *
 * P depends on the routing, and MegaBlocks learns it with a host sync: padded_gather allocates
 * its output with `padded_bins[-1].cpu().item()` rows (backend/kernels.py). The buffers are
 * therefore sized exactly, not to the bound R + 127·E, and the step pays one scalar readback;
 * the table takes P from the realised expert loads.
 *
 * dtype: keeps the input dtype, as MegaBlocks does: at f16 every [P,·] and [T,k,d] tensor, O and
 * dX are f16 (sums in f32); router state, sort indices, bins and dg stay f32/u32.
 */
export function megablocksUnsupported(c: LayerConfig, mode: MegaBlocksMode): string | null {
  if (c.topK > MAX_TOP_K) return `top-k ${c.topK} > ${MAX_TOP_K}`;
  if (c.experts > MAX_BINS) return `${c.experts} experts > ${MAX_BINS} (the bins kernel's limit)`;
  const rowTiles = Math.ceil(permutedRows(c, mode, null) / SEGMENT_TILE.m);
  if (rowTiles > MAX_WORKGROUPS_PER_DIM) return `up to ${rowTiles} row tiles of the permuted rows, more than one dispatch dimension holds (${MAX_WORKGROUPS_PER_DIM})`;
  return null;
}

export const megablocks: Strategy = {
  id: 'megablocks',
  // Okabe–Ito palette (src/render/bench-format.ts says why).
  style: { color: '#009E73', marker: 'diamond' },
  title: 'MegaBlocks dMoE (sparse): radix sort, bins padded to 128 rows, permuted [P,d] copies, [T,k,d] scatter',
  dropless: true,
  unsupported: (c) => megablocksUnsupported(c, 'sparse'),
  bufferTable: (c, routing, limits) => megablocksTable(c, 'sparse', routing, limits),
  work: (c, routing) => megablocksWork(c, 'sparse', routing),
  expertRows: (c, routing) => megablocksRows(c, 'sparse', routing),
  create: (c) => new MegaBlocksRunner(c, 'sparse'),
};
