import { describe, expect, it } from 'vitest';
import { renderBenchmarkAction } from '../../src/render/bench-action.js';
import { benchFixture } from '../helpers/bench-fixture.js';

const fixture = benchFixture;

describe('renderBenchmarkAction', () => {
  const results = fixture();
  const entries = renderBenchmarkAction(results);

  it('emits customSmallerIsBetter entries: name, unit, numeric value, optional string range and extra', () => {
    for (const e of entries) {
      expect(Object.keys(e).every((k) => ['name', 'unit', 'value', 'range', 'extra'].includes(k))).toBe(true);
      expect(typeof e.name).toBe('string');
      expect(['ms', 'bytes']).toContain(e.unit);
      expect(Number.isFinite(e.value)).toBe(true);
      expect(e.value).toBeGreaterThan(0);
      if (e.range !== undefined) expect(e.range).toMatch(/^± \d+(\.\d+)?(e-?\d+)?$/);
      if (e.extra !== undefined) expect(typeof e.extra).toBe('string');
    }
    // Survives a JSON round trip unchanged: the action reads a file.
    expect(JSON.parse(JSON.stringify(entries))).toEqual(entries);
  });

  it('has step time, step peak and activation peak for each ok case and nothing for the others', () => {
    const ok = results.cases.filter((c) => c.status === 'ok');
    expect(entries).toHaveLength(ok.length * 3);
    expect(new Set(entries.map((e) => e.name)).size).toBe(entries.length);
    for (const c of results.cases) {
      const mine = entries.filter((e) => e.name.startsWith(`${c.key} `));
      expect(mine).toHaveLength(c.status === 'ok' ? 3 : 0);
    }
  });

  it('takes the median as the value and half the IQR as the range', () => {
    const c = results.cases[0];
    const step = entries.find((e) => e.name === `${c.key} step time`)!;
    expect(step.unit).toBe('ms');
    expect(step.value).toBe(c.time!.step.median);
    expect(Number(step.range!.slice(2))).toBeCloseTo((c.time!.step.noise * c.time!.step.median) / 2, 3);
    expect(step.extra).toContain(results.testbed.fingerprint);
    expect(entries.find((e) => e.name === `${c.key} step peak`)!.value).toBe(c.memory!.stepPeak);
    expect(entries.find((e) => e.name === `${c.key} activation peak`)!.value).toBe(c.memory!.activationPeak);
  });
});
