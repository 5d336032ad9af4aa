import { describe, expect, it } from 'vitest';
import { compareResults } from '../../src/gate/compare.js';
import { renderGate } from '../../src/render/gate.js';
import { visibleWidth } from '../../src/render/fit-table.js';
import { results, scaled, SWEEP } from '../fixtures/gate/synthetic.js';

const widest = (text: string) => Math.max(...text.split('\n').map((l) => visibleWidth(l)));

describe('renderGate', () => {
  const baseline = results({ cases: SWEEP });
  const slower = compareResults(baseline, scaled(results({ cases: SWEEP, seed: 2 }), 1.3));

  it('shows only the failing rows and says how many it left out', () => {
    const text = renderGate(slower, { color: false, width: 100 });
    const tableRows = text.split('\n').filter((l) => l.startsWith('│') && !l.includes('│ case'));
    expect(tableRows.length).toBeGreaterThan(0);
    expect(tableRows.every((l) => /SLOWER|│\s+│/.test(l))).toBe(true);
    expect(text).not.toMatch(/│ SAME/);
    expect(text).toMatch(/row\(s\) not shown \(.*SAME.*\); --verbose shows every row/);
  });

  it('--verbose shows every row', () => {
    const text = renderGate(slower, { color: false, width: 200, verbose: true });
    expect(text).toMatch(/SAME/);
    expect(text).not.toMatch(/not shown/);
  });

  for (const width of [80, 100, 140]) {
    it(`fits ${width} columns, wrapping notes rather than cutting them`, () => {
      const text = renderGate(slower, { color: true, width, verbose: true });
      expect(widest(text.split('\n').filter((l) => !/summary|PASS|FAIL/.test(l)).join('\n'))).toBeLessThanOrEqual(width);
      expect(text).toMatch(/p10/);
      expect(text).toMatch(/included/);
    });
  }
});
