import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/measure/provenance.js';

const root = packageRoot();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** The built CLI as a user runs it: a child process, so exit codes and prompt exit are real. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const start = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [join(root, 'bin/run.js'), ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1', ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - start });
    });
  });
}

beforeAll(() => {
  if (!existsSync(join(root, 'dist/commands/devices.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does it first)');
});

describe('moeblaze devices', () => {
  it('--json prints only JSON: the llvmpipe adapter with timestamp-query, the host and provenance', async () => {
    const run = await cli(['devices', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    const llvmpipe = report.adapters.find((a: { description: string }) => /llvmpipe/i.test(a.description));
    expect(llvmpipe).toBeDefined();
    expect(llvmpipe.features).toContain('timestamp-query');
    expect(llvmpipe.subgroupMinSize).toBeGreaterThan(0);
    expect(llvmpipe.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(report.host.cpu.cores).toBeGreaterThan(0);
    expect(report.host.memoryBytes).toBeGreaterThan(0);
    expect(report.host.os.kernel).not.toBe('');
    expect(Array.isArray(report.host.gpus)).toBe(true);
    expect(report.provenance).toMatchObject({ tool: { name: 'moeblaze' }, commandLine: 'node bin/run.js devices --json', dawnVersion: expect.stringMatching(/^\d+\.\d+\.\d+/), node: process.version });
    expect(Date.parse(report.provenance.time)).not.toBeNaN();
    // The process must end on its own, promptly (dawn.node can keep Node alive).
    expect(run.ms).toBeLessThan(20_000);
  });

  it('lists the Dawn toggles each adapter was opened with and the subgroup-matrix configurations; --no-nvidia-f16 drops that toggle', async () => {
    const on = JSON.parse((await cli(['devices', '--json'])).stdout).adapters[0];
    expect(on.toggles.enabled).toEqual(['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia']);
    expect(Array.isArray(on.subgroupMatrixConfigs)).toBe(true);
    const off = JSON.parse((await cli(['devices', '--json', '--no-nvidia-f16', '--unsafe-disable-robustness'])).stdout).adapters[0];
    expect(off.toggles.enabled).toEqual(['allow_unsafe_apis', 'disable_robustness']);
  });

  it('renders a table without colour codes when NO_COLOR is set', async () => {
    const run = await cli(['devices', '--adapter', 'llvmpipe']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/llvmpipe/);
    expect(run.stdout).toMatch(/maxStorageBufferBindingSize/);
    expect(run.stdout).toMatch(/timestamp-query/);
    expect(run.stdout).toMatch(/Host/);
    // lavapipe has no subgroup matrices: the engine's row says why it cannot run there.
    expect(run.stdout).toMatch(/matrix engine\s+│ unavailable: no [\w-]*chromium-experimental-subgroup-matrix/);
    expect(run.stdout).not.toMatch(/\u001b\[/);
  });

  it('numbers the adapters from 0, and --adapter N picks adapter N (issue 32)', async () => {
    const all = JSON.parse((await cli(['devices', '--json'])).stdout) as { adapters: { index: number; description: string }[] };
    expect(all.adapters.map((a) => a.index)).toEqual(all.adapters.map((_, i) => i));
    const run = await cli(['devices', '--adapter', '0']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`Adapter 0: ${all.adapters[0].description}`);
    expect(run.stdout).not.toMatch(/^Adapter 1:/m);
  });

  it('an adapter name nothing has exits 4 and names the adapters found', async () => {
    const run = await cli(['devices', '--adapter', 'no-such-gpu']);
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/^moeblaze: --adapter: no adapter matches "no-such-gpu"; adapters found: .*llvmpipe/m);
    expect(run.stdout).toBe('');
  });

  it('keeps exit 4 under --json, with the error as the only stdout', async () => {
    const run = await cli(['devices', '--adapter', 'no-such-gpu', '--json']);
    expect(run.code).toBe(4);
    expect(JSON.parse(run.stdout)).toMatchObject({ error: { name: 'EnvironmentError', exitCode: 4 } });
  });

  it('with no Vulkan driver at all, prints the fix and exits 4', async () => {
    const run = await cli(['devices'], { VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' });
    expect(run.code).toBe(4);
    expect(run.stderr).toContain('Dawn found no WebGPU adapter');
    expect(run.stderr).toContain('bookworm-backports');
    expect(run.stderr).toContain('mesa-vulkan-drivers');
  });

  it('a malformed flag exits 2 with one line, with or without --json', async () => {
    for (const args of [['devices', '--bogus'], ['devices', '--backend', 'glide'], ['devices', '--bogus', '--json']]) {
      const run = await cli(args);
      expect(run.code, args.join(' ')).toBe(2);
      const lines = run.stderr.split('\n').filter((l) => l.startsWith('moeblaze: '));
      expect(lines, run.stderr).toHaveLength(1);
    }
  });

  it('--help exits 0 and lists the GPU flags', async () => {
    const run = await cli(['devices', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/--adapter/);
    expect(run.stdout).toMatch(/--backend/);
  });
});
