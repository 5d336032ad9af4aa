import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LOCK_FILE, lockFolder } from '../../src/lock.js';
import { prepareBench } from '../../src/bench/prepare.js';
import { completeRunSettings, completeSweep, saveSweep } from '../../src/bench/sweep.js';
import { parseSkew } from '../../src/config.js';
import { UsageError } from '../../src/errors.js';
import { processStartTime } from '../../src/pid.js';
import { results, SWEEP } from '../fixtures/gate/synthetic.js';
import { mountTmpfs } from '../helpers/tmpfs.js';

/* Issue 28, items 10, 11 and 15: the output folder of a bench, before any GPU work. */

const fresh = () => mkdtempSync(join(tmpdir(), 'moeblaze-folders-'));
const root = process.cwd();

afterEach(() => {
  vi.useRealTimers();
  process.chdir(root);
});

/** A bench folder of an interrupted sweep (one case of four finished). */
function savedSweep(dir: string): void {
  const r = results({ cases: SWEEP.slice(0, 1) });
  const spec = completeSweep({ impl: ['zero-buffer', 'tutel'], experts: [4, 8], tokens: [256], hidden: [32], ffn: [64], topK: [2], skew: parseSkew('zipf:3') });
  r.settings = { ...r.settings, ...completeRunSettings({ maxTimeS: 0.5 }), sweep: saveSweep(spec) };
  r.complete = false;
  writeFileSync(join(dir, 'results.json'), JSON.stringify(r));
}

describe('locks that a recycled pid does not keep (item 10)', () => {
  it.runIf(processStartTime(1) !== null)('a lock naming a live pid with another start time is stale and taken over', () => {
    const dir = fresh();
    const start = processStartTime(1)!;
    // Pid 1 is alive, but it is not the process that wrote this lock: that one started at another time.
    writeFileSync(join(dir, LOCK_FILE), `1 ${BigInt(start) + 12345n}\n`);
    const lock = lockFolder(dir);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid} ${processStartTime(process.pid)}\n`);
    lock.release();
    // The same pid with its own start time is the owner, and is respected.
    writeFileSync(join(dir, LOCK_FILE), `1 ${start}\n`);
    expect(() => lockFolder(dir)).toThrow(/^--out: another moeblaze bench \(process 1\) is writing to/);
  });

  it('two benches without --out started in the same second get two folders', async () => {
    const cwd = fresh();
    process.chdir(cwd);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-12-07T10:00:00.250Z'));
    const request = { given: { impl: ['zero-buffer'], experts: [4], tokens: [16], hidden: [8], ffn: [8], topK: [1] }, sampling: {} };
    const first = await prepareBench(request);
    vi.setSystemTime(new Date('2026-12-07T10:00:00.750Z'));
    const second = await prepareBench(request);
    try {
      expect(first.outDir).toBe(join('moeblaze-results', '2026-12-07T10-00-00'));
      expect(second.outDir).toBe(join('moeblaze-results', '2026-12-07T10-00-00-2'));
      expect(readdirSync(join(cwd, 'moeblaze-results')).sort()).toEqual(['2026-12-07T10-00-00', '2026-12-07T10-00-00-2']);
    } finally {
      second.lock.release();
      first.lock.release();
    }
    // Released without results: both folders (and moeblaze-results, which the first created) are gone.
    expect(readdirSync(cwd)).toEqual([]);
  });
});

describe('every file bench writes is checked before the GPU opens (item 11)', () => {
  for (const name of ['results.md', 'report.html', 'benchmark-action.json', 'results.json']) {
    it(`--out D with D/${name} a folder: exit 2 naming it`, async () => {
      const dir = fresh();
      mkdirSync(join(dir, name));
      const error = await prepareBench({ given: { impl: ['zero-buffer'], experts: [4], tokens: [16], hidden: [8], ffn: [8], topK: [1] }, sampling: {}, out: dir }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UsageError);
      expect((error as Error).message).toBe(`--out: cannot write to "${join(dir, name)}": it is a folder, and this needs a file name`);
      expect(readdirSync(dir)).toEqual([name]);
    });
  }
});

describe('a read-only resume source with --out elsewhere (item 15)', () => {
  it('is read, not refused; the new folder gets the sweep', async (ctx) => {
    const fs = mountTmpfs(1 << 20);
    let source: string;
    let restore = () => {};
    if (typeof fs === 'string') {
      if (process.getuid?.() === 0) return ctx.skip(`root writes through chmod, and ${fs}`);
      source = fresh();
      savedSweep(source);
      const { chmodSync } = await import('node:fs');
      chmodSync(source, 0o555);
      restore = () => chmodSync(source, 0o755);
    } else {
      source = fs.dir;
      savedSweep(source);
      fs.remount('ro');
      restore = () => fs.unmount();
    }
    try {
      const out = join(fresh(), 'copy');
      const prepared = await prepareBench({ given: {}, sampling: {}, resume: source, out });
      prepared.lock.release();
      expect(resolve(prepared.outDir)).toBe(resolve(out));
      expect(prepared.sweep.cases).toHaveLength(4);
      expect(prepared.resume?.cases).toHaveLength(1);
      // Without --out the finished sweep would go back into the source: that still needs it writable.
      await expect(prepareBench({ given: {}, sampling: {}, resume: source })).rejects.toThrow(/^--resume: cannot write to .* is not writable/);
    } finally {
      restore();
    }
  });
});
