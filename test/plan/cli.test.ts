import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { strategyIds } from '../../src/registry.js';

const root = resolve(import.meta.dirname, '../..');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The built CLI as a user runs it: a child process, so exit codes and stdout are real. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(process.execPath, [join(root, 'bin/run.js'), ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1', ...env }, timeout: 300_000 }, (error, stdout, stderr) => {
      done({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

const DEEPSEEK = ['plan', '--preset', 'deepseek-v3-like-layer', '--memory', '80', '--dtype', 'bf16'];

beforeAll(() => {
  if (!existsSync(join(root, 'dist/commands/plan.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does it first)');
});

describe('moeblaze plan', () => {
  it('DeepSeek-V3-like layer in 80 GiB of bf16: a positive largest micro-batch per strategy, zero-buffer\'s at least every baseline\'s', async () => {
    const r = await cli([...DEEPSEEK, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.schema).toBe('moeblaze.plan/v1');
    expect(plan.settings).toMatchObject({ preset: 'deepseek-v3-like-layer', dtype: 'bf16', memory: 80 * 2 ** 30, hidden: 7168, experts: 256, topK: 8 });
    const largest = Object.fromEntries(plan.strategies.map((s: { strategy: string; largestTokens: number }) => [s.strategy, s.largestTokens]));
    expect(Object.keys(largest).sort()).toEqual(strategyIds().sort());
    for (const [id, T] of Object.entries(largest)) {
      expect(Number.isInteger(T) && (T as number) > 0, id).toBe(true);
      expect(largest['zero-buffer'], id).toBeGreaterThanOrEqual(T as number);
    }
    for (const s of plan.strategies) {
      expect(s.atLargest.estimate.total).toBeLessThanOrEqual(80 * 2 ** 30);
      expect(s.traffic.total).toBeGreaterThan(0);
    }
    expect(plan.provenance.commandLine).toContain('plan --preset deepseek-v3-like-layer');
  });

  it('prints the tables, the largest micro-batch and the assumptions', async () => {
    const r = await cli([...DEEPSEEK, '--expert-parallel', '8', '--skew', 'zipf:1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/largest T/);
    expect(r.stdout).toMatch(/All-to-all per GPU/);
    expect(r.stdout).toMatch(/compulsory traffic/);
    expect(r.stdout).toMatch(/assumptions:/);
    expect(r.stdout).not.toMatch(/\u001b\[/);
  });

  it('refuses bad flags before any work, with one line and exit 2, with or without --json', async () => {
    for (const args of [
      ['--dtype', 'f64'],
      ['--memory', '0'],
      ['--memory', '12XB'],
      ['--optimizer', 'lion'],
      ['--preset', 'deepseek-v3-like-layer', '--expert-parallel', '3'],
      ['--expert-parallel', '0'],
      ['--layers', '0'],
      ['--preset', 'moeblaze-paper'],
      ['--experts', '4', '--top-k', '8'],
      ['--bogus'],
      ['--dtype', 'f64', '--json'],
      ['--validate', '--dtype', 'bf16'],
      ['--routing', 'sideways'],
      ['--routing', 'balanced', '--skew', 'zipf:1.2'],
      ['--validate', '--routing', 'balanced'],
    ]) {
      const r = await cli(['plan', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.split('\n').filter((l) => l.startsWith('moeblaze:')), args.join(' ')).toHaveLength(1);
      if (args.includes('--json')) expect(JSON.parse(r.stdout).error.exitCode).toBe(2);
    }
  });

  it('--routing balanced: exact loads in the JSON, said in the settings line and the assumptions', async () => {
    const r = await cli(['plan', '--tokens', '300', '--experts', '8', '--top-k', '3', '--routing', 'balanced', '--impl', 'megablocks', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.settings.routing).toBe('balanced');
    expect(plan.routingModel.method).toBe('balanced');
    expect(plan.strategies[0].routing.expertLoads).toEqual([113, 113, 113, 113, 112, 112, 112, 112]);
    const text = await cli(['plan', '--routing', 'balanced']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/skew=uniform routing=balanced/);
    expect(text.stdout.replace(/\s+/g, " ")).toMatch(/routing: balanced .*loads are exact/);
  });

  it('--validate checks the model against this adapter\'s allocator at f32 and f16 and prints the table', async () => {
    // No --dtype: both dtypes. A strategy without f16 yet gives 'unsupported' f16 rows (passing, with its reason).
    const r = await cli(['plan', '--validate', '--impl', 'tutel', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout);
    expect(v.pass).toBe(true);
    expect(v.adapter).toMatch(/llvmpipe/i);
    expect(v.dtypes).toEqual(['f32', 'f16']);
    type Row = { strategy: string; dtype: string; status: string; exact?: boolean; message?: string };
    expect(new Set(v.rows.map((row: Row) => row.dtype))).toEqual(new Set(['f32', 'f16']));
    for (const row of v.rows as Row[]) {
      if (row.status === 'ok') expect(row.exact, `${row.strategy} ${row.dtype}`).toBe(true);
      else expect([row.dtype, row.status, row.message], row.strategy).toEqual(['f16', 'unsupported', expect.stringMatching(/f16/)]);
    }
    // --dtype picks one dtype: only f16 rows here, which zero-buffer runs.
    const text = await cli(['plan', '--validate', '--impl', 'zero-buffer', '--dtype', 'f16']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/= to the byte/);
    expect(text.stdout).not.toMatch(/not run/);
    expect(text.stdout).toMatch(/PASS: on the \d+ rows that ran \(f16\)/);
  });
});

describe('plan output fits the terminal and says the scope of every figure (issue 25 §3.5, §3.7)', () => {
  it('at 100 columns nothing is wider; with --expert-parallel the tables say per GPU or one GPU', async () => {
    const r = await cli(['plan', '--expert-parallel', '8', '--preset', 'mixtral-8x7b-layer', '--memory', '80', '--optimizer', 'adam'], { COLUMNS: '100' });
    expect(r.code, r.stderr).toBe(0);
    expect(Math.max(...r.stdout.split('\n').map((l) => [...l.replace(/\u001b\[[0-9;]*m/g, '')].length))).toBeLessThanOrEqual(100);
    const text = r.stdout.replace(/\s+/g, ' ');
    expect(text).toMatch(/Memory of a 1-layer step at T=8192, per GPU: 1 of 8 experts on each of 8 GPUs \(estimate\)/);
    expect(text).toMatch(/One layer at T=8192, as bench measures it: one GPU with all 8 experts, not split across GPUs/);
    expect(text).toMatch(/Bytes moved by the kernels of one layer step at T=8192, one GPU with every expert/);
  });
});
