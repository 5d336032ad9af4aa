import { afterAll, describe, expect, it } from 'vitest';
import { scatterMoE } from '../../../baselines/scattermoe/scattermoe.js';
import { tableFigures } from '../../../src/strategy/buffer-table.js';
import { findPreset, layerConfig, type LayerConfig } from '../../../src/config.js';
import { findStrategy } from '../../../src/registry.js';
import { stepsMatchTable } from '../../helpers/memory.js';
import { testGpu } from '../../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

const MEMORY: [Partial<LayerConfig>, number?][] = [
  [{ tokens: 37, hidden: 9, ffn: 13, experts: 5, topK: 2 }],
  [{ tokens: 100, hidden: 33, ffn: 70, experts: 8, topK: 1, activation: 'gelu' }],
  [{ tokens: 300, hidden: 24, ffn: 40, experts: 8, topK: 4 }, 8000],
  [{ tokens: 64, hidden: 16, ffn: 24, experts: 64, topK: 8, activation: 'silu' }],
  [{ tokens: 64, hidden: 16, ffn: 16, experts: 8, topK: 2, skew: { kind: 'zipf', s: 4 } }],
  [{ tokens: 1, hidden: 10, ffn: 14, experts: 5, topK: 2 }],
];

describe('scattermoe memory: allocator = buffer table, to the byte', () => {
  for (const [partial, chunkBytes] of MEMORY) {
    const config = layerConfig({ seed: 5, ...partial });
    it(`T${config.tokens} d${config.hidden} h${config.ffn} E${config.experts} k${config.topK} ${config.activation}${config.skew.kind === 'zipf' ? ' zipf' : ''}${chunkBytes ? ` chunks ≤ ${chunkBytes} B` : ''}`, async () => {
      const { table } = await stepsMatchTable(scatterMoE, config, chunkBytes);
      const { tokens: T, hidden: d, ffn: h, topK: k } = config;
      const R = T * k;
      const swiglu = config.activation === 'swiglu';
      // Nothing padded: every routed-row tensor has exactly R rows.
      const hiddenRows = swiglu ? ['hidden', 'siluA', 'u', 'dU', 'dSiluA', 'dB', 'dA', 'dHidden'] : ['hidden', 'u', 'dU', 'dHidden'];
      const byName = new Map(table.step.map((s) => [s.name, s]));
      for (const name of hiddenRows) expect(byName.get(name)!.shape, name).toEqual([R, name.endsWith('idden') && swiglu ? 2 * h : h]);
      // What autograd saves between the passes: the first projection's output, silu(a) (SwiGLU's
      // mul keeps it), u, and the scattered expert outputs; the grouped dO reuses Y's storage,
      // so the only [R,d] buffers are Y and grouped_x.
      const saved = table.step.filter((s) => s.tag === 'activations-saved' && s.name !== 'routerProbs').map((s) => s.name);
      expect(saved.sort()).toEqual((swiglu ? ['Y', 'hidden', 'siluA', 'u'] : ['Y', 'hidden', 'u']).sort());
      const rowsByD = table.step.filter((s) => s.shape.reduce((a, b) => a * b, 1) === R * d && !['O', 'dX', ...hiddenRows].includes(s.name));
      expect(rowsByD.map((s) => s.name).sort()).toEqual(['Y', 'groupedX']);
      expect(byName.get('Y')!.shape).toEqual([T, k, d]);
      // The saved index lists, with the GEMMs' expert-aligned blocks (padded_block_idxs) as tile offsets.
      const lists = ['sortedExpertIdxs', 'sortedScatteredIdxs', 'expertOffsets', 'tileOffsets'];
      expect(lists.map((n) => byName.get(n)!.tag)).toEqual(lists.map(() => 'routing-metadata'));
      expect(byName.get('tileOffsets')).toMatchObject({ shape: [config.experts + 1], from: 'sort', to: 'up-grad' });
    });
  }

  it('does not depend on the routing, and its saved bytes are what the design section states', () => {
    const c = layerConfig({ tokens: 100, hidden: 12, ffn: 20, experts: 4, topK: 2 });
    const limits = { chunkBytes: 2 ** 30 };
    const uniform = scatterMoE.bufferTable(c, { expertLoads: [50, 50, 50, 50], keptPairs: 200, droppedPairs: 0, capacity: null }, limits);
    const skewed = scatterMoE.bufferTable(c, { expertLoads: [200, 0, 0, 0], keptPairs: 200, droppedPairs: 0, capacity: null }, limits);
    expect(tableFigures(skewed)).toEqual(tableFigures(uniform));
    const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
    const R = T * k;
    // 4·R·h + R·d floats (SwiGLU) + probabilities, ids, gates, two index lists, offsets and tile offsets.
    expect(tableFigures(uniform).savedForBackward).toBe(4 * (4 * R * h + R * d) + 4 * T * E + 4 * 2 * R + 4 * 2 * R + 4 * 2 * (E + 1));
  });
});

describe('scattermoe against megablocks-grouped and zero-buffer, from the tables (README "ScatterMoE, MegaBlocks and zero-buffer")', () => {
  for (const preset of ['moeblaze-conf4', 'fine-64']) {
    for (const dtype of ['f32', 'f16'] as const) {
      it(`${preset} ${dtype}`, () => {
        const p = findPreset(preset);
        const c = layerConfig({ tokens: p.tokens, hidden: p.hidden[0], ffn: p.ffn === 'x4' ? 4 * p.hidden[0] : p.ffn[0], experts: p.experts[0], topK: p.topK[0], dtype });
        const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
        const R = T * k;
        const f = dtype === 'f16' ? 2 : 4;
        const routing = { expertLoads: new Array(E).fill(R / E), keptPairs: R, droppedPairs: 0, capacity: null };
        const figures = (id: string) => tableFigures(findStrategy(id).bufferTable(c, routing, { chunkBytes: 2 ** 31 }));
        const [scatter, grouped, zero] = ['scattermoe', 'megablocks-grouped', 'zero-buffer'].map(figures);
        // Both keep silu(a) (autograd's mul saves both factors: fidelity/*.json) and two [E+1] lists
        // (expert offsets and tile offsets, MegaBlocks' bins and tile offsets); ScatterMoE keeps no
        // sorted copy of X.
        expect(scatter.savedForBackward - grouped.savedForBackward).toBe(-R * d * f);
        // Both peak in the activation's backward where h > d: six [R,h] tensors each, beside
        // MegaBlocks' X_perm.
        if (h > d) expect([scatter.peakPhase, grouped.peakPhase]).toEqual(['mul-grad', 'act-grad']);
        expect(scatter.activationPeak).toBeLessThan(grouped.activationPeak);
        // Against zero-buffer: u, silu(a) and Y on top of a and b.
        expect(scatter.savedForBackward - zero.savedForBackward).toBeGreaterThanOrEqual((2 * R * h + R * d) * f - 16 * R);
        expect(zero.activationPeak).toBeLessThan(scatter.activationPeak);
      });
    }
  }
});
