import type { Strategy } from '../../src/strategy/contract.js';
import { megablocksUnsupported } from './megablocks.js';
import { MegaBlocksRunner } from './runner.js';
import { megablocksTable } from './table.js';
import { megablocksRows, megablocksWork } from './work.js';

/**
 * MegaBlocks dMoE with grouped GEMMs (`mlp_impl="grouped"`, MegaBlocks' default): the same sort
 * and bins, no padding (ops.gather gives [R,d], P = R), and GroupedMLP's
 * `tokens_per_expert.cpu()`: every bin size is read back to the host before the expert GEMMs,
 * which are then laid out on the host (one row-tile list per step). Memory does not depend on
 * the routing; the step time includes the readback. dtype: keeps the input dtype, as MegaBlocks
 * does (the sparse variant's f16 buffers, megablocks.ts).
 */
export const megablocksGrouped: Strategy = {
  id: 'megablocks-grouped',
  // Okabe–Ito palette (src/render/bench-format.ts says why).
  style: { color: '#D55E00', marker: 'triangle-down' },
  title: 'MegaBlocks dMoE (grouped GEMM): radix sort, no padding, bin sizes read back to the host',
  dropless: true,
  unsupported: (c) => megablocksUnsupported(c, 'grouped'),
  bufferTable: (c, routing, limits) => megablocksTable(c, 'grouped', routing, limits),
  work: (c, routing) => megablocksWork(c, 'grouped', routing),
  expertRows: (c, routing) => megablocksRows(c, 'grouped', routing),
  create: (c) => new MegaBlocksRunner(c, 'grouped'),
};
