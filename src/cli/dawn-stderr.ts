import { spawn } from 'node:child_process';

/**
 * Dawn's native code writes warnings straight to file descriptor 2, past anything Node can
 * intercept. The only one seen in practice, "<limit> artificially reduced from N to M to fit
 * dynamic offset allocation limit", appears several times on every command and is harmless, so
 * the CLI runs itself as a child with stderr piped through this filter. `--verbose` (or
 * MOEBLAZE_DAWN_STDERR=1) skips the filter and shows everything Dawn says.
 */
export const DAWN_NOISE = /^Warning: \w+ artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\r?$/;
const PREFIX = 'Warning: ';

/**
 * A streaming filter that drops whole lines matching `noise` and passes everything else through
 * as soon as it can: a partial line is held back only while it could still become a noise line,
 * so progress redrawn with "\r" (no newline) shows without delay.
 */
export function createLineFilter(write: (text: string) => void, noise: RegExp = DAWN_NOISE): { push(chunk: string): void; end(): void } {
  let held = '';
  let passing = false; // part of the current line was already written: the rest goes through
  return {
    push(chunk: string) {
      let text = held + chunk;
      held = '';
      while (text.length) {
        const nl = text.indexOf('\n');
        const line = nl < 0 ? text : text.slice(0, nl);
        if (passing) {
          write(nl < 0 ? text : text.slice(0, nl + 1));
          passing = nl < 0;
        } else if (nl < 0) {
          if (PREFIX.startsWith(line) || line.startsWith(PREFIX)) held = line;
          else {
            write(line);
            passing = true;
          }
        } else if (!noise.test(line)) {
          write(text.slice(0, nl + 1));
        }
        text = nl < 0 ? '' : text.slice(nl + 1);
      }
    },
    end() {
      if (held && !noise.test(held)) write(held);
      held = '';
    },
  };
}

/**
 * Dawn prints a WGSL compilation log with warnings (the subgroup-matrix builtins are reported as
 * deprecated) to file descriptor 1, where it would corrupt `--json` output. This filter drops
 * those blocks: a bare "warning:" line, "Compilation log for [ShaderModule …]:" and what follows it
 * (blank, indented, ":line:col warning: …" and "N warning(s) generated …" lines), and Dawn's "Reached
 * the WGSL compilation log warning limit" notice. Everything else passes, whole lines at a time.
 */
export function createCompilationLogFilter(write: (text: string) => void): { push(chunk: string): void; end(): void } {
  let held = '';
  let inBlock = false;
  const keep = (line: string): boolean => {
    if (line === 'warning:' || line.startsWith('Reached the WGSL compilation log warning limit')) return false;
    if (line.startsWith('Compilation log for [ShaderModule')) return !(inBlock = true);
    if (inBlock && (line === '' || /^\s/.test(line) || /^\d+ warning\(s\) generated/.test(line) || /^:\d+:\d+ (warning|note|info)/.test(line))) return false;
    inBlock = false;
    return true;
  };
  return {
    push(chunk: string) {
      const lines = (held + chunk).split('\n');
      held = lines.pop()!;
      for (const line of lines) if (keep(line)) write(`${line}\n`);
    },
    end() {
      if (held && keep(held)) write(held);
      held = '';
    },
  };
}

/** The environment variable that marks the child, so that it does not spawn itself again. */
const CHILD = 'MOEBLAZE_STDERR_FILTERED';
/** The child's stderr is a pipe: the parent's terminal width goes here when the user sees a terminal. */
export const STDERR_COLUMNS = 'MOEBLAZE_STDERR_COLUMNS';
/** The parent's pid: the child exits when it is re-parented (the parent was killed). */
const PARENT = 'MOEBLAZE_PARENT_PID';

export function wantsFilter(argv: readonly string[], env: NodeJS.ProcessEnv): boolean {
  return !env[CHILD] && env.MOEBLAZE_DAWN_STDERR !== '1' && !argv.includes('--verbose');
}

/**
 * A write to a reader that has left (`moeblaze plan --json | head -c 10`) fails with EPIPE: from
 * then on the stream's output is dropped, and the work that saves data goes on, as `git log |
 * head` does. Any other stream error is still thrown.
 */
export function quietOnBrokenPipe(stream: NodeJS.WriteStream): { readonly gone: boolean } {
  const state = { gone: false };
  stream.on('error', (error: NodeJS.ErrnoException) => {
    // After the first EPIPE, later writes fail as writes to a destroyed stream.
    if (error.code !== 'EPIPE' && !(state.gone && error.code === 'ERR_STREAM_DESTROYED')) throw error;
    state.gone = true;
  });
  return state;
}

/** The child's environment: marked, with the parent's pid and, on a terminal, its stderr width. */
export function childEnvironment(env: NodeJS.ProcessEnv, stderr: { isTTY?: boolean; columns?: number }, parentPid: number): NodeJS.ProcessEnv {
  const columns = stderr.isTTY ? String(stderr.columns || 80) : undefined;
  return { ...env, [CHILD]: '1', [PARENT]: String(parentPid), ...(columns ? { [STDERR_COLUMNS]: columns } : {}) };
}

/**
 * Runs this same script again as a child whose stderr goes through the filter, and exits with
 * its status. The child's stdout is the terminal itself when stdout is one (oclif and chalk see
 * a real TTY); its stderr is always a pipe, never dressed up as a TTY (oclif asks a TTY for its
 * window size): the width travels in the environment instead (src/render/terminal.ts).
 * Signals sent to this process reach the child; the child exits if this process dies.
 */
export function runFiltered(script: string): void {
  const stderr = process.stderr;
  // A terminal keeps stdout (colours, widths); a pipe or file (--json) gets Dawn's logs filtered out.
  const pipeStdout = !process.stdout.isTTY;
  const child = spawn(process.execPath, [...process.execArgv, script, ...process.argv.slice(2)], {
    stdio: ['inherit', pipeStdout ? 'pipe' : 'inherit', 'pipe'],
    env: childEnvironment(process.env, stderr, process.pid),
  });
  const stdoutState = quietOnBrokenPipe(process.stdout);
  const stderrState = quietOnBrokenPipe(stderr);
  const filter = createLineFilter((text) => stderrState.gone || stderr.write(text));
  const out = pipeStdout ? createCompilationLogFilter((text) => stdoutState.gone || process.stdout.write(text)) : null;
  if (out) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => out.push(chunk));
  }
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => filter.push(chunk));
  // Forwarded whether the signal came from `kill <pid>` or the terminal: the child's handler
  // exits on the first one, so Ctrl-C reaching both processes at once does no harm.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => child.exitCode === null && child.kill(signal));
  child.on('close', (code, signal) => {
    filter.end();
    out?.end();
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    process.exitCode = code ?? 1;
  });
}

/**
 * In the child: exit through the interrupt handler (SIGTERM: temporary files removed) once the
 * parent is gone, which a re-parented child sees as a changed parent pid. SIGKILL to the parent
 * would otherwise leave the child running, with nobody reading its output.
 */
export function followParent(env: NodeJS.ProcessEnv): void {
  const parent = Number(env[PARENT]);
  if (!env[CHILD] || !parent) return;
  const check = setInterval(() => {
    if (process.ppid !== parent) process.kill(process.pid, 'SIGTERM');
  }, 250);
  check.unref();
}
