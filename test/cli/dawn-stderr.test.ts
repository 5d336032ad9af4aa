import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLineFilter, wantsFilter } from '../../src/cli/dawn-stderr.js';
import { packageRoot } from '../../src/measure/provenance.js';

const NOISE = 'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n';

function filtered(chunks: string[]): string {
  let out = '';
  const f = createLineFilter((t) => (out += t));
  for (const c of chunks) f.push(c);
  f.end();
  return out;
}

describe("Dawn's stderr filter", () => {
  it('drops the limit warnings, also split across chunks, and keeps every other line', () => {
    expect(filtered([NOISE, 'moeblaze: bad flag\n', NOISE])).toBe('moeblaze: bad flag\n');
    expect(filtered([NOISE.slice(0, 5), NOISE.slice(5, 40), NOISE.slice(40), 'next\n'])).toBe('next\n');
    expect(filtered(['Warning: something else\n'])).toBe('Warning: something else\n');
  });

  it('passes a progress redraw without a newline through at once', () => {
    let out = '';
    const f = createLineFilter((t) => (out += t));
    f.push('\r\u001b[2K[3/20] tutel');
    expect(out).toBe('\r\u001b[2K[3/20] tutel');
    f.push(' E=4\n');
    expect(out).toBe('\r\u001b[2K[3/20] tutel E=4\n');
  });

  it('is skipped under --verbose, MOEBLAZE_DAWN_STDERR=1, and in the child itself', () => {
    expect(wantsFilter(['bench'], {})).toBe(true);
    expect(wantsFilter(['bench', '--verbose'], {})).toBe(false);
    expect(wantsFilter(['bench'], { MOEBLAZE_DAWN_STDERR: '1' })).toBe(false);
    expect(wantsFilter(['bench'], { MOEBLAZE_STDERR_FILTERED: '1' })).toBe(false);
  });

  it('the CLI shows no Dawn warning by default and shows them with --verbose; exit codes pass through', async () => {
    const root = packageRoot();
    const cli = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(process.execPath, [join(root, 'bin/run.js'), ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) =>
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
        ),
      );
    const quiet = await cli(['devices', '--json']);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).not.toMatch(/artificially reduced/);
    const verbose = await cli(['devices', '--json', '--verbose']);
    expect(verbose.code).toBe(0);
    // Only where Dawn says it (lavapipe does): the flag must at least be accepted.
    if (/llvmpipe/.test(verbose.stdout)) expect(verbose.stderr).toMatch(/artificially reduced/);
    expect((await cli(['gate', '--baseline', 'nope.json', '--current', 'nope.json'])).code).toBe(2);
  });
});
