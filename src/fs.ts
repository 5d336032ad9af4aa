import { accessSync, constants, lstatSync, readdirSync, realpathSync, statfsSync, statSync, unlinkSync } from 'node:fs';
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { DiskFullError, UsageError } from './errors.js';
import { processAlive } from './pid.js';

/*
 * Everything the commands write goes through here: output paths are checked before any GPU
 * work (a run must not end with "cannot write"), and files are written atomically, leaving
 * nothing half-written behind.
 */

/** A write in flight: its temporary file, and whether the rename into place has been asked for. */
interface PendingWrite {
  path: string;
  renaming: boolean;
}

/** Temporary files of writes in flight, so that an interrupted command (Ctrl-C) can remove them. */
const pendingTemps = new Map<string, PendingWrite>();
/** Files this process has put in place, in order: an interrupt says what was written before it. */
const completed: string[] = [];
/** Folders whose stale temporary files this process has already removed. */
const swept = new Set<string>();
let tempCounter = 0;

/** ENOSPC, or EDQUOT (a quota is full): the disk said no, not the program. */
export function isDiskFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** writeFileAtomic's temporary names: <name>.tmp-<pid>-<n>. */
const TEMP_NAME = /\.tmp-(\d+)-\d+$/;

/**
 * Removes the temporary files that writes of dead processes left in `dir` (a run killed by
 * SIGKILL cannot remove its own), once per folder and process, before the first write there.
 * A file of a live process is a write in flight and is left alone.
 */
export function removeStaleTemps(dir: string): void {
  const key = resolve(dir);
  if (swept.has(key)) return;
  swept.add(key);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(TEMP_NAME.exec(name)?.[1]);
    if (!pid || pid === process.pid || processAlive(pid)) continue;
    try {
      unlinkSync(join(dir, name));
    } catch {
      // Removed by another process meanwhile.
    }
  }
}

/**
 * Writes through a temporary name so that an interrupted run never leaves a torn file; removes
 * the temporary file when the write or rename fails. A full disk is a DiskFullError naming `path`
 * (exit 5), with the old file intact.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
  } catch (error) {
    throw isDiskFull(error) ? new DiskFullError(path) : error;
  }
  removeStaleTemps(dirname(path));
  const tmp = `${path}.tmp-${process.pid}-${tempCounter++}`;
  const pending: PendingWrite = { path, renaming: false };
  pendingTemps.set(tmp, pending);
  try {
    await writeFile(tmp, bytes);
    pending.renaming = true;
    await rename(tmp, path);
    completed.push(path);
  } catch (error) {
    await unlink(tmp).catch(() => {});
    throw isDiskFull(error) ? new DiskFullError(path) : error;
  } finally {
    pendingTemps.delete(tmp);
  }
}

/** The files this process has written so far (each put in place whole). */
export function completedWrites(): readonly string[] {
  return completed;
}

/**
 * Synchronous, for exit and signal handlers: removes the temporary files of writes still in
 * flight. Returns the files whose rename had already happened (the temporary file was gone and
 * the rename asked for): they were written, and an interrupt message must say so.
 */
export function removePendingTemps(): string[] {
  const written: string[] = [];
  for (const [tmp, pending] of pendingTemps) {
    try {
      unlinkSync(tmp);
    } catch {
      // Not created yet, or already renamed into place.
      if (pending.renaming) written.push(pending.path);
    }
  }
  pendingTemps.clear();
  return written;
}

/*
 * statfs magic numbers of kernel pseudo filesystems: writing there does not store a file, and
 * Node's recursive mkdir loops forever on procfs.
 */
const PSEUDO_FILESYSTEMS: Record<number, string> = {
  0x9fa0: 'procfs',
  0x62656572: 'sysfs',
  0x27e0eb: 'cgroup',
  0x63677270: 'cgroup2',
  0x64626720: 'debugfs',
  0x74726163: 'tracefs',
  0x73636673: 'securityfs',
  0x6165676c: 'pstore',
  0xcafe4a11: 'bpf',
  0x62656570: 'configfs',
  0x1cd1: 'devpts',
  0x65735543: 'fusectl',
  0x42494e4d: 'binfmt_misc',
};

const PSEUDO_ROOTS = ['/proc', '/sys', '/dev'];

export type OutputKind = 'file' | 'folder';

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function under(path: string, root: string): boolean {
  return path === root || path.startsWith(`${root}/`);
}

/** The reason `path` sits on a pseudo filesystem, or null. */
function pseudoFilesystem(path: string, real: string): string | null {
  // /dev/shm is an ordinary tmpfs; the rest of /dev is device nodes.
  const root = PSEUDO_ROOTS.find((r) => (under(resolve(path), r) || under(real, r)) && !under(resolve(path), '/dev/shm'));
  if (root) return `${root} is not a place for files`;
  try {
    const type = PSEUDO_FILESYSTEMS[Number(statfsSync(real).type)];
    if (type) return `it is on ${type}, a kernel pseudo filesystem`;
  } catch {
    // statfs is unavailable on some platforms; the prefix check above still applies.
  }
  return null;
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks, before any work, that `path` can receive a file or a folder of files: not on a pseudo
 * filesystem (/proc, /sys, /dev), not a folder where a file goes or a file where a folder goes
 * (itself or any existing parent), and in a writable place. Throws a UsageError (exit 2) naming
 * the flag and the reason; creates nothing.
 */
export function checkOutputPath(path: string, kind: OutputKind, flag: string): void {
  const fail = (why: string): never => {
    throw new UsageError(`--${flag}: cannot write to "${path}": ${why}`);
  };
  if (path.trim() === '') fail('the path is empty');
  if (path.includes('\0')) fail('the path contains a NUL character');
  const full = resolve(path);
  // The nearest part of the path that exists decides the rest.
  let existing = full;
  while (!exists(existing)) existing = dirname(existing);
  let real: string;
  try {
    real = realpathSync(existing);
  } catch (error) {
    return fail(`${existing} cannot be resolved (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const pseudo = pseudoFilesystem(full, real);
  if (pseudo) fail(pseudo);
  const stats = statSync(real);
  if (existing === full) {
    if (kind === 'folder' && !stats.isDirectory()) fail('it is a file, and this needs a folder');
    if (kind === 'file' && stats.isDirectory()) fail('it is a folder, and this needs a file name');
    if (kind === 'file' && !stats.isFile()) fail('it is not a regular file');
    // An atomic write renames a temporary file in the parent folder, so the parent must be writable too.
    const folder = kind === 'folder' ? real : dirname(real);
    if (!writable(folder)) fail(`${folder} is not writable`);
    return;
  }
  if (!stats.isDirectory()) fail(`${existing} is a file, not a folder`);
  if (!writable(real)) fail(`${existing} is not writable`);
}

/**
 * Checks, before any work, the folder `dir` (given as --flag) and every file the command will
 * write into it: `results.md` being a folder must fail now, not after the run (a name ending in
 * "/" is a folder the command fills).
 */
export function checkOutputFiles(dir: string, names: readonly string[], flag: string): void {
  checkOutputPath(dir, 'folder', flag);
  for (const name of names) checkOutputPath(join(dir, name), name.endsWith('/') ? 'folder' : 'file', flag);
}
