import { existsSync, readdirSync, readFileSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOCK_FILE, lockFolder, type FolderLock } from '../lock.js';
import { DiskFullError, UsageError } from '../errors.js';
import { checkOutputFiles, isDiskFull, removeStaleTemps } from '../fs.js';
import { processAlive } from '../pid.js';

export const DUMP_FORMAT = 'moeblaze.verify-dump/v1';

/**
 * Written into the folder before anything else of a dump and removed once its manifest is in
 * place: a folder holding it is a dump of ours that did not finish (killed, or the disk filled),
 * and the next `verify --dump` replaces it instead of refusing it as someone else's files.
 */
export const DUMP_MARKER = '.moeblaze-dump-in-progress';

/** writeFileAtomic's temporary names (src/fs.ts), and whether their writer is gone. */
const TEMP = /\.tmp-(\d+)-\d+$/;
const deadTemp = (name: string): boolean => {
  const pid = Number(TEMP.exec(name)?.[1]);
  return pid > 0 && pid !== process.pid && !processAlive(pid);
};

/** Every file a dump can hold is a .npy, at the top or one folder down (a strategy, ref, ref-capacity), plus the manifest. */
function dumpFiles(dir: string): { files: string[]; folders: string[]; foreign: string[] } {
  const files: string[] = [];
  const folders: string[] = [];
  const foreign: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.name === LOCK_FILE || entry.name === DUMP_MARKER) continue;
    if (entry.isFile() && (entry.name.endsWith('.npy') || entry.name === 'manifest.json' || deadTemp(entry.name))) files.push(path);
    else if (entry.isDirectory()) {
      folders.push(path);
      for (const inner of readdirSync(path, { withFileTypes: true })) {
        if (inner.isFile() && (inner.name.endsWith('.npy') || deadTemp(inner.name))) files.push(join(path, inner.name));
        else foreign.push(join(entry.name, inner.name));
      }
    } else foreign.push(entry.name);
  }
  return { files, folders, foreign };
}

function isDump(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { format?: unknown }).format === DUMP_FORMAT;
  } catch {
    return false;
  }
}

function writeMarker(dir: string): void {
  const path = join(dir, DUMP_MARKER);
  try {
    writeFileSync(path, `${DUMP_FORMAT}: a dump in progress; the next verify --dump here replaces it\n`);
  } catch (error) {
    throw isDiskFull(error) ? new DiskFullError(path) : error;
  }
}

/** A dump folder, locked for this process until release(). */
export interface DumpFolder {
  readonly dir: string;
  /** Unlocks; a folder where nothing was dumped is left as it was found (or removed, if this run created it). */
  release(): void;
}

/**
 * Makes `dir` ready for a new `verify --dump`, before any GPU work: every file it will write is
 * checked, the folder is locked (two dumps at once would mix their files: src/bench/lock.ts), and
 * then a new or empty folder is used as it is; an earlier dump (its manifest says so) or one of
 * ours that did not finish (DUMP_MARKER) is cleared, so that the new manifest and the folder
 * agree; any other folder with files in it is refused (exit 2), never emptied.
 */
export function prepareDumpFolder(dir: string, options: { flag?: string; strategies?: readonly string[] } = {}): DumpFolder {
  const flag = options.flag ?? 'dump';
  const folders = ['ref/', 'ref-capacity/', ...(options.strategies ?? []).map((s) => `${s}/`)];
  checkOutputFiles(dir, ['manifest.json', 'X.npy', DUMP_MARKER, LOCK_FILE, ...folders], flag);
  const lock = lockFolder(dir, { flag, holder: 'verify --dump' });
  try {
    removeStaleTemps(dir);
    const entries = readdirSync(dir).filter((name) => name !== LOCK_FILE);
    if (entries.length > 0) {
      const found = dumpFiles(dir);
      const ours = isDump(dir) || existsSync(join(dir, DUMP_MARKER));
      if (!ours || found.foreign.length > 0) {
        const what = found.foreign[0] ?? entries.find((name) => name !== DUMP_MARKER) ?? entries[0];
        throw new UsageError(`--${flag}: "${dir}" is not empty and not an earlier moeblaze dump (it holds ${what}); choose a new or empty folder`);
      }
      // The marker first: a folder cleared half-way is still recognised as ours.
      writeMarker(dir);
      const manifest = join(dir, 'manifest.json');
      if (existsSync(manifest)) unlinkSync(manifest);
      for (const file of found.files) if (file !== manifest) unlinkSync(file);
      for (const folder of found.folders) rmdirSync(folder);
    } else writeMarker(dir);
  } catch (error) {
    lock.release();
    throw error;
  }
  return { dir, release: () => releaseDump(dir, lock) };
}

function releaseDump(dir: string, lock: FolderLock): void {
  // Nothing dumped (no adapter, say): the marker goes, and with the lock an empty folder this run created.
  const left = readdirSync(dir).filter((name) => name !== LOCK_FILE && name !== DUMP_MARKER);
  if (left.length === 0) {
    try {
      unlinkSync(join(dir, DUMP_MARKER));
    } catch {
      // Not there.
    }
  }
  lock.release();
}

/** After the manifest is in place: the dump is whole. */
export function finishDump(dir: string): void {
  try {
    unlinkSync(join(dir, DUMP_MARKER));
  } catch {
    // Written by a caller that did not prepare the folder (the library's verifyStrategies with dumpDir).
  }
}
