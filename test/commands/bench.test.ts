import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { validateBenchResults } from '../../src/bench/validate.js';
import type { BenchResults } from '../../src/bench/schema.js';
import { strategyIds } from '../../src/registry.js';

const cli = (args: string[]) => runCli(args);

const TINY = ['--tokens', '64', '--hidden', '16', '--ffn', '32', '--max-time', '0.3', '--min-samples', '3', '--warmup', '1'];

describe('moeblaze bench', () => {
  it('records an out-of-memory case and runs the cases after it; writes four valid files', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'moeblaze-bench-')), 'run');
    // gshard's [T,E,C] tensors put it above 300000 B at both sizes; zero-buffer stays below.
    const r = await cli(['bench', '--impl', 'zero-buffer', '--impl', 'gshard', '--experts', '4,8', ...TINY, '--memory-limit', '300000B', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const stdout = JSON.parse(r.stdout) as BenchResults;
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResults;
    expect(validateBenchResults(results)).toEqual([]);
    expect(stdout.cases.map((c) => c.key)).toEqual(results.cases.map((c) => c.key));
    expect(results.cases.map((c) => `${c.config.impl}:E${c.config.experts}:${c.status}`)).toEqual(['zero-buffer:E4:ok', 'gshard:E4:oom', 'zero-buffer:E8:ok', 'gshard:E8:oom']);
    // f32 runs on SIMT: no fragment to record.
    expect(results.cases[0].gemm).toEqual({ engine: 'simt', fallbacks: [] });
    expect(results.cases[1].message).toMatch(/memory-limit/);
    expect(results.cases[0].check?.against).toBe('reference');
    expect(results.complete).toBe(true);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toMatch(/<svg/);
    expect(html).not.toMatch(/https?:\/\//);
    expect(readFileSync(join(out, 'results.md'), 'utf8')).toMatch(/zero-buffer/);
    expect(Array.isArray(JSON.parse(readFileSync(join(out, 'benchmark-action.json'), 'utf8')))).toBe(true);

    // --resume keeps finished cases instead of redoing them.
    const again = await cli(['bench', '--impl', 'zero-buffer', '--impl', 'gshard', '--experts', '4,8', ...TINY, '--memory-limit', '300000B', '--resume', out, '--json']);
    expect(again.code, again.stderr).toBe(0);
    const resumed = JSON.parse(again.stdout) as BenchResults;
    expect(resumed.cases[0].time?.step.samples).toEqual(results.cases[0].time?.step.samples);
    expect(resumed.notes.join(' ')).toMatch(/resumed: 4 case/);
  });

  it('refuses bad input before any GPU work, with one line and exit 2', async () => {
    for (const args of [
      ['--experts', '0'],
      ['--capacity-factor', '-1'],
      ['--preset', 'no-such-preset'],
      ['--impl', 'no-such-strategy'],
      ['--noise-target', '150%'],
      ['--tokens', '4,,8'],
    ]) {
      const r = await cli(['bench', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('moeblaze:'))).toHaveLength(1);
    }
    // A folder inside a regular file can never be created.
    const file = join(mkdtempSync(join(tmpdir(), 'moeblaze-bench-')), 'a-file');
    writeFileSync(file, '');
    const out = await cli(['bench', '--out', join(file, 'results'), ...TINY]);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/--out/);
    expect(existsSync(join(file, 'results'))).toBe(false);
  });

  it('checks f16 cases against the reference from the f16-rounded inputs, at the f16 tolerance', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'moeblaze-bench-')), 'f16');
    const r = await cli(['bench', '--impl', 'zero-buffer', '--impl', 'tutel', '--experts', '4', ...TINY, '--dtype', 'f16', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const results = JSON.parse(r.stdout) as BenchResults;
    for (const c of results.cases) {
      expect(c.status, c.message).toBe('ok');
      expect(c.config.dtype).toBe('f16');
      expect(c.check?.against).toBe('reference');
      // f16 storage really rounds (an f32-precision result would mean the f16 path never ran).
      expect(c.check!.maxRelError!).toBeGreaterThan(1e-5);
      expect(c.check!.maxRelError!).toBeLessThanOrEqual(1e-2);
      // The verdict, the near-tie tokens the reference took from the GPU (if any) and the check's time.
      expect(c.check!.pass).toBe(true);
      expect(c.check!.forcedTokens).toEqual(expect.any(Array));
      expect(c.check!.seconds).toBeGreaterThan(0);
    }
  });

  it('skips impossible combinations with a note', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'moeblaze-bench-')), 'run');
    const r = await cli(['bench', '--impl', 'zero-buffer', '--experts', '1,2', '--top-k', '2', ...TINY, '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const results = JSON.parse(r.stdout) as BenchResults;
    expect(results.cases).toHaveLength(1);
    expect(results.notes.join(' ')).toMatch(/top-k larger than the number of experts/);
  });
});

