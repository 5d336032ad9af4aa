import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The Dawn-warning filter runs the CLI as a child (src/cli/dawn-stderr.ts). Issue 28 §7 and §9:
 * a signal sent to the parent's pid must reach the work, the work must not outlive a killed
 * parent, and a reader that leaves early (`| head`) must not turn into a stack trace.
 */
const ROOT = join(import.meta.dirname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'moeblaze-wrapper-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const LONG_BENCH = ['bench', '--impl', 'zero-buffer', '--experts', '4', '--tokens', '32', '--hidden', '16', '--ffn', '32', '--max-time', '60', '--noise-target', '0.0001'];

function start(args: readonly string[]): { proc: ChildProcess; stderr: () => string; done: Promise<{ code: number | null; signal: string | null }> } {
  const proc = spawn('node', ['bin/run.js', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  proc.stdout!.resume();
  const done = new Promise<{ code: number | null; signal: string | null }>((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })));
  return { proc, stderr: () => err, done };
}

async function until(test: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (test()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return test();
}

/** The first child of `pid`, from /proc (no procps needed). */
function childOf(pid: number): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Field 4 of /proc/<pid>/stat is the parent pid; the command name (field 2) may hold spaces.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) return Number(entry);
    } catch {
      // the process ended while we looked
    }
  }
  throw new Error(`no child of ${pid}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('the filtering wrapper', () => {
  it('SIGINT sent to the wrapper pid alone stops a bench within a second, lock removed, exit 130', async () => {
    const out = join(work, 'sigint');
    const run = start([...LONG_BENCH, '--out', out]);
    expect(await until(() => run.stderr().includes('[1/1]'), 90_000)).toBe(true);
    const sent = Date.now();
    run.proc.kill('SIGINT');
    const { code } = await run.done;
    expect(Date.now() - sent).toBeLessThan(3000);
    expect(code).toBe(130);
    expect(run.stderr()).toMatch(/resume/);
    expect(existsSync(join(out, '.moeblaze.lock'))).toBe(false);
  });

  it('SIGKILL to the wrapper takes the work with it: no orphan', async () => {
    const run = start([...LONG_BENCH, '--out', join(work, 'sigkill')]);
    expect(await until(() => run.stderr().includes('[1/1]'), 90_000)).toBe(true);
    const child = childOf(run.proc.pid!);
    expect(alive(child)).toBe(true);
    run.proc.kill('SIGKILL');
    await run.done;
    expect(await until(() => !alive(child), 3000)).toBe(true);
  });

  it('a reader that leaves early (plan --json | head -c 10) is no error: exit 0, nothing on stderr', async () => {
    const proc = spawn('node', ['bin/run.js', 'plan', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    proc.stderr!.on('data', (d) => (err += d));
    proc.stdout!.once('data', () => proc.stdout!.destroy());
    const code = await new Promise<number | null>((resolve) => proc.on('close', (c) => resolve(c)));
    expect(err).not.toMatch(/EPIPE|Error/);
    expect(code).toBe(0);
  });

  it('devices | head -1: exit 0, no stack trace', () => {
    const result = execFileSync('bash', ['-c', 'set -o pipefail; node bin/run.js devices | head -1 >/dev/null; echo "status ${PIPESTATUS[0]}"'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(result.trim()).toBe('status 0');
  });
});
