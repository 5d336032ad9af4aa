import { megablocksGemms } from './gemm-kernels.js';
import { paddedGather, paddedScatter, scatterWgrad, sumTopK } from './permute.js';
import { paddedBins, radixCount, radixScan, radixScatter, sortEndBit, sortPlan, unpaddedBins } from './sort.js';
import { permutedRows, type MegaBlocksMode } from './table.js';
import type { LayerConfig } from '../../src/config.js';
import type { KernelWork, RoutingSummary } from '../../src/strategy/contract.js';
import { inPhase, denseExpertWork, routerBackwardWork, routerForwardWork, WORD, workSizes } from '../../src/strategy/work.js';

/** Rows of MegaBlocks' permuted buffers for a routing: the padded bins (sparse), R (grouped). */
export function megablocksRows(c: LayerConfig, mode: MegaBlocksMode, routing: RoutingSummary): number {
  return permutedRows(c, mode, mode === 'sparse' ? routing.expertLoads : null);
}

/**
 * MegaBlocks' kernels in one train step, as runner.ts dispatches them (Strategy.work): the radix
 * sort and bins, the gather of X into the P permuted rows (padding rows are cleared, not written
 * by the kernel), the expert MLP over all P rows, the gate-weighted scatter to [T,k,d] summed over
 * k (straight into O when k = 1), and the same copies in backward.
 */
export function megablocksWork(c: LayerConfig, mode: MegaBlocksMode, routing: RoutingSummary): KernelWork[] {
  const { T, d, E, R, f } = workSizes(c);
  const g = megablocksGemms(c.activation, c.dtype);
  const rows = R * d * f;
  const dense = denseExpertWork(
    c,
    { up: g.up.name, down: g.down.name, dW2: g.dW2.store.name, dU: g.dU.name, actGrad: g.actGrad.name, dW13: g.dW13.store.name, dInput: g.dXp.name },
    { up: 'experts', down: 'experts', downGrad: 'down-grad', actGrad: 'act-grad', upGrad: 'up-grad' },
    megablocksRows(c, mode, routing),
    routing.keptPairs,
  );
  const scatter = inPhase('forward', 'scatter');
  const inputGrad = inPhase('backward', 'input-grad');
  const sumK = c.topK > 1;
  return [
    ...routerForwardWork(c),
    ...sortWork(c, mode),
    // Copies read the sorted pair ids and their experts (2R words); scaled ones the gates too.
    inPhase('forward', 'permute')(paddedGather(c.dtype).name, 2 * rows + WORD * 2 * R),
    ...dense.forward,
    scatter(paddedScatter(c.dtype).name, 2 * rows + WORD * 3 * R),
    ...(sumK ? [scatter(sumTopK(c.dtype).name, rows + T * d * f)] : []),
    inPhase('backward', 'scatter-grad')(paddedGather(c.dtype).name, 2 * rows + WORD * 3 * R),
    // Y and dO rows in; dg and the pair's sorted position out.
    inPhase('backward', 'scatter-grad')(scatterWgrad(c.dtype).name, 2 * rows + WORD * 4 * R),
    ...dense.backward,
    ...routerBackwardWork(c, routing.keptPairs, 1),
    // The sum over k (or the k = 1 scatter) adds onto the router's share of dX: read and written.
    ...(sumK
      ? [inputGrad(paddedScatter(c.dtype).name, 2 * rows + WORD * 2 * R), inputGrad(sumTopK(c.dtype).name, rows + 2 * T * d * f)]
      : [inputGrad(paddedScatter(c.dtype).name, rows + WORD * 2 * R + 2 * T * d * f)]),
  ];
}

/**
 * The radix sort of the R expert ids (count, scan and scatter per digit pass; the first pass
 * sorts an iota, so it reads no values) and the bins read off the sorted keys by binary search.
 */
function sortWork(c: LayerConfig, mode: MegaBlocksMode): KernelWork[] {
  const { E, R } = workSizes(c);
  const plan = sortPlan(R, sortEndBit(E));
  let count = 0;
  let scan = 0;
  let scatter = 0;
  plan.passes.forEach((p, i) => {
    const hist = (1 << p.bits) * plan.blocks;
    count += WORD * (R + hist);
    scan += WORD * 2 * hist;
    scatter += WORD * ((i === 0 ? 1 : 2) * R + hist + 2 * R);
  });
  const add = inPhase('forward', 'sort');
  const searched = E * Math.ceil(Math.log2(R + 1));
  const bins = mode === 'sparse' ? add(paddedBins.name, WORD * (searched + 3 * (E + 1))) : add(unpaddedBins.name, WORD * (searched + E + 1));
  return [add(radixCount.name, count), add(radixScan.name, scan), add(radixScatter.name, scatter), bins];
}
