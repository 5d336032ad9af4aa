import { describe, expect, it } from 'vitest';
import { layerConfig, type LayerConfig } from '../../src/config.js';
import { summaryFromLoads } from '../../src/plan/routing.js';
import { findStrategy } from '../../src/registry.js';
import { BLOCK_TOKENS } from '../../kernels/routing/metadata.js';
import { dgParts } from '../../src/zero-buffer/expert-gemm.js';

/**
 * Issue 18 item 3: each strategy's step buffers, derived here from docs/design.md (#the-layer, #strategies) and the README's
 * dtype rules by hand (a = R·h·f bytes, GShard's mask T·E·C bytes, ...), independently of the
 * table code, then compared with the table name by name. Two sizes come from kernel tilings, not
 * from the design, and are taken from the kernels: the routing scan's token blocks and the
 * partial sums of dg per row.
 */
const LOADS = [70, 60, 40, 30];
const ceil4 = (bytes: number) => Math.max(4, Math.ceil(bytes / 4) * 4);

function sizes(strategy: string, c: LayerConfig): Record<string, number> {
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
  const R = T * k;
  const f = c.dtype === 'f16' ? 2 : 4; // activations, X/O/dX and their gradients
  const F = 4; // router state (probabilities, gates, dz) stays f32
  const U = 4; // index lists are u32
  const swiglu = c.activation === 'swiglu';
  const C = k * Math.floor(c.capacityFactor * Math.ceil(T / E)); // DESIGN §2 capacity
  const blocks = Math.ceil(T / BLOCK_TOKENS) * E * k;
  const router = { routerProbs: T * E * F, gates: R * F, routerGrad: T * E * F, O: T * d * f, dX: T * d * f };
  const scanOffsets = { blockCounts: blocks * U, expertSlotOffsets: (E * k + 1) * U, expertTileOffsets: (E + 1) * U, slotTileOffsets: k * (E + 1) * U };
  if (strategy === 'zero-buffer') {
    return {
      ...router,
      ...scanOffsets,
      tokenExperts: R * U,
      expertTokenIndices: R * U,
      tokenSlotMap: R * U,
      rowGates: R * F,
      expertOffsets: (E + 1) * U,
      a: R * h * f,
      ...(swiglu && { b: R * h * f }),
      combineRows: T * d * f,
      inputGradRows: T * d * f,
      dgPartial: R * dgParts(h) * F,
    };
  }
  if (strategy === 'scattermoe') {
    // Sorted indices only, nothing padded; what torch autograd keeps around ScatterMoE's two
    // ParallelLinears (SwiGLU's [R,2h] output, silu(a), u, the scattered outputs Y), the grouped
    // X of the first one's backward, and the activation's autograd gradients.
    const W = swiglu ? 2 * h : h;
    return {
      ...router,
      tokenExperts: R * U,
      sortBlockCounts: Math.ceil(R / BLOCK_TOKENS) * E * U,
      sortPositions: R * U,
      sortSegmentOffsets: (E + 1) * U,
      tileOffsets: (E + 1) * U,
      sortSegmentTileOffsets: (E + 1) * U,
      sortedScatteredIdxs: R * U,
      sortedExpertIdxs: R * U,
      expertOffsets: (E + 1) * U,
      hidden: R * W * f,
      ...(swiglu && { siluA: R * h * f, dSiluA: R * h * f, dB: R * h * f, dA: R * h * f }),
      u: R * h * f,
      Y: R * d * f,
      dg: R * F,
      dU: R * h * f,
      dHidden: R * W * f,
      groupedX: R * d * f,
      pairRows: R * U,
    };
  }
  if (strategy.startsWith('megablocks')) {
    const padded = strategy === 'megablocks';
    // Bins padded to 128 rows each (MegaBlocks' blocked layout), or exactly R rows grouped.
    const P = padded ? LOADS.reduce((n, l) => n + Math.ceil(l / 128) * 128, 0) : R;
    return {
      ...router,
      tokenExperts: R * U,
      sortHist: E * U,
      binIds: R * U,
      indices: R * U,
      bins: (E + 1) * U,
      ...(padded && { paddedBins: (E + 1) * U }),
      tileOffsets: (E + 1) * U,
      Xperm: P * d * f,
      a: P * h * f,
      // silu(a) as well: autograd's mul keeps both factors (fidelity/megablocks.json).
      ...(swiglu && { b: P * h * f, siluA: P * h * f }),
      u: P * h * f,
      Y: P * d * f,
      scattered: T * k * d * f,
      dY: P * d * f,
      dg: R * F,
      pairRows: R * U,
      dU: P * h * f,
      dA: P * h * f,
      ...(swiglu && { dB: P * h * f }),
      dXperm: P * d * f,
      scatteredGrad: T * k * d * f,
    };
  }
  const capacity = {
    ...router,
    ...scanOffsets,
    tokenExperts: R * U,
    expertTokenIndices: R * U,
    slots: R * U,
    expertOffsets: (E + 1) * U,
    dispatched: E * C * d * f,
    a: E * C * h * f,
    ...(swiglu && { b: E * C * h * f, siluA: E * C * h * f }), // mul keeps silu(a) (fidelity/tutel.json)
    u: E * C * h * f,
    y: E * C * d * f,
    dY: E * C * d * f,
    dgPartial: E * C * F, // one gate gradient per capacity slot
    dU: E * C * h * f,
    da: E * C * h * f,
    ...(swiglu && { db: E * C * h * f }),
    dDispatched: E * C * d * f,
  };
  if (strategy === 'tutel') return capacity;
  // GShard (DeepSpeed): f32 gating tensors [T,E,C] (k = 2: combine1_sec, combine2_sec and their
  // sum), combine_weights.bool() (1 byte an element, rows padded to words), the one-hot locations
  // saved by the gating einsums ([T,C] f32 per pair for k ≤ 2, [T,E,C] f32 for k > 2), and the
  // mask and combine weights cast to the input dtype (fidelity/gshard.json).
  const Q = E * C;
  return {
    ...capacity,
    // combine_weights.type_as(input) is the f32 tensor itself at f32, a 16-bit copy otherwise.
    ...(f === 2 && { combineF32: T * Q * 4 }),
    dispatchBool: T * Math.ceil(Q / 4) * 4,
    ...(k === 2 && { combine1Sec: T * Q * 4, combine2Sec: T * Q * 4, locations1Sc: T * C * 4, locations2Sc: T * C * 4 }),
    ...(k === 1 && { locations1Sc: T * C * 4 }),
    ...(k > 2 && { locationsSc: T * Q * 4 }),
    dispatchMask: T * Q * f,
    combineWeights: T * Q * f,
    dcombine: T * Q * f,
  };
}

