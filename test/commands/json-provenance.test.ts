import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/measure/provenance.js';

const root = packageRoot();
const LAYER = ['--tokens', '32', '--hidden', '16', '--ffn', '32', '--experts', '4', '--top-k', '2'];
const BASELINE = 'reports/baselines/lavapipe-quick.json';

/** Every command's --json, cheapest form each (devices and profile have their own tests). */
const COMMANDS: string[][] = [
  ['verify', ...LAYER, '--impl', 'zero-buffer'],
  ['train', '--steps', '2', '--tokens', '32'],
  ['plan', ...LAYER],
  ['bench', '--list-presets'],
  ['gate', '--baseline', BASELINE, '--current', BASELINE, '--advisory-speed'],
];

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [join(root, 'bin/run.js'), ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    ),
  );
}

describe('provenance in every --json', () => {
  for (const args of COMMANDS) {
    it(`${args[0]} --json records the tool, Dawn, Node and the command line as typed`, async () => {
      const r = await cli([...args, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const p = JSON.parse(r.stdout).provenance;
      expect(p).toMatchObject({ tool: { name: 'moeblaze' }, node: process.version, commandLine: `node bin/run.js ${[...args, '--json'].join(' ')}` });
      expect(p.dawnVersion).toMatch(/^\d+\.\d+\.\d+/);
      expect(Date.parse(p.time)).not.toBeNaN();
    }, 120_000);
  }
});
