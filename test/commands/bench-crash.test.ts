import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { BenchCase, BenchResults } from '../../src/bench/schema.js';
import { validateBenchResults } from '../../src/bench/validate.js';
import { Xoshiro128 } from '../../src/rng.js';

/*
 * Crash safety (issue 16): a bench killed at any point, even by SIGKILL, leaves a results.json
 * that `bench --resume` continues to the same sweep, keeping every finished case byte for byte.
 * The tiniest shapes keep each run to seconds on lavapipe; a fixed seed picks the kill points.
 */

const root = resolve(import.meta.dirname, '../..');
const SWEEP = ['--impl', 'zero-buffer', '--impl', 'tutel', '--experts', '2,4', '--tokens', '8', '--hidden', '8', '--ffn', '8', '--top-k', '1', '--max-time', '0.05', '--min-samples', '2', '--warmup', '0'];
const CASES = 4;
/** Half the sweep, for the kills inside a write (six runs). */
const TWO_CASES = ['--impl', 'zero-buffer', ...SWEEP.slice(4)];

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function start(args: string[], kill?: { at: string; log: string }): { child: ChildProcess; done: Promise<Run> } {
  // MOEBLAZE_DAWN_STDERR=1: no stderr-filtering parent process, so that the signals reach bench itself.
  const hook = kill ? ['--import', pathToFileURL(join(root, 'test/helpers/kill-in-write.mjs')).href] : [];
  const env = { ...process.env, NO_COLOR: '1', MOEBLAZE_DAWN_STDERR: '1', ...(kill && { MOEBLAZE_KILL_AT: kill.at, MOEBLAZE_KILL_LOG: kill.log }) };
  const child = spawn(process.execPath, [...hook, join(root, 'bin/run.js'), 'bench', ...args], { cwd: root, env });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<Run>((resolveRun) => child.on('close', (code, signal) => resolveRun({ code, signal, stdout, stderr })));
  return { child, done };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function finishedCases(dir: string): BenchCase[] {
  try {
    return (JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as BenchResults).cases;
  } catch {
    return [];
  }
}

/** Waits until `count` cases are saved (0: results.json exists, before any case), then `extraMs` more. */
async function waitFor(dir: string, count: number, extraMs: number, done: Promise<Run>): Promise<boolean> {
  let ended = false;
  void done.then(() => (ended = true));
  while (!ended) {
    if (count === 0 ? existsSync(join(dir, 'results.json')) : finishedCases(dir).length >= count) {
      await sleep(extraMs);
      return !ended;
    }
    await sleep(10);
  }
  return false;
}

describe('bench crash safety', () => {
  it('SIGKILL at seeded points, then --resume: the same sweep, the finished cases byte for byte', async () => {
    const rng = new Xoshiro128(16);
    let kills = 0;
    for (let point = 0; point < 2; point++) {
      const dir = join(mkdtempSync(join(tmpdir(), 'moeblaze-kill-')), 'out');
      const after = rng.nextUint32() % 3;
      const extraMs = rng.nextUint32() % 200;
      const { child, done } = start([...SWEEP, '--out', dir]);
      const killed = await waitFor(dir, after, extraMs, done);
      if (killed) child.kill('SIGKILL');
      kills += killed ? 1 : 0;
      const first = await done;
      expect(killed ? first.signal : first.code, first.stderr).toBe(killed ? 'SIGKILL' : 0);
      const kept = finishedCases(dir);
      const { done: resumed } = start(['--resume', dir, '--json']);
      const r = await resumed;
      expect(r.code, r.stderr).toBe(0);
      const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as BenchResults;
      expect(validateBenchResults(results)).toEqual([]);
      expect(results.complete).toBe(true);
      expect(results.cases).toHaveLength(CASES);
      const byKey = new Map(results.cases.map((c) => [c.key, c]));
      for (const c of kept) expect(JSON.stringify(byKey.get(c.key), null, 2), `point ${point}: ${c.key}`).toBe(JSON.stringify(c, null, 2));
      // Kept cases are not shown as run again: one progress line per case that ran.
      expect(r.stderr.match(/^\[\d+\/\d+\]/gm) ?? []).toHaveLength(CASES - kept.length);
      // Nothing left behind: no lock, no temporary file of the killed run.
      expect(readdirSync(dir).sort()).toEqual(['benchmark-action.json', 'report.html', 'results.json', 'results.md']);
    }
    expect(kills, 'at least one run was killed mid-sweep').toBeGreaterThan(0);
  });

  it('SIGKILL inside a results.json write, before its rename and right after it: the old file or the new one is there, whole, and --resume finishes from it', async () => {
    const rng = new Xoshiro128(29);
    for (const point of ['write', 'rename', 'renamed']) {
      const base = mkdtempSync(join(tmpdir(), `moeblaze-${point}-`));
      const dir = join(base, 'out');
      const log = join(base, 'writes');
      mkdirSync(log);
      // The 1st write makes the file, one follows each case: kill at the 2nd or 3rd, so an old file exists.
      const nth = 2 + (rng.nextUint32() % 2);
      const first = await start([...TWO_CASES, '--out', dir], { at: `${point}:${nth}`, log }).done;
      expect(first.signal, `${point}:${nth} ${first.stderr}`).toBe('SIGKILL');
      const onDisk = readFileSync(join(dir, 'results.json'), 'utf8');
      const expected = readFileSync(join(log, `${point === 'renamed' ? nth : nth - 1}.json`), 'utf8');
      expect(onDisk, `${point}:${nth}: results.json is the ${point === 'renamed' ? 'new' : 'old'} file, byte for byte`).toBe(expected);
      expect(validateBenchResults(JSON.parse(onDisk))).toEqual([]);
      if (point !== 'renamed') expect(readdirSync(dir).some((f) => f.startsWith('results.json.tmp-')), 'the torn or unrenamed temporary file is there').toBe(true);
      const kept = finishedCases(dir);
      const r = await start(['--resume', dir, '--json']).done;
      expect(r.code, r.stderr).toBe(0);
      const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as BenchResults;
      expect(validateBenchResults(results)).toEqual([]);
      expect(results.complete).toBe(true);
      expect(results.cases).toHaveLength(2);
      const byKey = new Map(results.cases.map((c) => [c.key, c]));
      for (const c of kept) expect(JSON.stringify(byKey.get(c.key))).toBe(JSON.stringify(c));
      expect(readdirSync(dir).sort()).toEqual(['benchmark-action.json', 'report.html', 'results.json', 'results.md']);
    }
  }, 300_000);

  it('Ctrl-C says how to resume, and that command finishes the sweep', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'moeblaze-int-')), 'out');
    const { child, done } = start([...SWEEP, '--out', dir]);
    if (await waitFor(dir, 1, 0, done)) child.kill('SIGINT');
    const r = await done;
    expect(r.code, r.stderr).toBe(130);
    const line = r.stderr.trim().split('\n').at(-1)!;
    expect(line).toMatch(/^moeblaze: interrupted; .*Continue the sweep with: moeblaze bench --resume \S+$/);
    const command = line.replace(/^.*Continue the sweep with: moeblaze bench /, '').split(' ');
    expect(command).toEqual(['--resume', dir]);
    const again = await start(command).done;
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as BenchResults).cases).toHaveLength(CASES);
  });

  it('a second bench on a folder another live bench holds exits 2; --resume D --out E writes E and leaves D as it was', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'moeblaze-lock-')), 'out');
    const { child, done } = start([...SWEEP, '--out', dir]);
    const held = (await waitFor(dir, 0, 0, done)) && existsSync(join(dir, '.moeblaze.lock'));
    expect(held, 'the first bench was still running').toBe(true);
    {
      const second = await start([...SWEEP, '--out', dir]).done;
      expect(second.code, second.stderr).toBe(2);
      expect(second.stderr).toMatch(new RegExp(`moeblaze: --out: another moeblaze bench \\(process ${child.pid}\\) is writing to`));
    }
    expect((await done).code).toBe(0);
    const before = readFileSync(join(dir, 'results.json'), 'utf8');
    const elsewhere = join(dir, '..', 'copy');
    const r = await start(['--resume', dir, '--out', elsewhere]).done;
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'results.json'), 'utf8')).toBe(before);
    const copy = JSON.parse(readFileSync(join(elsewhere, 'results.json'), 'utf8')) as BenchResults;
    expect(copy.cases.map((c) => JSON.stringify(c))).toEqual((JSON.parse(before) as BenchResults).cases.map((c) => JSON.stringify(c)));
    // Flags that change the saved sweep are refused, naming the difference.
    const contradict = await start(['--resume', dir, '--experts', '2,8', '--max-time', '1']).done;
    expect(contradict.code).toBe(2);
    expect(contradict.stderr).toMatch(/--experts 2,8 \(the saved sweep has 2,4\); --max-time 1 \(the saved sweep has 0.05\)/);
    // A stale lock of a process that is gone is taken over, with the temporary file its write left.
    writeFileSync(join(dir, '.moeblaze.lock'), '999999\n');
    writeFileSync(join(dir, 'results.json.tmp-999999-3'), '{');
    const takeover = await start(['--resume', dir]).done;
    expect(takeover.code, takeover.stderr).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['benchmark-action.json', 'report.html', 'results.json', 'results.md']);
  });
});
