import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOCK_FILE } from '../../src/lock.js';
import { ownIdentity, processStartTime } from '../../src/pid.js';
import { DUMP_MARKER, finishDump, prepareDumpFolder } from '../../src/verify/dump-folder.js';

/* Issue 28, items 4 and 14: one dump per folder at a time, and a dump that did not finish is ours to replace. */

const fresh = () => mkdtempSync(join(tmpdir(), 'moeblaze-dumpdir-'));

describe('verify --dump folders', () => {
  it.runIf(processStartTime(1) !== null)('a folder another live verify is dumping into is refused, naming it (item 4)', () => {
    const dir = fresh();
    writeFileSync(join(dir, LOCK_FILE), `1 ${processStartTime(1)}\n`);
    writeFileSync(join(dir, 'X.npy'), 'being written by process 1');
    expect(() => prepareDumpFolder(dir)).toThrow(/^--dump: another moeblaze verify --dump \(process 1\) is writing to ".*"; wait for it to end or choose another folder$/);
    expect(readdirSync(dir).sort()).toEqual([LOCK_FILE, 'X.npy']);
  });

  it('a dump killed before its manifest is recognised by its marker and replaced (item 14)', () => {
    const dir = fresh();
    // What SIGKILL leaves in the middle of a dump: the marker, some files, a temporary file of the dead process, its lock.
    writeFileSync(join(dir, DUMP_MARKER), '');
    writeFileSync(join(dir, LOCK_FILE), '999999\n');
    mkdirSync(join(dir, 'zero-buffer'));
    writeFileSync(join(dir, 'zero-buffer', 'O.npy'), '');
    writeFileSync(join(dir, 'zero-buffer', 'dX.npy.tmp-999999-4'), '');
    const dump = prepareDumpFolder(dir, { strategies: ['zero-buffer'] });
    expect(readdirSync(dir).sort()).toEqual([DUMP_MARKER, LOCK_FILE]);
    // The run writes its files and manifest, then the marker goes.
    writeFileSync(join(dir, 'X.npy'), '');
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ format: 'moeblaze.verify-dump/v1', files: {} }));
    finishDump(dir);
    dump.release();
    expect(readdirSync(dir).sort()).toEqual(['X.npy', 'manifest.json']);
  });

  it('without the marker or a manifest, files are someone else\'s: refused, untouched', () => {
    const dir = fresh();
    mkdirSync(join(dir, 'zero-buffer'));
    writeFileSync(join(dir, 'zero-buffer', 'O.npy'), '');
    expect(() => prepareDumpFolder(dir)).toThrow(/is not empty and not an earlier moeblaze dump \(it holds zero-buffer\)/);
    expect(readdirSync(dir, { recursive: true }).sort()).toEqual(['zero-buffer', join('zero-buffer', 'O.npy')]);
  });

  it('a dump that never started (no adapter, say) leaves no marker, and no folder it created', () => {
    const parent = fresh();
    const dir = join(parent, 'new');
    prepareDumpFolder(dir).release();
    expect(existsSync(dir)).toBe(false);
    const mine = fresh();
    prepareDumpFolder(mine).release();
    expect(readdirSync(mine)).toEqual([]);
    expect(ownIdentity()).toMatch(new RegExp(`^${process.pid}( \\d+)?$`));
  });
});
