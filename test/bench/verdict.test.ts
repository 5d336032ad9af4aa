import { describe, expect, it } from 'vitest';
import { benchExitCode } from '../../src/bench/verdict.js';

describe('bench exit code', () => {
  it('a mismatch exits 3 as in verify, whatever the gate said', () => {
    expect(benchExitCode([{ status: 'ok' }, { status: 'mismatch' }], null)).toBe(3);
    expect(benchExitCode([{ status: 'mismatch' }], 0)).toBe(3);
    expect(benchExitCode([{ status: 'ok' }, { status: 'oom' }], null)).toBe(0);
    expect(benchExitCode([{ status: 'ok' }], 3)).toBe(3);
  });
});
