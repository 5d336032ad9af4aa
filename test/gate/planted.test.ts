import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BenchResults } from '../../src/bench/schema.js';
import { compareResults } from '../../src/gate/compare.js';
import { PLANT_VARIABLE, plantedSlowdown } from '../../src/gpu/planted-slowdown.js';
import { packageRoot } from '../../src/measure/provenance.js';

/**
 * Issue 25: a planted slowdown of one strategy's kernels must still fail the gate that a busy
 * machine cannot fool. The hook (MOEBLAZE_PLANT_SLOWDOWN) repeats tutel's GEMM dispatches into
 * scratch buffers: results and memory stay exact, only its time grows.
 */
const root = packageRoot();
const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

/** The CLI as .ci/gate.sh runs it: lavapipe on the calling thread, a child process per run. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(root, 'bin/run.js'), ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1', LP_NUM_THREADS: '0', ...env }, timeout: 300_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

const SWEEP = ['--impl', 'zero-buffer', '--impl', 'tutel', '--skew', 'zipf:3', '--experts', '4,8', '--top-k', '2', '--tokens', '128', '--hidden', '32', '--ffn', '64', '--warmup', '1', '--min-samples', '15', '--max-time', '0.2'];

async function bench(plant: string | null): Promise<string> {
  const out = await mkdtemp(join(tmpdir(), 'gate-plant-'));
  dirs.push(out);
  const r = await cli(['bench', ...SWEEP, '--out', out], plant ? { [PLANT_VARIABLE]: plant } : {});
  expect(r.code, r.stderr).toBe(0);
  return join(out, 'results.json');
}

describe('planted slowdown (MOEBLAZE_PLANT_SLOWDOWN)', () => {
  it('parses strategy:extra and refuses anything else', () => {
    expect(plantedSlowdown({ [PLANT_VARIABLE]: 'tutel:0.5' })).toEqual({ strategy: 'tutel', extra: 0.5 });
    expect(plantedSlowdown({})).toBeNull();
    expect(() => plantedSlowdown({ [PLANT_VARIABLE]: 'tutel' })).toThrow(/<strategy>:<extra/);
  });

  it("tutel's GEMMs repeated: same memory and check, its paired time over zero-buffer SLOWER, the gate exits 3", async () => {
    const base = await bench(null);
    const planted = await bench('tutel:1');
    const results = JSON.parse(await readFile(planted, 'utf8')) as BenchResults;
    for (const c of results.cases) expect(c.status, c.message).toBe('ok');
    expect(results.notes.join('\n')).toMatch(/tutel's GEMM dispatches were repeated on purpose/);
    expect(results.testbed.fingerprint).toMatch(/\|LP_NUM_THREADS=0$/);
    const report = compareResults(JSON.parse(await readFile(base, 'utf8')) as BenchResults, results);
    const tutel = report.rows.filter((r) => r.key.startsWith('tutel|'));
    for (const row of tutel.filter((r) => r.metric === 'stepPeak' || r.metric === 'activationPeak')) expect(row.verdict).toBe('SAME');
    const pooled = tutel.find((r) => r.key === 'tutel|all configs')!;
    expect(pooled, `${report.summary}; ${pooled.note}`).toMatchObject({ verdict: 'SLOWER', regression: true });
    // zero-buffer itself was not planted: nothing fails on its rows.
    expect(report.rows.filter((r) => r.key.startsWith('zero-buffer|') && r.regression)).toEqual([]);
    const gate = await cli(['gate', '--baseline', base, '--current', planted]);
    expect(gate.code, gate.stdout).toBe(3);
    expect(gate.stdout).toMatch(/tutel[^\n]*│ time\/zero-buffer[^\n]*SLOWER ✗/);
  }, 600_000);
});
