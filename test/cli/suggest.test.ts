import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { explainParseError } from '../../src/cli/base.js';
import { editDistance, nearest } from '../../src/suggest.js';
import { packageRoot } from '../../src/measure/provenance.js';
import { results, SWEEP } from '../fixtures/gate/synthetic.js';

/** Issue 25 §3.9: errors a newcomer can act on. */

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(packageRoot(), 'bin/run.js'), ...args], { cwd: packageRoot(), env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

describe('did you mean', () => {
  it('finds the nearest name: a typo, a prefix, nothing for a stranger', () => {
    expect(editDistance('benchh', 'bench')).toBe(1);
    expect(nearest('benchh', ['bench', 'devices', 'gate'])).toBe('bench');
    expect(nearest('expert', ['experts', 'top-k', 'tokens'])).toBe('experts');
    expect(nearest('capacityFactr', ['capacityFactor', 'checkpoint'])).toBe('capacityFactor');
    expect(nearest('zzzzzz', ['bench', 'gate'])).toBeNull();
  });

  it('names flags with their dashes and suggests the nearest one', () => {
    expect(explainParseError('Missing required flag current', ['baseline', 'current'])).toBe('Missing required flag --current');
    expect(explainParseError('Nonexistent flag: --expert', ['experts', 'tokens'])).toBe('Nonexistent flag: --expert; did you mean --experts?');
  });

  it('the CLI: an unknown flag, an unknown command and a missing flag exit 2 with one actionable line', async () => {
    const flag = await cli(['bench', '--expert', '4']);
    expect(flag.code).toBe(2);
    expect(flag.stderr.trim()).toBe('moeblaze: Nonexistent flag: --expert; did you mean --experts?; see `moeblaze bench --help`');
    const command = await cli(['benchh']);
    expect(command.code).toBe(2);
    expect(command.stderr.trim()).toMatch(/^moeblaze: unknown command "benchh"; did you mean bench\?; the commands are (\w+, )+\w+; see `moeblaze --help`$/);
    const missing = await cli(['gate', '--baseline', 'x.json']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^moeblaze: Missing required flag --current; see/);
  });

  it('a bench folder given as --current stands for its results.json; a folder without one says so', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'suggest-'));
    dirs.push(dir);
    const run = results({ cases: SWEEP });
    await writeFile(join(dir, 'results.json'), JSON.stringify(run));
    await writeFile(join(dir, 'base.json'), JSON.stringify(run));
    const ok = await cli(['gate', '--baseline', join(dir, 'base.json'), '--current', dir]);
    expect(ok.code, ok.stderr).toBe(0);
    const empty = await mkdtemp(join(tmpdir(), 'suggest-empty-'));
    dirs.push(empty);
    const bad = await cli(['gate', '--baseline', join(dir, 'base.json'), '--current', empty]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--current: ".*" is a folder without a results\.json/);
  });
});

describe('multi-value presets (issue 25 §3.8)', () => {
  it('plan and profile refuse a preset that sweeps a size alike, naming the values; a given size is taken', async () => {
    for (const command of ['plan', 'profile']) {
      const r = await cli([command, '--preset', 'quick']);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^moeblaze: --preset quick sweeps experts over 4, 8, 16; ${command} takes one shape: add --experts \\(one of 4, 8, 16, or any other\\)`));
    }
    const plan = await cli(['plan', '--preset', 'quick', '--experts', '8', '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(JSON.parse(plan.stdout).settings.experts).toBe(8);
  });
});
