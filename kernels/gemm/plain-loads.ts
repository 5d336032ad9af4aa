import { ROWS_ALIGNED } from './segment-vectors.js';
import type { VectorLoads } from './spec.js';

/** An operand read straight from a buffer: the binding's name and the WGSL index of its element (m, k) for A, (k, n) for B. */
export type PlainOperand = readonly [buffer: string, index: string];

export interface PlainOperands {
  A?: PlainOperand;
  B?: PlainOperand;
  B2?: PlainOperand;
}

const SIGNATURE = { A: 'loadA(t: Tile, m: u32, k: u32)', B: 'loadB(t: Tile, k: u32, n: u32)', B2: 'loadB2(t: Tile, k: u32, n: u32)' } as const;
const VECTOR_SIGNATURE = { A: 'loadA8(t: Tile, m: u32, k: u32)', B: 'loadB8(t: Tile, k: u32, n: u32)', B2: 'loadB28(t: Tile, k: u32, n: u32)' } as const;

/**
 * The load hooks of operands read straight from a buffer (a gather through an index list
 * included), each written once: the scalar hook (spec.ts, every engine) and its 8-wide twin for
 * the matrix engine's vector staging (VectorLoads; `NAME8` reads the 8 halves from the scalar
 * hook's index). Hooks that branch per K (dX's concatenated halves) or compute on load
 * (zero-buffer's recomputation) stay with their strategy. `vectors` is the 8-wide hooks alone,
 * for a spec that adds its own beside them.
 */
export function plainLoads(operands: PlainOperands, when = ROWS_ALIGNED): { functions: string; vectors: string; vectorLoads: VectorLoads } {
  const present = (['A', 'B', 'B2'] as const).filter((which) => operands[which]);
  const functions = present.map((which) => `fn ${SIGNATURE[which]} -> f32 { return f32(${operands[which]![0]}[${operands[which]![1]}]); }`).join('\n');
  const vectors = present.map((which) => `fn ${VECTOR_SIGNATURE[which]} -> mat2x4<f16> { return ${operands[which]![0]}8(${operands[which]![1]}); }`).join('\n');
  return { functions, vectors, vectorLoads: { when, functions: vectors } };
}
