import { describe, expect, it } from 'vitest';
import { canonicalTuning, parseTuning, parseTuningText, TUNING_FORMAT, tuningHash } from '../../src/gpu/tuning.js';

const GOOD = { format: TUNING_FORMAT, adapter: 'NVIDIA H100 80GB HBM3', classes: { segment: { m: 128, n: 128, k: 64, stages: 1, grid: [2, 4] }, reduce: { m: 64, n: 256 } } };

describe('tuning tables (src/gpu/tuning.ts)', () => {
  it('reads a good table as given, absent fields absent', () => {
    expect(parseTuning(GOOD, 'f.json')).toEqual(GOOD);
    expect(parseTuning({ ...GOOD, classes: {} }, 'f.json').classes).toEqual({});
  });

  it('refuses each bad field with one line naming it and what is allowed', () => {
    const bad = (value: unknown) => () => parseTuning(value, 'f.json');
    const cls = (entry: unknown) => bad({ ...GOOD, classes: { segment: entry } });
    expect(bad([])).toThrow(/^f\.json: not a tuning table \(a JSON object with format "moeblaze\.tuning\/v1", adapter and classes\)$/);
    expect(bad({ ...GOOD, format: 'v0' })).toThrow(/^f\.json: format is "v0"; allowed: "moeblaze\.tuning\/v1"$/);
    expect(bad({ ...GOOD, adapter: '' })).toThrow(/^f\.json: adapter must be the description of the adapter the table was measured on \(a non-empty string\)$/);
    expect(bad({ ...GOOD, extra: 1 })).toThrow(/^f\.json: unknown field "extra"; allowed: format, adapter, classes$/);
    expect(bad({ ...GOOD, classes: [] })).toThrow(/^f\.json: classes must be an object of segment, reduce$/);
    expect(bad({ ...GOOD, classes: { dense: { m: 64, n: 64 } } })).toThrow(/^f\.json: unknown class "dense"; allowed: segment, reduce$/);
    expect(cls(7)).toThrow(/^f\.json: classes\.segment must be an object with m, n and optional k, stages, grid$/);
    expect(cls({ m: 96, n: 128 })).toThrow(/^f\.json: classes\.segment\.m is 96; allowed: 64, 128$/);
    expect(cls({ m: 64 })).toThrow(/^f\.json: classes\.segment\.n is null; allowed: 64, 128, 256$/);
    expect(cls({ m: 64, n: 128, k: 8 })).toThrow(/^f\.json: classes\.segment\.k is 8; allowed: 16, 32, 64$/);
    expect(cls({ m: 64, n: 128, stages: 3 })).toThrow(/^f\.json: classes\.segment\.stages is 3; allowed: 1, 2$/);
    expect(cls({ m: 64, n: 128, '64': 1 })).toThrow(/^f\.json: classes\.segment: unknown field "64"; allowed: m, n, k, stages, grid$/);
    for (const grid of [[2], [3, 4], '2x4', [2, 4, 1], [0, 8]]) expect(cls({ m: 64, n: 128, grid })).toThrow(/^f\.json: classes\.segment\.grid is .*; allowed: \[rows, columns\] of subgroups, each one of 1, 2, 4, 8, 16$/);
    expect(cls({ m: '64', n: 128 })).toThrow(/^f\.json: classes\.segment\.m is "64"; allowed: 64, 128$/);
    expect(() => parseTuningText('{"format":', 'f.json')).toThrow(/^f\.json: not JSON \(.+\)$/);
  });

  it('hashes the table, not its spelling: key order does not matter, a field does', () => {
    const reordered = { classes: { reduce: { n: 256, m: 64 }, segment: { grid: [2, 4], stages: 1, k: 64, n: 128, m: 128 } }, adapter: GOOD.adapter, format: TUNING_FORMAT };
    expect(canonicalTuning(parseTuning(reordered, 'a'))).toBe(canonicalTuning(parseTuning(GOOD, 'b')));
    expect(tuningHash(parseTuning(reordered, 'a'))).toMatch(/^[0-9a-f]{12}$/);
    expect(tuningHash(parseTuning(reordered, 'a'))).toBe(tuningHash(parseTuning(GOOD, 'b')));
    expect(tuningHash(parseTuning({ ...GOOD, classes: { ...GOOD.classes, reduce: { m: 64, n: 128 } } }, 'c'))).not.toBe(tuningHash(GOOD as never));
    expect(tuningHash(parseTuning({ ...GOOD, classes: { ...GOOD.classes, segment: { ...GOOD.classes.segment, grid: [4, 2] } } }, 'd'))).not.toBe(tuningHash(GOOD as never));
  });
});
