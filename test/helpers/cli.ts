import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/*
 * The CLI as users run it, in a child process: for what only a real process shows (signals,
 * pipes, two runs at once). MOEBLAZE_DAWN_STDERR=1 runs the command itself, without the
 * stderr-filtering parent, unless `wrapper` asks for it.
 */

export const root = resolve(import.meta.dirname, '../..');

/** One CLI run to its end, as a shell runs it (through the stderr-filtering parent): its exit status and output. */
export function runCli(args: string[], options: { cwd?: string; timeout?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [join(root, 'bin/run.js'), ...args], { cwd: options.cwd ?? root, timeout: options.timeout ?? 300_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** performance.now() when the process ended. */
  endedAt: number;
}

export function startCli(args: string[], options: { cwd?: string; wrapper?: boolean; env?: NodeJS.ProcessEnv } = {}): { child: ChildProcess; done: Promise<CliRun>; output: () => { stdout: string; stderr: string } } {
  const env = { ...process.env, NO_COLOR: '1', ...(options.wrapper ? {} : { MOEBLAZE_DAWN_STDERR: '1' }), ...options.env };
  if (options.wrapper) delete env.MOEBLAZE_DAWN_STDERR;
  const child = spawn(process.execPath, [join(root, 'bin/run.js'), ...args], { cwd: options.cwd ?? root, env });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<CliRun>((resolveRun) => child.on('close', (code, signal) => resolveRun({ code, signal, stdout, stderr, endedAt: performance.now() })));
  return { child, done, output: () => ({ stdout, stderr }) };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether `pid` has a handler for `signal` (Linux: SigCgt in /proc/<pid>/status); null where /proc does not say. */
export function catches(pid: number, signal: 'SIGINT' | 'SIGTERM'): boolean | null {
  try {
    const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    if (!mask) return null;
    const bit = BigInt(signal === 'SIGINT' ? 2 : 15) - 1n;
    return ((BigInt(`0x${mask}`) >> bit) & 1n) === 1n;
  } catch {
    return null;
  }
}

/** Waits until the process handles SIGINT and SIGTERM (the command's handler is installed), or has ended. */
export async function waitForHandlers(child: ChildProcess, done: Promise<CliRun>): Promise<boolean> {
  let ended = false;
  void done.then(() => (ended = true));
  while (!ended) {
    if (catches(child.pid!, 'SIGINT') && catches(child.pid!, 'SIGTERM')) return true;
    await sleep(10);
  }
  return false;
}
