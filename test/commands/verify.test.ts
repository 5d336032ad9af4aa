import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import type { VerifyResult } from '../../src/verify/verify.js';

const cli = (args: string[]) => runCli(args, { timeout: 120_000 });

describe('moeblaze verify', () => {
  it('passes correct results on a saturated router, where dWr is ~1e-15 and its relative error large (issue 16 item 3)', async () => {
    const r = await cli(['verify', '--tokens', '64', '--experts', '16', '--top-k', '1', '--hidden', '8', '--ffn', '16', '--skew', 'zipf:50', '--impl', 'zero-buffer', '--impl', 'tutel', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as VerifyResult;
    const dWr = result.strategies[0].tensors.find((t) => t.tensor === 'dWr')!;
    expect(dWr.relError).toBeGreaterThan(1e-4); // the plain relative test would fail it
    expect(dWr.errorRatio).toBeLessThanOrEqual(1);
    expect(result.pass).toBe(true);
  });

  it('--routing balanced reaches every strategy and is recorded (docs/design.md#balanced-routing)', async () => {
    const shape = ['--tokens', '13', '--experts', '5', '--top-k', '2', '--hidden', '6', '--ffn', '10'];
    const r = await cli(['verify', ...shape, '--routing', 'balanced', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as VerifyResult;
    expect(result.config.routing).toBe('balanced');
    expect(result.strategies.map((s) => s.status)).toEqual(result.strategies.map(() => 'pass'));
    expect(result.strategies.length).toBeGreaterThanOrEqual(5);
    const text = await cli(['verify', ...shape, '--routing', 'balanced', '--impl', 'zero-buffer']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/skew=uniform routing=balanced/);
  });
});
