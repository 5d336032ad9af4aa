import { afterAll, describe, expect, it } from 'vitest';
import { layerConfig, type LayerConfig } from '../../src/config.js';
import { MoELayer } from '../../src/layer.js';
import { STRATEGIES } from '../../src/registry.js';
import { testGpu } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

// At least 16 tokens per expert in each: the regime the MoEBlaze claim is about.
const CONFIGS: Partial<LayerConfig>[] = [
  { tokens: 128, hidden: 32, ffn: 64, experts: 8, topK: 1 },
  { tokens: 256, hidden: 32, ffn: 48, experts: 8, topK: 2 },
  { tokens: 96, hidden: 24, ffn: 40, experts: 4, topK: 4, activation: 'gelu' },
];

describe('zero-buffer keeps less than every baseline', () => {
  for (const partial of CONFIGS) {
    const c = layerConfig({ seed: 5, ...partial });
    it(`T${c.tokens} d${c.hidden} h${c.ffn} E${c.experts} k${c.topK} ${c.activation}`, async () => {
      const gpu = await testGpu();
      const figures = new Map<string, { activationPeak: number; saved: number }>();
      for (const s of STRATEGIES) {
        const layer = await MoELayer.create(gpu, { tokens: c.tokens, hidden: c.hidden, ffn: c.ffn, experts: c.experts, topK: c.topK, activation: c.activation, impl: s.id, seed: c.seed });
        layer.randomize();
        const m = await layer.trainStep();
        layer.destroy();
        figures.set(s.id, { activationPeak: m.activationPeak, saved: m.savedForBackward ?? NaN });
      }
      const zero = figures.get('zero-buffer')!;
      for (const [id, f] of figures) {
        if (id === 'zero-buffer') continue;
        expect.soft(zero.activationPeak, `activation peak vs ${id}`).toBeLessThan(f.activationPeak);
        expect.soft(zero.saved, `saved for backward vs ${id}`).toBeLessThan(f.saved);
      }
    });
  }
});
