import { afterAll, describe, expect, it } from 'vitest';
import { EXPECTED_TOLERANCE, MIN_PAIRS_PER_EXPERT, validatePlan, VALIDATION_GRID, type ValidationResult } from '../../src/plan/validate.js';
import { STRATEGIES } from '../../src/strategies/index.js';
import { testGpu } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

/**
 * The model against the allocator, every strategy on the lavapipe grid (DESIGN.md §4): with the
 * realised routing read back mid-step it must be exact; with expected routing within 2% where
 * the claim is made (uniform, ≥ 64 pairs per expert, not a cf = 0 capacity strategy).
 */
describe('plan model = allocator on the validation grid', () => {
  let result: ValidationResult;

  it('runs every strategy on every shape of the grid', async () => {
    result = await validatePlan(await testGpu());
    expect(result.rows).toHaveLength(VALIDATION_GRID.length * STRATEGIES.length);
    for (const row of result.rows) expect(row.status, `${row.strategy} ${row.shape}: ${row.message}`).toBe('ok');
  }, 600_000);

  it('given the realised routing, equals the allocator to the byte (baseline, step peak, activation peak, saved)', () => {
    for (const row of result.rows) expect(row.realised, `${row.strategy} ${row.shape}`).toEqual(row.measured);
  });

  it('given expected routing, is within 2% under uniform routing at ≥ 64 pairs per expert', () => {
    const checked = result.rows.filter((r) => r.checked);
    // Every strategy is held to the claim on several shapes, chunked and unchunked.
    for (const s of STRATEGIES) expect(checked.filter((r) => r.strategy === s.id).length, s.id).toBeGreaterThanOrEqual(4);
    for (const row of checked) {
      expect(row.pairsPerExpert).toBeGreaterThanOrEqual(MIN_PAIRS_PER_EXPERT);
      expect(row.expectedError, `${row.strategy} ${row.shape}`).toBeLessThanOrEqual(EXPECTED_TOLERANCE);
    }
    expect(result.rows.some((r) => r.skew.startsWith('zipf'))).toBe(true);
    expect(result.pass).toBe(true);
  });
});
