import { mkdirSync, readdirSync, readFileSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DiskFullError, UsageError } from './errors.js';
import { isDiskFull } from './fs.js';
import { ownIdentity, parseIdentity, processAlive } from './pid.js';

/**
 * One writer per output folder (a bench's --out, a verify --dump): two runs writing one folder
 * would each rewrite its files, and one run's results would be lost or mixed with the other's
 * without a word. The lock file holds the owner's process id and start time (src/pid.ts: a
 * recycled pid is not the owner); it is removed on exit, and taken over when that process is
 * gone (a run killed with SIGKILL cannot remove it).
 */
export const LOCK_FILE = '.moeblaze.lock';

export interface FolderLock {
  readonly path: string;
  release(): void;
}

function ownerOf(path: string): { pid: number; start: string | null } | null {
  try {
    return parseIdentity(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

export interface LockOptions {
  /** The flag that named the folder, for messages [default: out]. */
  flag?: string;
  /** What holds such a lock, for the message when another live one does [default: bench]. */
  holder?: string;
  /** The first folder the caller created for this lock (removed with it when left empty). */
  created?: string;
}

/** Creates `dir` if needed and locks it for this process; a UsageError (exit 2) when another live process holds it. */
export function lockFolder(dir: string, flagOrOptions: string | LockOptions = 'out'): FolderLock {
  const { flag = 'out', holder = 'bench', created: createdByCaller } = typeof flagOrOptions === 'string' ? { flag: flagOrOptions } : flagOrOptions;
  // The first folder mkdir creates, if any: released with the lock when the run wrote nothing into it.
  let created: string | undefined;
  try {
    created = mkdirSync(dir, { recursive: true }) ?? createdByCaller;
  } catch (error) {
    if (isDiskFull(error)) throw new DiskFullError(dir);
    throw new UsageError(`--${flag}: cannot create "${dir}" (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(path, `${ownIdentity()}\n`, { flag: 'wx' });
      return lockAt(path, created === undefined ? [] : createdFolders(resolve(dir), resolve(created)));
    } catch (error) {
      if (isDiskFull(error)) throw new DiskFullError(path);
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new UsageError(`--${flag}: cannot lock "${dir}" (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    const owner = ownerOf(path);
    if (owner !== null && owner.pid !== process.pid && processAlive(owner.pid, owner.start)) {
      throw new UsageError(`--${flag}: another moeblaze ${holder} (process ${owner.pid}) is writing to "${dir}"; wait for it to end or choose another folder`);
    }
    // The owner is gone (or the file is unreadable): take the folder over, with the temporary files its writes left.
    if (owner !== null && owner.pid !== process.pid) removeTempsOf(dir, owner.pid);
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
      if (ownerOf(path)?.pid === process.pid) unlinkSync(path);
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
