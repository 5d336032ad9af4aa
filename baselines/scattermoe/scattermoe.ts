import { SEGMENT_TILE } from '../../kernels/gemm/tiling.js';
import { MAX_WORKGROUPS_PER_DIM } from '../../kernels/program.js';
import { MAX_PAIRS } from '../../kernels/routing/metadata.js';
import { MAX_TOP_K } from '../../kernels/routing/router.js';
import type { LayerConfig } from '../../src/config.js';
import type { Strategy } from '../../src/strategy/contract.js';
import { ScatterMoERunner } from './runner.js';
import { scatterMoETable } from './table.js';
import { scatterMoEWork } from './work.js';

/**
 * ScatterMoE (Tan et al., arXiv 2403.08245; shawntan/scattermoe v0.2.0): the flattened expert ids
 * are sorted (indices only: no row is padded in memory and no token row is copied before the first
 * GEMM), the gathers and scatters are fused into the grouped GEMMs (`scatter2scatter`, over
 * blocks that never span two experts: gemm-kernels.ts), and the MLP's
 * tensors are those torch autograd keeps around two ParallelLinear functions (table.ts lists them
 * with their upstream names). Dropless, so --capacity-factor is ignored; no recompute, so
 * --checkpoint is too.
 */
export function scatterMoEUnsupported(c: LayerConfig): string | null {
  if (c.topK > MAX_TOP_K) return `top-k ${c.topK} > ${MAX_TOP_K}`;
  if (c.experts > MAX_PAIRS) return `${c.experts} experts > ${MAX_PAIRS} (the sort's scan holds one count per expert)`;
  // Expert-aligned blocks: at most ⌈R/64⌉ + E, the grid every scatter2scatter dispatches.
  const rowTiles = Math.ceil((c.tokens * c.topK) / SEGMENT_TILE.m) + c.experts;
  if (rowTiles > MAX_WORKGROUPS_PER_DIM) return `up to ${rowTiles} row blocks of the sorted rows, more than one dispatch dimension holds (${MAX_WORKGROUPS_PER_DIM})`;
  return null;
}

export const scatterMoE: Strategy = {
  id: 'scattermoe',
  // Okabe–Ito palette (src/render/bench-format.ts says why).
  style: { color: '#56B4E9', marker: 'hexagon' },
  title: 'ScatterMoE: indices sorted, nothing padded, gathers and scatters fused into grouped GEMMs',
  dropless: true,
  unsupported: scatterMoEUnsupported,
  bufferTable: (c, _routing, limits) => scatterMoETable(c, limits),
  create: (c) => new ScatterMoERunner(c),
  work: (c, routing) => scatterMoEWork(c, routing),
  // The sorted rows, nothing padded in memory: every kept pair is one row of the expert GEMMs. A
  // block's rows past its expert's end are masked, as in megablocks-grouped's and zero-buffer's
  // tiles, and counted nowhere (docs/design.md#scattermoe).
  expertRows: (c) => c.tokens * c.topK,
};
