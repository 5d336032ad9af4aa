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

export function wantsFilter(argv: readonly string[], env: NodeJS.ProcessEnv): boolean {
  return !env[CHILD] && env.MOEBLAZE_DAWN_STDERR !== '1' && !argv.includes('--verbose');
}

/**
 * Runs this same script again as a child whose stderr goes through the filter, and exits with
 * its status. The child is told whether stderr is a terminal, so it still draws progress in place.
 */
export function runFiltered(script: string): void {
  const stderr = process.stderr;
  // A terminal keeps stdout (colours, widths); a pipe or file (--json) gets Dawn's logs filtered out.
  const pipeStdout = !process.stdout.isTTY;
  const child = spawn(process.execPath, [...process.execArgv, script, ...process.argv.slice(2)], {
    stdio: ['inherit', pipeStdout ? 'pipe' : 'inherit', 'pipe'],
    env: { ...process.env, [CHILD]: '1', ...(stderr.isTTY ? { MOEBLAZE_STDERR_TTY: String(stderr.columns || 80) } : {}) },
  });
  const filter = createLineFilter((text) => stderr.write(text));
  const out = pipeStdout ? createCompilationLogFilter((text) => process.stdout.write(text)) : null;
  if (out) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => out.push(chunk));
  }
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => filter.push(chunk));
  // Ctrl-C reaches both processes (one process group): the child handles it, this one waits.
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  process.on('SIGINT', () => {});
  process.on('SIGTERM', forward('SIGTERM'));
  process.on('SIGHUP', forward('SIGHUP'));
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

/** In the child: stderr is a pipe to the parent, but the user sees a terminal (progress redraws). */
export function restoreStderrTty(env: NodeJS.ProcessEnv): void {
  const columns = Number(env.MOEBLAZE_STDERR_TTY);
  if (!env[CHILD] || !columns) return;
  Object.assign(process.stderr, { isTTY: true, columns });
}