function expectTable(strategy: string, c: LayerConfig) {
  const s = findStrategy(strategy);
  const table = s.bufferTable(c, summaryFromLoads(c, s.dropless, LOADS), { chunkBytes: 2 ** 30 });
  const want = sizes(strategy, c);
  const got = Object.fromEntries(table.step.map((b) => [b.name, b.bytes]));
  expect(Object.keys(got).sort(), `${strategy}: the table's buffers`).toEqual(Object.keys(want).sort());
  for (const [name, bytes] of Object.entries(want)) expect(got[name], `${strategy} ${name}`).toBe(ceil4(bytes));
  return got;
}

describe('step buffer sizes from first principles (docs/design.md#the-layer and #strategies), per strategy', () => {
  const base = { tokens: 100, hidden: 12, ffn: 20, experts: 4, topK: 2, capacityFactor: 1 };
  for (const strategy of ['zero-buffer', 'megablocks', 'megablocks-grouped', 'scattermoe', 'tutel', 'gshard']) {
    for (const variant of [{}, { dtype: 'f16' as const }, { activation: 'gelu' as const, capacityFactor: 1.5 }]) {
      it(`${strategy} ${JSON.stringify(variant)}`, () => {
        const got = expectTable(strategy, layerConfig({ ...base, ...variant }));
        if (strategy === 'zero-buffer') {
          // DESIGN §3's own figure: indices and gates 16·R + 4·(E+1) bytes, no [R,d] buffer.
          const R = base.tokens * base.topK;
          expect(got.tokenExperts + got.expertTokenIndices + got.tokenSlotMap + got.rowGates + got.expertOffsets).toBe(16 * R + 4 * (base.experts + 1));
        }
      });
    }
  }
});
