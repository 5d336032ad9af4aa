import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BenchResults } from '../../src/bench/schema.js';
import { packageRoot } from '../../src/measure/provenance.js';
import { OTHER_GPU, results, scaled, SWEEP } from '../fixtures/gate/synthetic.js';

const root = packageRoot();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The built CLI as CI runs it: a child process, so the exit codes are real. */
function gate(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(root, 'bin/run.js'), 'gate', ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

let dir: string;
const file = (name: string) => join(dir, name);
const write = (name: string, r: BenchResults) => writeFile(file(name), JSON.stringify(r));

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/commands/gate.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does it first)');
  dir = await mkdtemp(join(tmpdir(), 'gate-cli-'));
  const run = results({ cases: SWEEP });
  const smaller = structuredClone(run);
  smaller.cases[2].memory!.stepPeak -= 4096;
  await write('run.json', run);
  await write('smaller-peak.json', smaller);
  await write('slower.json', scaled(results({ cases: SWEEP, seed: 9 }), 1.3));
  await write('other-gpu.json', results({ cases: SWEEP, testbed: OTHER_GPU }));
});

describe('moeblaze gate', () => {
  it('the same run against itself: exit 0, no table, a PASS line; --verbose shows every row', async () => {
    const r = await gate(['--baseline', file('run.json'), '--current', file('run.json')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/│ case/);
    // 3 cases × (2 peaks, gemmFraction, time) + 2 time/zero-buffer + zero-buffer's time/others.
    expect(r.stdout).toMatch(/^15 of 15 row\(s\) not shown \(15 SAME\); --verbose shows every row$/m);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('PASS: no regression; 3 case(s) compared');
    expect(r.stdout).not.toMatch(/\u001b\[/);
    const verbose = await gate(['--baseline', file('run.json'), '--current', file('run.json'), '--verbose']);
    expect(verbose.stdout).toMatch(/│ case\s+│ metric\s+│ baseline\s+│ current\s+│ change\s+│ verdict/);
    // Not a terminal: the table fits the default 100 columns.
    expect(Math.max(...verbose.stdout.split('\n').map((l) => [...l].length))).toBeLessThanOrEqual(100);
  });

  it('a baseline with a smaller peak: exit 3 with MEM+, also under --json', async () => {
    const r = await gate(['--baseline', file('smaller-peak.json'), '--current', file('run.json')]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/stepPeak .* MEM\+ ✗/);
    expect(r.stdout).toMatch(/^FAIL: 1 regression\(s\) \(1 MEM\+\)/m);
    const json = await gate(['--baseline', file('smaller-peak.json'), '--current', file('run.json'), '--json']);
    expect(json.code).toBe(3);
    const report = JSON.parse(json.stdout);
    expect(report).toMatchObject({ exitCode: 3, regressions: 1 });
    expect(report.provenance.commandLine).toMatch(/^node bin\/run\.js gate --baseline \S+smaller-peak\.json --current \S+run\.json --json$/);
    expect(report.rows.filter((row: { verdict: string }) => row.verdict === 'MEM+')).toHaveLength(1);
  });

  it('a run 30% slower: exit 3; with --advisory-speed exit 0 with SLOWER printed', async () => {
    const r = await gate(['--baseline', file('run.json'), '--current', file('slower.json')]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/SLOWER ✗/);
    const advisory = await gate(['--baseline', file('run.json'), '--current', file('slower.json'), '--advisory-speed']);
    expect(advisory.code).toBe(0);
    expect(advisory.stdout).toMatch(/│ SLOWER\s+│ advisory/);
  });

  it('another adapter: INCOMPARABLE, exit 0; exit 3 with --strict', async () => {
    const r = await gate(['--baseline', file('other-gpu.json'), '--current', file('run.json')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/INCOMPARABLE/);
    expect(r.stdout).toMatch(/absolute times INCOMPARABLE: testbed differs/);
    expect((await gate(['--baseline', file('other-gpu.json'), '--current', file('run.json'), '--strict'])).code).toBe(3);
  });

  it('the committed lavapipe baseline is a valid gate input: against itself, exit 0', async () => {
    const committed = join(root, 'reports/baselines/lavapipe-quick.json');
    const r = await gate(['--baseline', committed, '--current', committed, '--advisory-speed']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/PASS: no regression; 24 case\(s\) compared$/m);
  });

  it('usage errors exit 2 with one line: a missing file, a bad threshold, a missing flag', async () => {
    const cases = [
      ['--baseline', file('nope.json'), '--current', file('run.json')],
      ['--baseline', file('run.json'), '--current', file('run.json'), '--threshold', 'lots'],
      ['--baseline', file('run.json')],
      ['--baseline', file('nope.json'), '--current', file('run.json'), '--json'],
    ];
    for (const args of cases) {
      const r = await gate(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.split('\n').filter((l) => l.startsWith('moeblaze: ')), r.stderr).toHaveLength(1);
    }
    const r = await gate(cases[0]);
    expect(r.stderr).toMatch(/^moeblaze: --baseline: cannot read ".*nope\.json" \(ENOENT\)/m);
  });

  it('--update-baseline replaces the baseline after the verdict and says so; creates a missing one', async () => {
    await write('to-update.json', results({ cases: SWEEP.slice(0, 2) }));
    const r = await gate(['--baseline', file('to-update.json'), '--current', file('smaller-peak.json'), '--update-baseline']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/updated the baseline .*to-update\.json: 3 case\(s\) .* replacing 2 case\(s\)/);
    expect(JSON.parse(await readFile(file('to-update.json'), 'utf8'))).toEqual(JSON.parse(await readFile(file('smaller-peak.json'), 'utf8')));
    const created = await gate(['--baseline', file('new/base.json'), '--current', file('run.json'), '--update-baseline']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toMatch(/wrote a new baseline/);
    expect(existsSync(file('new/base.json'))).toBe(true);
  });
});
