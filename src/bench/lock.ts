import { mkdirSync, readdirSync, readFileSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';

/**
 * One bench per output folder: two runs writing one results.json would each rewrite it after
 * every case, and one run's results would be lost without a word. The lock file holds the
 * owner's process id; it is removed on exit, and taken over when that process is gone (a run
 * killed with SIGKILL cannot remove it).
 */
export const LOCK_FILE = '.moeblaze.lock';

export interface FolderLock {
  readonly path: string;
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function ownerOf(path: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Creates `dir` if needed and locks it for this process; a UsageError (exit 2) when another live process holds it. */
export function lockFolder(dir: string, flag = 'out'): FolderLock {
  // The first folder mkdir creates, if any: released with the lock when the run wrote nothing into it.
  const created = mkdirSync(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      return lockAt(path, created === undefined ? [] : createdFolders(resolve(dir), resolve(created)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new UsageError(`--${flag}: cannot lock "${dir}" (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    const owner = ownerOf(path);
    if (owner !== null && owner !== process.pid && alive(owner)) {
      throw new UsageError(`--${flag}: another moeblaze bench (process ${owner}) is writing to "${dir}"; wait for it to end or choose another folder`);
    }
    // The owner is gone (or the file is unreadable): take the folder over, with the temporary files its writes left.
    if (owner !== null && owner !== process.pid) removeTempsOf(dir, owner);
    try {
      unlinkSync(path);
    } catch {
      // Another process took it over first; the next attempt sees its lock.
    }
  }
  throw new UsageError(`--${flag}: cannot lock "${dir}": other processes keep taking it`);
}

/** writeFileAtomic names its temporary files <name>.tmp-<pid>-<n>: a killed run's are garbage. */
function removeTempsOf(dir: string, pid: number): void {
  for (const name of readdirSync(dir)) {
    if (name.includes(`.tmp-${pid}-`)) {
      try {
        unlinkSync(join(dir, name));
      } catch {
        // Gone already.
      }
    }
  }
}

/** The folders mkdir created, deepest first: from `dir` up to `first`. */
function createdFolders(dir: string, first: string): string[] {
  const folders = [dir];
  while (folders.at(-1) !== first && dirname(folders.at(-1)!) !== folders.at(-1)) folders.push(dirname(folders.at(-1)!));
  return folders;
}

function lockAt(path: string, createdFolders: string[]): FolderLock {
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.off('exit', release);
    try {
      if (ownerOf(path) === process.pid) unlinkSync(path);
    } catch {
      // Already gone.
    }
    // A run that failed before its first result (no adapter, say) leaves no empty folder behind.
    for (const folder of createdFolders) {
      try {
        rmdirSync(folder);
      } catch {
        break; // Not empty: results were written.
      }
    }
  };
  process.on('exit', release);
  return { path, release };
}
