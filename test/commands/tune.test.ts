import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { parseTuningText } from '../../src/gpu/tuning.js';
import type { TuneResult } from '../../src/tune/run.js';
import { TUNE_CANDIDATES } from '../../src/tune/shapes.js';

const cli = (args: string[]) => runCli(args);

const TINY = ['--preset', 'quick', '--experts', '8', '--tokens', '64', '--max-time', '0.1'];

describe('moeblaze tune', () => {
  it('times the candidates on the emulated engine, checks them, and writes a table that parses, choosing the fastest correct one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moeblaze-tune-'));
    const out = join(dir, 'table.json');
    const r = await cli(['tune', ...TINY, '--gemm', 'subgroup-matrix-emulated', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as TuneResult & { written: string };
    // quick at E 8, T 64, k 2: 16 rows per expert; d 64, h 128.
    expect(result.shapes).toEqual({ segment: { M: 16, N: 128, K: 64 }, reduce: { M: 64, N: 128, K: 16 } });
    expect(result.candidates).toHaveLength(2 * TUNE_CANDIDATES.length);
    // The grid candidates were built with their own grid (8 subgroups of 32 in the emulation).
    expect(result.candidates.filter((c) => c.grid).map((c) => `${c.class} ${c.m}×${c.n} ${c.grid!.join('×')}`)).toEqual(['segment 128×128 2×4', 'segment 128×256 4×2', 'reduce 128×128 2×4', 'reduce 128×256 4×2']);
    expect(r.stderr).toMatch(/timing segment 16×128×64: 64×128 K32/);
    const table = parseTuningText(readFileSync(out, 'utf8'), out);
    expect(table).toEqual(result.table);
    expect(readdirSync(dir)).toEqual(['table.json']);
    for (const cls of ['segment', 'reduce'] as const) {
      const ok = result.candidates.filter((c) => c.class === cls && c.status === 'ok');
      expect(ok.length).toBeGreaterThan(0);
      for (const c of ok) expect(c.errorRatio).toBeLessThanOrEqual(1);
      const chosen = result.candidates.filter((c) => c.class === cls && c.chosen);
      expect(chosen).toHaveLength(1);
      expect(chosen[0].medianMs).toBe(Math.min(...ok.map((c) => c.medianMs!)));
      expect(table.classes[cls]).toEqual({ m: chosen[0].m, n: chosen[0].n, k: chosen[0].k, stages: 1, ...(chosen[0].grid && { grid: chosen[0].grid }) });
    }
    // Candidates whose staging is over lavapipe's 32 KiB are skipped, not failed.
    expect(result.candidates.filter((c) => c.status === 'skipped').length).toBeGreaterThan(0);
    expect(result.candidates.some((c) => c.status === 'wrong')).toBe(false);
  });

  it('without matrix units asks for them (exit 4); bad input exits 2 before any GPU work, writing nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moeblaze-tune-'));
    const real = await cli(['tune', ...TINY, '--out', join(dir, 't.json')]);
    expect(real.code, real.stderr).toBe(4);
    expect(real.stderr).toMatch(/tune measures the subgroup-matrix engine: .*offers no subgroup matrices.*--gemm subgroup-matrix-emulated/);
    // A folder inside a regular file can never be created.
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    for (const args of [['--preset', 'quick'], ['--dtype', 'f32'], ['--gemm', 'simt', ...TINY], ['--out', join(file, 't.json'), ...TINY]]) {
      const r = await cli(['tune', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('moeblaze:'))).toHaveLength(1);
    }
    expect(existsSync(join(dir, 't.json'))).toBe(false);
  });
});