describe('moeblaze bench --baseline', () => {
  it('creates a baseline with --update-baseline, then gates a rerun against it (memory equal: exit 0)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moeblaze-gate-'));
    const baseline = join(dir, 'baseline.json');
    const sweep = ['bench', '--impl', 'zero-buffer', '--impl', 'tutel', '--experts', '4', '--skew', 'zipf:3', ...TINY, '--advisory-speed'];
    const first = await cli([...sweep, '--out', join(dir, 'a'), '--baseline', baseline, '--update-baseline']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/baseline/);
    expect(validateBenchResults(JSON.parse(readFileSync(baseline, 'utf8')))).toEqual([]);
    const second = await cli([...sweep, '--out', join(dir, 'b'), '--baseline', baseline, '--retries', '0']);
    expect(second.code, second.stderr).toBe(0);
    // A pass lists no rows, only how many it left out, and the summary.
    expect(second.stdout).toMatch(/row\(s\) not shown \(\d+ SAME.*\); --verbose shows every row/);
    expect(second.stdout).toMatch(/^PASS: no regression/m);
  });
});

describe('moeblaze bench --preset moeblaze-conf4 (issue 18)', () => {
  it('records a float64 check for every case of every strategy: sampled rows and columns, ≥ 64 tokens', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'moeblaze-conf4-')), 'run');
    // conf4's E = 16, k = 2 at a size lavapipe runs in seconds; --check sampled is the path large shapes take.
    const r = await cli(['bench', '--preset', 'moeblaze-conf4', ...TINY, '--check', 'sampled', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResults;
    expect(validateBenchResults(results)).toEqual([]);
    expect(results.cases.map((c) => c.config.impl).sort()).toEqual(strategyIds().sort());
    for (const c of results.cases) {
      expect(c.config).toMatchObject({ experts: 16, topK: 2 });
      expect(c.status, c.message).toBe('ok');
      expect(c.check).toMatchObject({ against: 'reference', kind: 'sampled' });
      expect(c.check!.sample!.tokens).toBeGreaterThanOrEqual(64);
      expect(c.check!.maxErrorRatio).toBeLessThanOrEqual(1);
    }
  });
});

describe('moeblaze bench --tuning', () => {
  it('--tuning: a bad table exits 2 before any GPU work; a good one is used, recorded and shown, with one warning for another adapter', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moeblaze-bench-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ format: 'moeblaze.tuning/v1', adapter: 'x', classes: { segment: { m: 96, n: 128 } } }));
    for (const [file, message] of [
      [bad, `--tuning ${bad}: classes.segment.m is 96; allowed: 64, 128`],
      [join(dir, 'missing.json'), 'cannot read'],
    ]) {
      const r = await cli(['bench', '--tuning', file, '--out', join(dir, 'never'), ...TINY]);
      expect(r.code, r.stderr).toBe(2);
      const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('moeblaze:'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(message);
      expect(existsSync(join(dir, 'never'))).toBe(false);
    }
    const good = join(dir, 'good.json');
    const table = { format: 'moeblaze.tuning/v1', adapter: 'another adapter', classes: { segment: { m: 64, n: 64, k: 16 } } };
    writeFileSync(good, JSON.stringify(table));
    const out = join(dir, 'tuned');
    const r = await cli(['bench', '--impl', 'zero-buffer', '--experts', '4', ...TINY, '--dtype', 'f16', '--gemm', 'subgroup-matrix-emulated', '--tuning', good, '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.match(/measured on "another adapter"/g)).toHaveLength(1);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResults;
    expect(validateBenchResults(results)).toEqual([]);
    expect(results.provenance.tuning?.table).toEqual(table);
    expect(results.provenance.tuning?.hash).toMatch(/^[0-9a-f]{12}$/);
    expect(results.cases[0].status).toBe('ok');
    // The matrix engine's fragment is recorded with the engine (the emulation's default).
    expect(results.cases[0].gemm).toEqual({ engine: 'subgroup-matrix-emulated', fallbacks: [], fragment: '16×16×16/32' });
    expect(readFileSync(join(out, 'results.md'), 'utf8')).toContain(`| tuning | table \`${results.provenance.tuning!.hash}\` measured on another adapter: segment 64×64 K16 |`);
    // A hash that is not the table's is refused by the validator.
    expect(validateBenchResults({ ...results, provenance: { ...results.provenance, tuning: { ...results.provenance.tuning!, hash: '000000000000' } } }).join(' ')).toMatch(/tuning\.hash/);
  });
});
