import { describe, expect, it } from 'vitest';
import { strategyColor, strategyMarker } from '../../src/render/bench-format.js';
import { STRATEGIES } from '../../src/registry.js';

// Okabe & Ito's eight colours, distinguishable under the common colour-vision deficiencies.
const OKABE_ITO = ['#E69F00', '#56B4E9', '#009E73', '#F0E442', '#0072B2', '#D55E00', '#CC79A7', '#000000'];

describe('strategy palette', () => {
  it('gives every strategy its own colour-blind-safe colour and its own marker shape', () => {
    const colors = STRATEGIES.map((s, i) => strategyColor(s.id, i));
    const markers = STRATEGIES.map((s, i) => strategyMarker(s.id, i));
    for (const c of colors) expect(OKABE_ITO).toContain(c);
    expect(new Set(colors).size).toBe(STRATEGIES.length);
    expect(new Set(markers).size).toBe(STRATEGIES.length);
    // zero-buffer and tutel, once hard to tell apart, differ in colour and in shape.
    expect(strategyColor('zero-buffer', 0)).not.toBe(strategyColor('tutel', 1));
    expect(strategyMarker('zero-buffer', 0)).not.toBe(strategyMarker('tutel', 1));
  });
});
