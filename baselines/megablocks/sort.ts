import { bindingPrelude, grid, LINEAR_WORKGROUP, type KernelSource, type StepEncoder } from '../../kernels/program.js';
import { WORKGROUP_EXCLUSIVE_SCAN } from '../../kernels/routing/workgroup-scan.js';
import type { TrackedBuffer } from '../../src/gpu/allocator.js';

/**
 * A stable LSD radix sort of u32 keys with their positions (MegaBlocks' `ops.sort`, CUB's
 * SortPairs with an iota as values), and the expert bins read off the sorted keys.
 *
 * Each pass sorts by one digit of at most 8 bits with three kernels and no atomics, so the
 * order never depends on thread timing:
 *   count:   per block of 256 keys, how many keys have each digit value;
 *   scan:    one workgroup turns the digit-major [digit][block] counts into exclusive offsets;
 *   scatter: a key goes to its (digit, block) offset plus the number of earlier keys of its
 *            block with the same digit — which is what makes the sort stable.
 * Only the low `endBit` bits are sorted (MegaBlocks' sort_end_bit = ⌈log2 E⌉), split evenly
 * into ⌈endBit/8⌉ passes: one pass for E ≤ 256, two for E ≤ 512.
 */
export const SORT_BLOCK = 256;
const MAX_DIGIT_BITS = 8;
/** The bins kernel keeps every expert's bound in workgroup memory. */
export const MAX_BINS = 512;

/** ⌈log2 n⌉ but at least 1: the bits a key below n needs. */
export function sortEndBit(keyCount: number): number {
  return Math.max(Math.ceil(Math.log2(Math.max(keyCount, 1))), 1);
}

export interface SortPlan {
  count: number;
  blocks: number;
  passes: { shift: number; bits: number }[];
  /** Entries of the [digit][block] count buffer (the largest pass's). */
  histEntries: number;
  /** Whether ping-pong buffers are needed (two or more passes). */
  needsTemp: boolean;
}

export function sortPlan(count: number, endBit: number): SortPlan {
  const passCount = Math.max(1, Math.ceil(endBit / MAX_DIGIT_BITS));
  const bits = Math.ceil(endBit / passCount);
  const passes = Array.from({ length: passCount }, (_, i) => ({ shift: i * bits, bits: Math.min(bits, endBit - i * bits) }));
  const blocks = Math.max(1, Math.ceil(count / SORT_BLOCK));
  return { count, blocks, passes, histEntries: (1 << bits) * blocks, needsTemp: passCount > 1 };
}

const PASS_PARAMS = [
  { name: 'count', type: 'u32' },
  { name: 'blocks', type: 'u32' },
  { name: 'shift', type: 'u32' },
  { name: 'radix', type: 'u32' },
  { name: 'iota', type: 'u32' },
] as const;

function source(name: string, buffers: [string, 'u32', 'read' | 'read_write'][], params: KernelSource['params'], body: string): KernelSource {
  const bindings = buffers.map(([name, type, access]) => ({ name, type, access }));
  const code = `${bindingPrelude({ bindings, params })}
${body}`;
  return { name, code, bindings, params };
}

/** Loads the block's digits into workgroup memory; keys past the end get a digit no key has. */
const LOAD_DIGITS = `
var<workgroup> digits: array<u32, ${SORT_BLOCK}>;

fn loadDigits(block: u32, li: u32) -> u32 {
  let i = block * ${SORT_BLOCK}u + li;
  var digit = 0xffffffffu;
  if (i < P.count) { digit = (keysIn[i] >> P.shift) & (P.radix - 1u); }
  digits[li] = digit;
  workgroupBarrier();
  return digit;
}`;

export const radixCount = source(
  'sort-radix-count',
  [
    ['keysIn', 'u32', 'read'],
    ['hist', 'u32', 'read_write'],
  ],
  PASS_PARAMS,
  `${LOAD_DIGITS}
@compute @workgroup_size(${SORT_BLOCK})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let block = ${LINEAR_WORKGROUP};
  if (block >= P.blocks) { return; }
  loadDigits(block, li);
  if (li < P.radix) {
    var n = 0u;
    for (var j = 0u; j < ${SORT_BLOCK}u; j++) { n += select(0u, 1u, digits[j] == li); }
    hist[li * P.blocks + block] = n;
  }
}`,
);

/** In-place exclusive scan of `entries` counts by one workgroup: contiguous runs, then a scan of the runs. */
export const radixScan = source(
  'sort-radix-scan',
  [['hist', 'u32', 'read_write']],
  [{ name: 'entries', type: 'u32' }],
  `${WORKGROUP_EXCLUSIVE_SCAN}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  let run = (P.entries + 255u) / 256u;
  let first = min(li * run, P.entries);
  let last = min(first + run, P.entries);
  var local = 0u;
  for (var q = first; q < last; q++) { local += hist[q]; }
  var offset = workgroupExclusiveScan(li, local);
  for (var q = first; q < last; q++) {
    let c = hist[q];
    hist[q] = offset;
    offset += c;
  }
}`,
);

export const radixScatter = source(
  'sort-radix-scatter',
  [
    ['keysIn', 'u32', 'read'],
    ['valuesIn', 'u32', 'read'],
    ['hist', 'u32', 'read'],
    ['keysOut', 'u32', 'read_write'],
    ['valuesOut', 'u32', 'read_write'],
  ],
  PASS_PARAMS,
  `${LOAD_DIGITS}
@compute @workgroup_size(${SORT_BLOCK})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let block = ${LINEAR_WORKGROUP};
  if (block >= P.blocks) { return; }
  let digit = loadDigits(block, li);
  let i = block * ${SORT_BLOCK}u + li;
  if (i >= P.count) { return; }
  var rank = 0u;
  for (var j = 0u; j < li; j++) { rank += select(0u, 1u, digits[j] == digit); }
  let dst = hist[digit * P.blocks + block] + rank;
  keysOut[dst] = keysIn[i];
  valuesOut[dst] = select(valuesIn[i], i, P.iota == 1u);
}`,
);

