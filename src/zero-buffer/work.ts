import { dgParts, expertKernels } from './expert-gemm.js';
import { rowGates } from './row-gates.js';
import { rowReduce } from './row-reduce.js';
import { layouts, rowTarget, scratchRows } from './table.js';
import type { LayerConfig } from '../config.js';
import { chunkRowRange } from '../gpu/tensor.js';
import type { KernelWork, TableLimits } from '../strategy/contract.js';
import { inPhase, routerBackwardWork, routerForwardWork, routingMetadataWork, WORD, workSizes } from '../strategy/work.js';

/**
 * Zero-buffer's kernels in one train step, as zero-buffer.ts dispatches them (Strategy.work):
 * the expert GEMMs gather X and dO rows through the index lists (R rows of d, plus R indices);
 * the combine and dX either run k slot passes that each read every weight and add into the
 * token rows, or, below ROW_BLOCKS_BELOW rows per expert (table.ts rowTarget), write blocks of
 * scratch rows that row-reduce adds into the token rows, reading O or dX once per block.
 */
export function zeroBufferWork(c: LayerConfig, limits: TableLimits): KernelWork[] {
  const { T, d, h, k, R, f, up, W } = workSizes(c);
  const kernels = expertKernels({ activation: c.activation, keptU: c.checkpoint === 'none', dtype: c.dtype });
  const useful = (matrices: number) => 2 * R * d * h * matrices;
  const hidden = R * h * f;
  // What the kernels that need u read: u itself when kept, else a (and b) to recompute it.
  const uSource = c.checkpoint === 'none' ? hidden : up * hidden;
  const gathered = R * d * f + WORD * R;
  const upBytes = gathered + up * W + up * hidden + (c.checkpoint === 'none' ? hidden : 0);
  const rows = rowTarget(c) === 'rows';
  const experts = inPhase('forward', 'experts');
  const inputGrad = inPhase('backward', 'input-grad');
  const work: KernelWork[] = [
    ...routerForwardWork(c),
    ...routingMetadataWork(c),
    inPhase('forward', 'metadata')(rowGates.name, WORD * 3 * R),
    experts(kernels.up.name, upBytes, useful(up)),
  ];
  // Scratch rows: row-reduce reads each block and the token map, and reads and writes all token rows once per block.
  const blocks = rows ? rowBlocks(c, limits) : 0;
  const reduce = blocks * (WORD * R + 2 * T * d * f) + R * d * f;
  if (rows) work.push(experts(kernels.combine.rows.name, uSource + WORD * 2 * R + W + R * d * f, useful(1)), experts(rowReduce(c.dtype).name, reduce));
  // Slot pass s reads W2 and adds into O (slot 0 writes it): k reads of W2, 2k − 1 passes over O.
  else work.push(experts(kernels.combine.tokens.name, uSource + WORD * 2 * R + k * W + (2 * k - 1) * T * d * f, useful(1)));
  // Recomputing a and b does no useful FLOPs.
  if (c.checkpoint === 'full') work.push(inPhase('backward', 'recompute')(kernels.up.name, upBytes));
  const grads = inPhase('backward', 'expert-grads');
  work.push(
    grads(kernels.dW2.store.name, uSource + gathered + WORD * R + W, useful(1)),
    // dO·W2ᵀ; a and b read and overwritten by da and db; dg partial sums per column tile.
    grads(kernels.hiddenGrad.name, gathered + WORD * R + W + 2 * up * hidden + WORD * R * dgParts(h), useful(1)),
    grads(kernels.dW13.store.name, gathered + up * hidden + up * W, useful(up)),
    ...routerBackwardWork(c, R, dgParts(h)),
  );
  if (rows) work.push(inputGrad(kernels.dX.rows.name, up * hidden + WORD * R + up * W + R * d * f, useful(up)), inputGrad(rowReduce(c.dtype).name, reduce));
  // dX already holds the router's share: every slot pass reads and writes it.
  else work.push(inputGrad(kernels.dX.tokens.name, up * hidden + WORD * R + k * up * W + 2 * k * T * d * f, useful(up)));
  return work;
}

/** Scratch-row blocks per pass: each activation chunk of [R,h] in blocks of at most scratchRows rows (passes.ts rowBlocks). */
function rowBlocks(c: LayerConfig, limits: TableLimits): number {
  const hidden = layouts(c, limits.chunkBytes).hidden;
  const block = scratchRows(c, limits.chunkBytes);
  let blocks = 0;
  for (let ac = 0; ac < hidden.chunkCount; ac++) blocks += Math.ceil(chunkRowRange(hidden, ac).count / block);
  return blocks;
}
