import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILD_INFO_FILE, readBuildInfo, writeBuildInfo } from '../../src/measure/build-info.js';

/*
 * Results name their commit even where the tree has no .git (issue 29): `npm run build` stamps
 * dist/build-info.json, and provenance reads it when git cannot answer.
 */

const root = resolve(import.meta.dirname, '../..');
const git = (cwd: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd, encoding: 'utf8' }).trim();

describe('build info', () => {
  it('stamps HEAD and whether the tree is dirty: a tracked change or an untracked file', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'moeblaze-stamp-'));
    git(repo, 'init', '-q');
    writeFileSync(join(repo, '.gitignore'), 'dist/\n');
    writeFileSync(join(repo, 'a.txt'), 'a\n');
    git(repo, 'add', '.');
    git(repo, 'commit', '-qm', 'one');
    const head = git(repo, 'rev-parse', 'HEAD');
    // Its own output (dist/, ignored) does not make the tree dirty.
    expect(await writeBuildInfo(repo)).toMatchObject({ gitCommit: head, dirty: false });
    expect(readBuildInfo(repo)).toMatchObject({ gitCommit: head, dirty: false });
    writeFileSync(join(repo, 'b.txt'), 'new\n');
    expect((await writeBuildInfo(repo)).dirty).toBe(true);
    git(repo, 'add', 'b.txt');
    git(repo, 'commit', '-qm', 'two');
    writeFileSync(join(repo, 'a.txt'), 'changed\n');
    expect(await writeBuildInfo(repo)).toMatchObject({ gitCommit: git(repo, 'rev-parse', 'HEAD'), dirty: true });
  });

  it('outside git: no commit, unknown dirtiness; a file that is not build info reads as none', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moeblaze-nogit-'));
    expect(await writeBuildInfo(dir)).toMatchObject({ gitCommit: null, dirty: null });
    writeFileSync(join(dir, BUILD_INFO_FILE), '{"gitCommit": "abc"}');
    expect(readBuildInfo(dir)).toBeNull();
    writeFileSync(join(dir, BUILD_INFO_FILE), '{');
    expect(readBuildInfo(dir)).toBeNull();
  });

  it('npm run build stamped this build, and a copy of it without .git still names the commit (provenance)', () => {
    const stamped = readBuildInfo(root);
    expect(stamped?.gitCommit).toMatch(/^[0-9a-f]{40}$/);
    // The built tool, copied where no git repository is (as pack.sh ships it), with the stamp.
    const copy = mkdtempSync(join(tmpdir(), 'moeblaze-bundle-'));
    cpSync(join(root, 'dist'), join(copy, 'dist'), { recursive: true });
    cpSync(join(root, 'package.json'), join(copy, 'package.json'));
    const probe = `import(${JSON.stringify(join(copy, 'dist/src/measure/provenance.js'))}).then((m) => console.log(JSON.stringify(m.codeVersion())))`;
    const run = (env: NodeJS.ProcessEnv) => JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: copy, encoding: 'utf8', env: { ...process.env, GIT_CEILING_DIRECTORIES: tmpdir(), ...env } }));
    expect(run({})).toEqual({ gitCommit: stamped!.gitCommit, gitDirty: stamped!.dirty });
    // Without the stamp, only MOEBLAZE_GIT_COMMIT is left; without that, nothing.
    writeFileSync(join(copy, BUILD_INFO_FILE), '{}');
    expect(run({ MOEBLAZE_GIT_COMMIT: 'f'.repeat(40) })).toEqual({ gitCommit: 'f'.repeat(40), gitDirty: null });
    expect(run({ MOEBLAZE_GIT_COMMIT: '' })).toEqual({ gitCommit: null, gitDirty: null });
  });
});
