import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { collectProvenance, packageRoot, shellQuote, typedProgram } from '../../src/measure/provenance.js';

const root = packageRoot();
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

describe('provenance', () => {
  it('names the tool, Dawn, Node, the platform, the command line and the time', () => {
    const p = collectProvenance(['verify', '--tokens', '64', '--skew', "it's"]);
    expect(p.tool).toEqual({ name: 'moeblaze', version: pkg.version });
    expect(p.dawnVersion).toBe(JSON.parse(readFileSync(join(root, 'node_modules/webgpu/package.json'), 'utf8')).version);
    expect(p.node).toBe(process.version);
    expect(p.platform).toBe(`${process.platform}-${process.arch}`);
    expect(p.commandLine).toBe(`moeblaze verify --tokens 64 --skew 'it'\\''s'`);
    expect(p.adapter).toBeNull();
    expect(Math.abs(Date.parse(p.time) - Date.now())).toBeLessThan(60_000);
  });

  it('records the git commit of the checkout, and none when the package is not a checkout of its own', () => {
    let head: string | null = null;
    try {
      const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      if (realpathSync(git('rev-parse', '--show-toplevel')) === realpathSync(root)) head = git('rev-parse', 'HEAD');
    } catch {
      // Not a git checkout (an installed package): null is the right answer.
    }
    expect(collectProvenance([]).gitCommit).toBe(head);
  });

  it('finds package.json from the built dist/src as well', async () => {
    const built = join(root, 'dist/src/measure/provenance.js');
    if (!existsSync(built)) return; // npm test builds first; a bare vitest run may not have
    const mod = (await import(pathToFileURL(built).href)) as typeof import('../../src/measure/provenance.js');
    expect(mod.packageRoot()).toBe(root);
    expect(mod.collectProvenance(['devices']).tool.version).toBe(pkg.version);
  });

  it('records the program as the user typed it', () => {
    expect(typedProgram('/home/u/moeblaze/bin/run.js', {}, '/home/u/moeblaze')).toBe('node bin/run.js');
    expect(typedProgram('/home/u/moeblaze/bin/run.js', {}, '/tmp')).toBe('node /home/u/moeblaze/bin/run.js');
    expect(typedProgram('/home/u/p/node_modules/.bin/moeblaze', { npm_command: 'exec' }, '/home/u/p')).toBe('npx moeblaze');
    expect(typedProgram('/usr/local/bin/moeblaze', {}, '/')).toBe('moeblaze');
    // Inside a test runner or a library user's program nothing was typed: the tool's name.
    expect(typedProgram('/x/node_modules/vitest/vitest.mjs', {}, '/x')).toBe('moeblaze');
  });

  it('quotes only what a shell would need', () => {
    expect(shellQuote('--memory-limit=8GiB')).toBe('--memory-limit=8GiB');
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote('')).toBe("''");
  });
});
