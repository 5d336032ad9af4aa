import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { interruptMessage } from '../src/cli/interrupt.js';
import { describeFailure } from '../src/cli/base.js';
import { DiskFullError, ExitCode, UsageError } from '../src/errors.js';
import { checkOutputFiles, checkOutputPath, writeFileAtomic } from '../src/fs.js';
import { mountTmpfs } from './helpers/tmpfs.js';

const fresh = () => mkdtempSync(join(tmpdir(), 'moeblaze-fs-'));

function reason(path: string, kind: 'file' | 'folder', flag = 'out'): string | null {
  try {
    checkOutputPath(path, kind, flag);
    return null;
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
}

describe('checkOutputPath: every output path, before any work', () => {
  it('refuses pseudo filesystems at once instead of hanging in mkdir', () => {
    const start = performance.now();
    expect(reason('/proc/x', 'folder')).toMatch(/^--out: cannot write to "\/proc\/x": \/proc is not a place for files/);
    expect(reason('/proc/self/fd/x/y', 'folder', 'dump')).toMatch(/^--dump: .*\/proc/);
    expect(reason('/sys/kernel/x.json', 'file', 'trace')).toMatch(/^--trace: .*\/sys/);
    expect(reason('/dev/null', 'file', 'baseline')).toMatch(/\/dev is not a place/);
    expect(performance.now() - start).toBeLessThan(1000);
  });

  it('a file where a folder goes, a folder where a file goes, a folder inside a file', () => {
    const dir = fresh();
    const file = join(dir, 'f');
    writeFileSync(file, 'x');
    expect(reason(file, 'folder')).toMatch(/it is a file, and this needs a folder/);
    expect(reason(dir, 'file', 'trace')).toMatch(/it is a folder, and this needs a file name/);
    expect(reason(join(file, 'sub', 'deeper'), 'folder')).toMatch(/is a file, not a folder/);
    expect(reason(join(file, 'x.json'), 'file', 'trace')).toMatch(/is a file, not a folder/);
    expect(reason('', 'folder')).toMatch(/the path is empty/);
  });

  it('accepts new paths below a writable folder, and existing ones of the right kind; creates nothing', () => {
    const dir = fresh();
    expect(reason(join(dir, 'a', 'b'), 'folder')).toBeNull();
    expect(reason(join(dir, 'a', 'b.json'), 'file')).toBeNull();
    expect(reason(dir, 'folder')).toBeNull();
    writeFileSync(join(dir, 'old.json'), '{}');
    expect(reason(join(dir, 'old.json'), 'file')).toBeNull();
    expect(readdirSync(dir)).toEqual(['old.json']);
  });

  it.runIf(process.getuid?.() !== 0)('an unwritable parent', () => {
    const dir = fresh();
    const locked = join(dir, 'locked');
    mkdirSync(locked);
    chmodSync(locked, 0o555);
    try {
      expect(reason(join(locked, 'out'), 'folder')).toMatch(/is not writable/);
      expect(reason(join(locked, 'x.json'), 'file')).toMatch(/is not writable/);
    } finally {
      chmodSync(locked, 0o755);
    }
  });
});

describe('writeFileAtomic', () => {
  it('leaves no temporary file when the rename fails', async () => {
    const dir = fresh();
    // A non-empty folder where the file should go: the write succeeds, the rename fails.
    mkdirSync(join(dir, 'target'));
    writeFileSync(join(dir, 'target', 'keep'), '');
    await expect(writeFileAtomic(join(dir, 'target'), 'data')).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['target']);
  });

  it('leaves no temporary file when the write fails', async () => {
    const dir = fresh();
    const huge = join(dir, 'x'.repeat(300));
    await expect(writeFileAtomic(huge, 'data')).rejects.toThrow();
    expect(readdirSync(dir)).toEqual([]);
    await writeFileAtomic(join(dir, 'ok.txt'), 'data');
    expect(readdirSync(dir)).toEqual(['ok.txt']);
    expect(existsSync(join(dir, 'ok.txt'))).toBe(true);
  });
});

describe('what a killed run leaves (issue 28, item 13)', () => {
  it('the next write to a folder removes the temporary files of dead processes, not those of live ones', async () => {
    const dir = fresh();
    // 999999 is above Linux's default pid_max: no such process.
    writeFileSync(join(dir, 'baseline.json.tmp-999999-0'), '{"half":');
    writeFileSync(join(dir, 'baseline.json.tmp-1-0'), 'a write in flight of process 1');
    writeFileSync(join(dir, 'notes.tmp-999999-x'), 'not one of ours');
    await writeFileAtomic(join(dir, 'baseline.json'), '{}\n');
    expect(readdirSync(dir).sort()).toEqual(['baseline.json', 'baseline.json.tmp-1-0', 'notes.tmp-999999-x']);
  });

  it('an interrupt after a write says what was written', async () => {
    const dir = fresh();
    await writeFileAtomic(join(dir, 'base.json'), '{}\n');
    expect(interruptMessage([])).toMatch(new RegExp(`^interrupted after writing .*${join(dir, 'base.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  });
});

describe('a full disk (issue 28, item 12)', () => {
  it('is "disk full writing PATH", exit 5, the old file intact and no temporary file left', async (ctx) => {
    const fs = mountTmpfs(64 * 1024);
    if (typeof fs === 'string') return ctx.skip(fs);
    try {
      const path = join(fs.dir, 'baseline.json');
      await writeFileAtomic(path, 'old\n');
      const error = await writeFileAtomic(path, 'x'.repeat(256 * 1024)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DiskFullError);
      expect(describeFailure(error)).toEqual({ exitCode: ExitCode.diskFull, name: 'DiskFullError', message: `disk full writing ${path}` });
      expect(ExitCode.diskFull).toBe(5);
      expect(readFileSync(path, 'utf8')).toBe('old\n');
      expect(readdirSync(fs.dir)).toEqual(['baseline.json']);
    } finally {
      fs.unmount();
    }
  });
});

describe('checkOutputFiles (issue 28, item 11)', () => {
  it('refuses a folder where one of the files goes, naming it; accepts the rest', () => {
    const dir = fresh();
    mkdirSync(join(dir, 'train.html'));
    expect(() => checkOutputFiles(dir, ['train.json', 'train.html'], 'out')).toThrow(`--out: cannot write to "${join(dir, 'train.html')}": it is a folder, and this needs a file name`);
    expect(() => checkOutputFiles(dir, ['train.json', 'zero-buffer/'], 'out')).not.toThrow();
    writeFileSync(join(dir, 'zero-buffer'), '');
    expect(() => checkOutputFiles(dir, ['zero-buffer/'], 'dump')).toThrow(/^--dump: .*it is a file, and this needs a folder/);
  });
});
