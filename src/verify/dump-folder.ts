import { readdirSync, readFileSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { checkOutputPath } from '../fs.js';

export const DUMP_FORMAT = 'moeblaze.verify-dump/v1';

/** Every file a dump can hold is a .npy, at the top or one folder down (a strategy, ref, ref-capacity), plus the manifest. */
function dumpFiles(dir: string): { files: string[]; folders: string[]; foreign: string[] } {
  const files: string[] = [];
  const folders: string[] = [];
  const foreign: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isFile() && (entry.name.endsWith('.npy') || entry.name === 'manifest.json')) files.push(path);
    else if (entry.isDirectory()) {
      folders.push(path);
      for (const inner of readdirSync(path, { withFileTypes: true })) {
        if (inner.isFile() && inner.name.endsWith('.npy')) files.push(join(path, inner.name));
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

/**
 * Makes `dir` ready for a new `verify --dump`, before any GPU work: a new or empty folder is
 * used as it is; an earlier dump (its manifest says so) is cleared, so that the new manifest
 * and the folder agree; any other folder with files in it is refused (exit 2), never emptied.
 */
export function prepareDumpFolder(dir: string, flag = 'dump'): void {
  checkOutputPath(dir, 'folder', flag);
  let entries: string[];
  try {
    entries = statSync(dir).isDirectory() ? readdirSync(dir) : [];
  } catch {
    return; // Does not exist yet.
  }
  if (entries.length === 0) return;
  const found = dumpFiles(dir);
  if (!isDump(dir) || found.foreign.length > 0) {
    const what = found.foreign[0] ?? entries[0];
    throw new UsageError(`--${flag}: "${dir}" is not empty and not an earlier moeblaze dump (it holds ${what}); choose a new or empty folder`);
  }
  // The manifest goes first: a folder without it is never taken for a whole dump.
  const manifest = join(dir, 'manifest.json');
  unlinkSync(manifest);
  for (const file of found.files) if (file !== manifest) unlinkSync(file);
  for (const folder of found.folders) rmdirSync(folder);
}
