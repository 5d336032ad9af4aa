/**
 * The commit a build was made from, stamped into dist/ by `npm run build` (issue 29): the GPU
 * machine gets the tree without .git (pack.sh), and its results must still name the code they
 * measured. provenance.ts reads it where git cannot answer.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeFileAtomic } from '../fs.js';

/** dist/build-info.json */
export interface BuildInfo {
  format: 'moeblaze.build-info/v1';
  /** HEAD when the build ran; null outside a git checkout. */
  gitCommit: string | null;
  /** The work tree differed from HEAD (tracked changes or untracked files git does not ignore). */
  dirty: boolean | null;
  time: string;
}

export const BUILD_INFO_FILE = join('dist', 'build-info.json');

function git(root: string, args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
  } catch {
    return null;
  }
}

/** What the checkout at `root` is: its HEAD and whether anything in it is uncommitted. */
export function describeCheckout(root: string): Pick<BuildInfo, 'gitCommit' | 'dirty'> {
  const head = git(root, ['rev-parse', 'HEAD'])?.trim() ?? null;
  if (!head || !/^[0-9a-f]{40,64}$/.test(head)) return { gitCommit: null, dirty: null };
  const status = git(root, ['status', '--porcelain']);
  return { gitCommit: head, dirty: status === null ? null : status.trim() !== '' };
}

/** Reads dist/build-info.json under `root`; null when absent or not one. */
export function readBuildInfo(root: string): BuildInfo | null {
  try {
    const info = JSON.parse(readFileSync(join(root, BUILD_INFO_FILE), 'utf8')) as Partial<BuildInfo>;
    if (info.format !== 'moeblaze.build-info/v1') return null;
    const commit = typeof info.gitCommit === 'string' && /^[0-9a-f]{40,64}$/.test(info.gitCommit) ? info.gitCommit : null;
    return { format: info.format, gitCommit: commit, dirty: typeof info.dirty === 'boolean' ? info.dirty : null, time: String(info.time ?? '') };
  } catch {
    return null;
  }
}

export async function writeBuildInfo(root: string): Promise<BuildInfo> {
  const info: BuildInfo = { format: 'moeblaze.build-info/v1', ...describeCheckout(root), time: new Date().toISOString() };
  await writeFileAtomic(join(root, BUILD_INFO_FILE), `${JSON.stringify(info, null, 2)}\n`);
  return info;
}

// `node dist/src/measure/build-info.js ROOT`: the last step of `npm run build`.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const root = process.argv[2] ?? join(fileURLToPath(new URL('.', import.meta.url)), '../../..');
  const info = await writeBuildInfo(root);
  console.log(`${BUILD_INFO_FILE}: ${info.gitCommit ?? 'no git commit'}${info.dirty ? ' (uncommitted changes)' : ''}`);
}
