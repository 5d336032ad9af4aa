/**
 * WGSL: an exclusive prefix sum of one u32 per invocation over a 256-invocation workgroup
 * (Hillis–Steele in workgroup memory). Call it from uniform control flow: it has barriers.
 * Used by the routing-metadata scan and the radix sort's scan.
 */
export const WORKGROUP_EXCLUSIVE_SCAN = `
var<workgroup> scanPartial: array<u32, 256>;

fn workgroupExclusiveScan(li: u32, value: u32) -> u32 {
  scanPartial[li] = value;
  workgroupBarrier();
  for (var step = 1u; step < 256u; step *= 2u) {
    var add = 0u;
    if (li >= step) { add = scanPartial[li - step]; }
    workgroupBarrier();
    scanPartial[li] += add;
    workgroupBarrier();
  }
  return scanPartial[li] - value;
}`;
