import { afterAll, describe, expect, it } from 'vitest';
import { tableFigures } from '../../src/strategy/buffer-table.js';
import { layerConfig, type LayerConfig } from '../../src/config.js';
import { MoELayer } from '../../src/layer.js';
import { zeroBuffer } from '../../src/zero-buffer/zero-buffer.js';
import { memoryFigures } from '../helpers/memory.js';
import { testGpu } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

const CONFIGS: [Partial<LayerConfig>, number?][] = [
  [{ tokens: 37, hidden: 9, ffn: 13, experts: 5, topK: 2 }],
  [{ tokens: 100, hidden: 33, ffn: 70, experts: 8, topK: 2, checkpoint: 'none' }],
  [{ tokens: 100, hidden: 33, ffn: 70, experts: 8, topK: 2, checkpoint: 'full', activation: 'gelu' }],
  [{ tokens: 300, hidden: 24, ffn: 40, experts: 8, topK: 4 }, 8000],
  [{ tokens: 64, hidden: 16, ffn: 24, experts: 64, topK: 8, activation: "silu" }],
];

describe('zero-buffer memory: allocator = buffer table, to the byte', () => {
  for (const [partial, chunkBytes] of CONFIGS) {
    const config = layerConfig(partial);
    it(`T${config.tokens} d${config.hidden} h${config.ffn} E${config.experts} k${config.topK} ${config.activation} ${config.checkpoint}${chunkBytes ? ` chunks ≤ ${chunkBytes} B` : ''}`, async () => {
      const gpu = await testGpu();
      const layer = await MoELayer.fromConfig(gpu, config, { chunkBytes });
      layer.randomize();
      const first = await layer.trainStep();
      const second = await layer.trainStep();
      layer.destroy();
      // Zero-buffer's memory does not depend on the routing: every pair has a row.
      const R = config.tokens * config.topK;
      const table = zeroBuffer.bufferTable(config, { expertLoads: [], keptPairs: R, droppedPairs: 0, capacity: null }, { chunkBytes: layer.chunkBytes });
      const predicted = tableFigures(table);
      for (const measured of [first, second]) {
        expect(memoryFigures(measured)).toEqual(memoryFigures(predicted));
      }
      // No routed-rows-by-d buffer anywhere (scratch row blocks hold at most T rows), and with
      // `activations` only a and b are saved [R,h].
      const { hidden: d, ffn: h } = config;
      for (const s of table.step) {
        const rowsByD = s.shape.length === 2 && s.shape[1] === d && s.shape[0] > config.tokens;
        expect(rowsByD || (s.shape.length === 3 && s.shape[2] === d), `${s.name} [${s.shape}]`).toBe(false);
      }
      const savedRH = table.step.filter((s) => s.tag === 'activations-saved' && s.shape[0] === R && s.shape[1] === h).map((s) => s.name);
      if (config.checkpoint === 'activations') expect(savedRH.sort()).toEqual(config.activation === 'swiglu' ? ['a', 'b'] : ['a']);
      if (config.checkpoint === 'full') expect(savedRH).toEqual([]);
    });
  }
});