export interface SortBuffers {
  /** Keys to sort (not modified). */
  keysIn: TrackedBuffer;
  keysOut: TrackedBuffer;
  /** Original position of each sorted key (the permutation sorted → input). */
  valuesOut: TrackedBuffer;
  /** Ping-pong buffers of `count` u32 each, needed when the plan has two or more passes. */
  tempKeys: TrackedBuffer | null;
  tempValues: TrackedBuffer | null;
  /** plan.histEntries u32. */
  hist: TrackedBuffer;
}

/** Records the passes; the last one always lands in keysOut/valuesOut. */
export async function encodeRadixSort(enc: StepEncoder, plan: SortPlan, b: SortBuffers): Promise<void> {
  const n = plan.passes.length;
  if (n > 1 && (!b.tempKeys || !b.tempValues)) throw new Error(`radix sort: ${n} passes need temporary key and value buffers`);
  let keys = b.keysIn;
  let values = b.keysIn;
  for (let p = 0; p < n; p++) {
    const toOut = (n - 1 - p) % 2 === 0;
    const keysOut = toOut ? b.keysOut : b.tempKeys!;
    const valuesOut = toOut ? b.valuesOut : b.tempValues!;
    const { shift, bits } = plan.passes[p];
    const params = { count: plan.count, blocks: plan.blocks, shift, radix: 1 << bits, iota: p === 0 ? 1 : 0 };
    const workgroups = grid(plan.blocks);
    await enc.dispatch({ source: radixCount, params, buffers: { keysIn: keys, hist: b.hist }, workgroups });
    await enc.dispatch({ source: radixScan, params: { entries: (1 << bits) * plan.blocks }, buffers: { hist: b.hist }, workgroups: 1 });
    await enc.dispatch({ source: radixScatter, params, buffers: { keysIn: keys, valuesIn: values, hist: b.hist, keysOut, valuesOut }, workgroups });
    keys = keysOut;
    values = valuesOut;
  }
}

/**
 * Expert bins from the sorted keys: bins[e+1] = the number of keys ≤ e (MegaBlocks' histogram
 * followed by its inclusive cumsum, read off the sorted keys by binary search, so no counting
 * atomics are needed), with bins[0] = 0. With padding, also the bins rounded up to `blocking`
 * rows each (padded_bins, the same layout) and the first GEMM row tile (of tileRows rows) of
 * each padded bin.
 */
export function binsSource(padded: boolean): KernelSource {
  const outputs: [string, 'u32', 'read_write'][] = [['bins', 'u32', 'read_write']];
  if (padded) outputs.push(['paddedBins', 'u32', 'read_write'], ['tileOffsets', 'u32', 'read_write']);
  return source(
    padded ? 'sort-padded-bins' : 'sort-bins',
    [['sortedKeys', 'u32', 'read'], ...outputs],
    [
      { name: 'count', type: 'u32' },
      { name: 'E', type: 'u32' },
      { name: 'blocking', type: 'u32' },
      { name: 'tileRows', type: 'u32' },
    ],
    `var<workgroup> ends: array<u32, ${MAX_BINS}>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  for (var e = li; e < P.E; e += 256u) {
    var lo = 0u;
    var hi = P.count;
    while (lo < hi) {
      let mid = (lo + hi) / 2u;
      if (sortedKeys[mid] <= e) { lo = mid + 1u; } else { hi = mid; }
    }
    ends[e] = lo;
    bins[e + 1u] = lo;
  }
  if (li == 0u) { bins[0] = 0u; }
  ${
    padded
      ? `workgroupBarrier();
  // E ≤ ${MAX_BINS}: one thread's serial scan is cheaper than synchronising a parallel one.
  if (li == 0u) {
    var start = 0u;
    var rows = 0u;
    var tilesSoFar = 0u;
    paddedBins[0] = 0u;
    tileOffsets[0] = 0u;
    for (var e = 0u; e < P.E; e++) {
      let n = ends[e] - start;
      start = ends[e];
      let paddedRows = (n + P.blocking - 1u) / P.blocking * P.blocking;
      rows += paddedRows;
      tilesSoFar += (paddedRows + P.tileRows - 1u) / P.tileRows;
      paddedBins[e + 1u] = rows;
      tileOffsets[e + 1u] = tilesSoFar;
    }
  }`
      : ''
  }
}`,
  );
}

export const unpaddedBins = binsSource(false);
export const paddedBins = binsSource(true);

export async function encodeBins(
  enc: StepEncoder,
  shape: { count: number; experts: number; blocking: number; tileRows: number },
  b: { sortedKeys: TrackedBuffer; bins: TrackedBuffer; paddedBins?: TrackedBuffer; tileOffsets?: TrackedBuffer },
): Promise<void> {
  if (shape.experts > MAX_BINS) throw new Error(`bins: ${shape.experts} experts exceed ${MAX_BINS}`);
  // Padded bins (both paddedBins and tileOffsets given) or not; the dispatch refuses a mix.
  await enc.dispatch({
    source: b.paddedBins ? paddedBins : unpaddedBins,
    params: { count: shape.count, E: shape.experts, blocking: shape.blocking, tileRows: shape.tileRows },
    buffers: b,
    workgroups: 1,
  });
}
