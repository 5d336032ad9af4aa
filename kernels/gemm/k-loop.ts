/* The K-loop skeleton both GEMM engines run (kernels/gemm/engines/), in one place. */

/**
 * The one K loop both engines run. `load` issues a K step's global loads into registers (it sees
 * the WGSL `k0`, the step's first k), `store` moves the registers into workgroup buffer `buf`,
 * `multiply` consumes buffer `buf`. Single-buffered: store, barrier, load the next step, multiply,
 * barrier (the next step's loads are in flight during the multiply). Double-buffered: the next
 * step is stored into the other buffer after the multiply, one barrier per step.
 */
export function kLoop(o: { step: number; stages: 1 | 2; load: string; store: string; multiply: string; constantBuffers?: boolean }): string {
  const K = `${o.step}u`;
  const prologue = `{
    let k0 = t.kBegin;
    ${o.load}
  }`;
  if (o.stages === 1)
    return `${prologue}
  for (var kb = t.kBegin; kb < t.kEnd; kb += ${K}) {
    {
      const buf = 0u;
      ${o.store}
    }
    workgroupBarrier();
    if (kb + ${K} < t.kEnd) {
      let k0 = kb + ${K};
      ${o.load}
    }
    {
      const buf = 0u;
      ${o.multiply}
    }
    workgroupBarrier();
  }`;
  if (o.constantBuffers) return unrolledDoubleBuffer(o, prologue);
  // Buffer `cur` is read while the next step goes into the other; the one barrier per step both
  // publishes the next step and tells every thread that the buffer it overwrites next is free.
  return `${prologue}
  {
    const buf = 0u;
    ${o.store}
  }
  workgroupBarrier();
  var cur = 0u;
  for (var kb = t.kBegin; kb < t.kEnd; kb += ${K}) {
    let more = kb + ${K} < t.kEnd;
    if (more) {
      let k0 = kb + ${K};
      ${o.load}
    }
    {
      let buf = cur;
      ${o.multiply}
    }
    if (more) {
      let buf = 1u - cur;
      ${o.store}
    }
    workgroupBarrier();
    cur = 1u - cur;
  }`;
}

/**
 * Double buffering with the loop unrolled over the two buffers, so that `buf` is a constant in
 * every multiply and store: with a run-time buffer index the matrix engine's fragment offsets are
 * not constant, and Dawn's robustness bounds-checks each fragment load (128×128, K 32: 59.8
 * TFLOP/s robust against 88.0 without robustness on the H100; docs/performance.md, session 5).
 */
function unrolledDoubleBuffer(o: { step: number; load: string; store: string; multiply: string }, prologue: string): string {
  const K = `${o.step}u`;
  const half = (from: number, to: number, ahead: string) => `{
      let more = kb + ${ahead} < t.kEnd;
      if (more) {
        let k0 = kb + ${ahead};
        ${o.load}
      }
      {
        const buf = ${from}u;
        ${o.multiply}
      }
      if (more) {
        const buf = ${to}u;
        ${o.store}
      }
      workgroupBarrier();
    }`;
  return `${prologue}
  {
    const buf = 0u;
    ${o.store}
  }
  workgroupBarrier();
  for (var kb = t.kBegin; kb < t.kEnd; kb += 2u * ${K}) {
    ${half(0, 1, K)}
    if (kb + ${K} >= t.kEnd) { break; }
    ${half(1, 0, `2u * ${K}`)}
  }`;
}

/**
 * Warp specialization (SubgroupMatrixOptions.producers): the threads for which `producer` holds
 * only load and store, the others only multiply. Two buffers and the loop unrolled over them, so
 * every buffer index is a constant: in each half step the multipliers read one buffer while the
 * producers fill the other with the next K step, and one barrier both publishes that step and
 * frees the buffer just read. Barriers stay in workgroup-uniform control flow (the conditions are
 * the tile's K range); `producer` is uniform per subgroup, as the matrix builtins need.
 */
export function specializedKLoop(o: { step: number; load: string; store: string; multiply: string; producer: string }): string {
  const K = `${o.step}u`;
  const fill = (ahead: string, buf: number) => `if (${o.producer}) {
      if (kb + ${ahead} < t.kEnd) {
        let k0 = kb + ${ahead};
        ${o.load}
        {
          const buf = ${buf}u;
          ${o.store}
        }
      }
    }`;
  const consume = (buf: number) => `if (!(${o.producer})) {
      const buf = ${buf}u;
      ${o.multiply}
    }`;
  return `if (${o.producer}) {
    let k0 = t.kBegin;
    ${o.load}
    {
      const buf = 0u;
      ${o.store}
    }
  }
  workgroupBarrier();
  for (var kb = t.kBegin; kb < t.kEnd; kb += 2u * ${K}) {
    ${fill(K, 1)}
    ${consume(0)}
    workgroupBarrier();
    if (kb + ${K} < t.kEnd) {
      ${fill(`2u * ${K}`, 0)}
      ${consume(1)}
      workgroupBarrier();
    }
  }`;
}
