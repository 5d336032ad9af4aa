import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The CLI as a user runs it: at a real terminal. util-linux's `script` gives the command a
 * pseudo-terminal of a chosen width, so stdout and stderr are TTYs as they are for someone
 * typing the README's quick start (every other test pipes them). Issue 25 §1: every command
 * once crashed here, because the Dawn-warning filter dressed its stderr pipe up as a TTY.
 */
const ROOT = join(import.meta.dirname, '..', '..');
const hasScript = spawnSync('script', ['--version']).status === 0;
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;
const out = mkdtempSync(join(tmpdir(), 'moeblaze-pty-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function quote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Runs `command` (argv) under a pseudo-terminal `columns` wide; returns its exit code and screen text. */
function atTerminal(columns: number, command: readonly string[], cwd = ROOT): { status: number; raw: string; lines: string[] } {
  const line = `stty cols ${columns} rows 50; ${command.map(quote).join(' ')}`;
  const result = spawnSync('script', ['-qec', line, '/dev/null'], { cwd, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: undefined, NO_COLOR: undefined, CI: undefined }, timeout: 110_000 });
  const raw = result.stdout ?? '';
  // A progress bar redraws one line with "\r": each redraw is a line as the terminal shows it.
  const lines = raw.replace(ANSI, '').split(/\r\n|\r|\n/);
  return { status: result.status ?? -1, raw, lines };
}

/** Lines wider than the terminal, with their widths (empty when everything fits). */
function overflow(lines: readonly string[], columns: number): string[] {
  return lines.filter((l) => [...l].length > columns).map((l) => `${[...l].length}: ${l}`);
}

const CLI = ['node', join(ROOT, 'bin', 'run.js')];
const TINY_BENCH = ['bench', '--impl', 'zero-buffer', '--experts', '4', '--tokens', '32', '--hidden', '16', '--ffn', '32', '--max-time', '0.2'];

describe.skipIf(!hasScript)('at a real terminal (script(1) pseudo-terminal)', () => {
  it('the README quick start command line starts: npx moeblaze --help fits 80 columns', () => {
    const r = atTerminal(80, ['npx', 'moeblaze', '--help']);
    expect(r.raw).not.toMatch(/TypeError|getWindowSize|at .*\.js:\d+/);
    expect(r.status).toBe(0);
    expect(r.raw).toMatch(/USAGE/);
    expect(overflow(r.lines, 80)).toEqual([]);
  });

  for (const columns of [80, 150]) {
    it(`--help, devices and plan exit 0, with colour, within ${columns} columns`, () => {
      for (const args of [['--help'], ['devices'], ['plan']]) {
        const r = atTerminal(columns, [...CLI, ...args]);
        expect(r.raw, args.join(' ')).not.toMatch(/TypeError|internal error/);
        expect(r.status, args.join(' ')).toBe(0);
        if (args[0] !== '--help') expect(r.raw, `${args[0]} shows colour on a terminal`).toMatch(ANSI);
        expect(overflow(r.lines, columns), `${args.join(' ')} fits ${columns} columns`).toEqual([]);
      }
    });

    it(`a tiny bench draws its progress in place, with colour, within ${columns} columns`, () => {
      // A short relative --out, so that the "wrote …" line (a path, which nothing can wrap) fits.
      const r = atTerminal(columns, [...CLI, ...TINY_BENCH, '--out', `b${columns}`], out);
      expect(r.raw).not.toMatch(/TypeError|internal error/);
      expect(r.status).toBe(0);
      expect(r.raw).toMatch(/\r\x1b\[2K\[1\/1\]/); // the bar is redrawn in place: stderr is known to be a terminal
      expect(r.raw).toMatch(ANSI);
      expect(overflow(r.lines, columns)).toEqual([]);
    });
  }

  it('the child never pretends its stderr pipe is a TTY', () => {
    // The filter's child gets the terminal width in the environment instead (src/render/terminal.ts).
    const probe = `import('${join(ROOT, 'dist/src/cli/dawn-stderr.js')}').then((m) => console.log(JSON.stringify(m.childEnvironment({}, { isTTY: true, columns: 123 }, 42))))`;
    const env = JSON.parse(execFileSync('node', ['-e', probe], { encoding: 'utf8' }));
    expect(env).toMatchObject({ MOEBLAZE_STDERR_COLUMNS: '123', MOEBLAZE_PARENT_PID: '42' });
  });
});
