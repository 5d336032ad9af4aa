import { afterAll, describe, expect, it } from 'vitest';
import { EXPECTED_TOLERANCE, MIN_PAIRS_PER_EXPERT, validatePlan, VALIDATION_GRID, type ValidationResult, type ValidationRow } from '../../src/plan/validate.js';
import { renderValidation } from '../../src/render/plan.js';
import { findStrategy, STRATEGIES } from '../../src/registry.js';
import { testGpu } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

/**
 * f16 rows on part of the grid, to keep the test short (`plan --validate` runs all of it at both
 * dtypes): odd sizes with gelu, k = 1 and no checkpointing; silu with full checkpointing; chunked
 * tensors (2-byte elements chunk differently); Zipf skew.
 */
const F16_GRID = [VALIDATION_GRID[1], VALIDATION_GRID[2], VALIDATION_GRID[5], VALIDATION_GRID[6]];

const label = (row: ValidationRow) => `${row.strategy} ${row.dtype} ${row.shape}`;

/**
 * The model against the allocator, every strategy on the lavapipe grid (docs/design.md#memory), at f32
 * and at f16 (lavapipe has shader-f16): with the realised routing read back mid-step it must be
 * exact; with expected routing within 2% where the claim is made (uniform, ≥ 64 pairs per
 * expert, not a cf = 0 capacity strategy). A strategy not converted to f16 yet gives
 * 'unsupported' f16 rows, which pass; zero-buffer runs at f16.
 */
describe('plan model = allocator on the validation grid', () => {
  let f32: ValidationResult;
  let f16: ValidationResult;
  let rows: ValidationRow[];

  it('runs every strategy on every shape of the grid at f32, and on part of it at f16', async () => {
    const gpu = await testGpu();
    expect(gpu.hasF16).toBe(true);
    f32 = await validatePlan(gpu, { dtypes: ['f32'] });
    const progress: string[] = [];
    f16 = await validatePlan(gpu, { dtypes: ['f16'], grid: F16_GRID, onProgress: (m) => progress.push(m) });
    // Each row its own count: [1/n] … [n/n], never one number repeated for every strategy.
    const total = F16_GRID.length * STRATEGIES.length;
    expect(progress.map((m) => /^\[(\d+)\/(\d+)\]/.exec(m)!.slice(1).map(Number))).toEqual(Array.from({ length: total }, (_, i) => [i + 1, total]));
    rows = [...f32.rows, ...f16.rows];
    expect([f32.dtypes, f16.dtypes, f16.skipped]).toEqual([['f32'], ['f16'], []]);
    expect(f32.rows).toHaveLength(VALIDATION_GRID.length * STRATEGIES.length);
    expect(f16.rows).toHaveLength(F16_GRID.length * STRATEGIES.length);
    for (const row of f32.rows) expect(row.status, `${label(row)}: ${row.message}`).toBe('ok');
    for (const row of f16.rows) {
      // Only f16 itself may be what a strategy cannot run (its f32 rows all ran).
      if (row.status === 'unsupported') expect(row.message, label(row)).toMatch(/f16/);
      else expect(row.status, `${label(row)}: ${row.message}`).toBe('ok');
    }
    expect(f16.rows.filter((r) => r.strategy === 'zero-buffer' && r.status === 'ok')).toHaveLength(F16_GRID.length);
  }, 600_000);

  it('given the realised routing, equals the allocator to the byte (baseline, step peak, activation peak, saved)', () => {
    for (const row of rows.filter((r) => r.status === 'ok')) expect(row.realised, label(row)).toEqual(row.measured);
  });

  it('reports reserved beside the allocated peak: at least it (the caching pool keeps what phases freed)', () => {
    for (const row of rows.filter((r) => r.status === 'ok')) expect(row.reservedPeak, label(row)).toBeGreaterThanOrEqual(row.measured!.stepPeak);
  });

  it('an f16 row holds less than its f32 row, and at least half', () => {
    for (const row of f16.rows.filter((r) => r.status === 'ok')) {
      const wide = f32.rows.find((r) => r.strategy === row.strategy && r.shape === row.shape)!;
      expect(row.measured!.activationPeak, label(row)).toBeLessThan(wide.measured!.activationPeak);
      expect(row.measured!.activationPeak, label(row)).toBeGreaterThanOrEqual(wide.measured!.activationPeak / 2);
      expect(row.measured!.baseline, label(row)).toBeLessThan(wide.measured!.baseline);
    }
  });

  it('given expected routing, is within 2% under uniform routing at ≥ 64 pairs per expert', () => {
    const checked = rows.filter((r) => r.checked && r.status === 'ok');
    // Every strategy is held to the claim on several shapes, chunked and unchunked, at each dtype it runs.
    for (const s of STRATEGIES) expect(checked.filter((r) => r.strategy === s.id && r.dtype === 'f32').length, s.id).toBeGreaterThanOrEqual(4);
    for (const s of STRATEGIES.filter((x) => f16.rows.some((r) => r.strategy === x.id && r.status === 'ok'))) {
      expect(checked.filter((r) => r.strategy === s.id && r.dtype === 'f16').length, s.id).toBeGreaterThanOrEqual(3);
    }
    for (const row of checked) {
      expect(row.pairsPerExpert).toBeGreaterThanOrEqual(MIN_PAIRS_PER_EXPERT);
      expect(row.expectedError, label(row)).toBeLessThanOrEqual(EXPECTED_TOLERANCE);
    }
    expect(rows.some((r) => r.skew.startsWith('zipf') && r.dtype === 'f16')).toBe(true);
    expect(f32.pass && f16.pass).toBe(true);
    const text = renderValidation(f16, { color: false });
    expect(text).toMatch(/PASS: on the \d+ rows that ran \(f16\)/);
    if (f16.rows.some((r) => r.status === 'unsupported')) expect(text).toMatch(/not run: \S+ at f16, \d+ rows? \(.*f16/);
    // Not a terminal: the table fits 100 columns (only the shape label wraps).
    expect(Math.max(...text.split('\n').filter((l) => /^[┌│└]/.test(l)).map((l) => [...l].length))).toBeLessThanOrEqual(100);
  });

  it('without shader-f16, runs the f32 rows and says why the f16 ones were skipped', async () => {
    const gpu = await testGpu();
    const v = await validatePlan({ ...gpu, hasF16: false }, { strategies: [findStrategy('zero-buffer')], grid: [VALIDATION_GRID[6]] });
    expect(v.rows.map((r) => [r.dtype, r.status])).toEqual([['f32', 'ok']]);
    expect(v.dtypes).toEqual(['f32']);
    expect(v.skipped).toHaveLength(1);
    expect(v.skipped[0]).toMatch(/f16 rows skipped: .* lacks the shader-f16 feature/);
    expect(v.pass).toBe(true);
    expect(renderValidation(v, { color: false })).toContain(v.skipped[0]);
  });
});
