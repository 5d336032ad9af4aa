import type { LayerConfig } from '../../src/config.js';

/** A named config and, optionally, a forced chunk limit in bytes. */
export type GridCase = [string, Partial<LayerConfig>, number?];

/** The edge shapes every strategy is verified on (issue grid: docs/design.md#the-layer edge cases). */
export const EDGE_GRID: GridCase[] = [
  ['one expert (E=1)', { tokens: 40, hidden: 12, ffn: 20, experts: 1, topK: 1 }],
  ['k=1 with E>1', { tokens: 50, hidden: 16, ffn: 24, experts: 6, topK: 1 }],
  ['k=E', { tokens: 30, hidden: 8, ffn: 12, experts: 4, topK: 4 }],
  ['k=8 with E=64', { tokens: 96, hidden: 16, ffn: 16, experts: 64, topK: 8 }],
  ['a single token (T=1)', { tokens: 1, hidden: 10, ffn: 14, experts: 5, topK: 2 }],
  ['T, d, h off every multiple of 4 and of the tile', { tokens: 131, hidden: 67, ffn: 69, experts: 7, topK: 3 }],
  ['plain silu MLP', { tokens: 60, hidden: 20, ffn: 36, experts: 5, topK: 2, activation: 'silu' }],
  ['plain gelu MLP', { tokens: 60, hidden: 20, ffn: 36, experts: 5, topK: 2, activation: 'gelu' }],
  ['renormalisation off', { tokens: 70, hidden: 24, ffn: 40, experts: 6, topK: 3, normalizeGates: false }],
  ['every token to one expert (zipf:30 skew)', { tokens: 64, hidden: 16, ffn: 16, experts: 8, topK: 1, skew: { kind: 'zipf', s: 30 } }],
  ['load-balancing loss on', { tokens: 64, hidden: 16, ffn: 24, experts: 8, topK: 2, auxLoss: 0.01 }],
];
