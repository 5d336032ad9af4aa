import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BenchResults } from '../../src/bench/schema.js';
import { layerConfig } from '../../src/config.js';
import { seededInputs } from '../../src/layer.js';
import { processStartTime } from '../../src/pid.js';
import { Xoshiro128 } from '../../src/rng.js';
import { benchFixtureJson } from '../helpers/bench-fixture.js';
import { startCli, sleep, type CliRun } from '../helpers/cli.js';
import { mountTmpfs } from '../helpers/tmpfs.js';

/*
 * Issue 28's fuzz classes where the tool meets the operating system, beside the flag fuzz
 * (fuzz.test.ts): a reader that leaves (EPIPE), signals at seeded points, two writers at once,
 * stale locks, a full disk, and results files edited by hand. Each command runs as a real
 * process (test/helpers/cli.ts), at the tiniest shapes, so that the whole file stays in seconds
 * on a software GPU.
 */

const SEED = 28;
const work = mkdtempSync(join(tmpdir(), 'moeblaze-fuzz-os-'));
const SHAPE = ['--tokens', '8', '--hidden', '8', '--ffn', '8', '--top-k', '1'];
const TINY = [...SHAPE, '--experts', '2'];
/** A bench of two cases (E = 2, 4), seconds on lavapipe. */
const BENCH = ['--impl', 'zero-buffer', ...SHAPE, '--experts', '2,4', '--max-time', '0.05', '--min-samples', '2', '--warmup', '0'];
const baseline = join(work, 'baseline.json');
writeFileSync(baseline, JSON.stringify(benchFixtureJson()));

/** No stack trace, no internal error, whatever happened. */
function expectClean(label: string, r: CliRun): void {
  expect(r.stderr, `${label}: no stack trace`).not.toMatch(/\n\s+at |internal error|Error: write EPIPE/);
}

/** Temporary files and locks left under `dir`. */
function leftovers(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => /\.tmp-\d+-\d+$|\.moeblaze\.lock$/.test(f));
}

describe('fuzz: the reader leaves (EPIPE on stdout), every command', () => {
  // As `moeblaze … | head -c 0`: the read end closes before anything is written. The reader having
  // left is not an error: the work that saves data finishes, and the exit is quiet (issue 28, item 9).
  const out = join(work, 'epipe');
  const commands: [string, string[]][] = [
    ['devices', ['devices']],
    ['plan', ['plan', '--json']],
    ['gate', ['gate', '--baseline', baseline, '--current', baseline]],
    ['bench', ['bench', ...BENCH, '--out', join(out, 'bench')]],
    ['verify', ['verify', '--impl', 'zero-buffer', ...TINY]],
    ['train', ['train', '--steps', '2', '--tokens', '8', '--input-dim', '4', '--hidden', '8', '--ffn', '8', '--experts', '2', '--top-k', '1', '--output-dim', '4', '--out', join(out, 'train')]],
    ['profile', ['profile', '--impl', 'zero-buffer', ...TINY, '--json']],
  ];
  it('exit 0, no "write EPIPE", the files written whole and unlocked (issue 28, item 9)', async () => {
    const runs = await Promise.all(
      commands.map(async ([label, args]) => {
        const { child, done } = startCli(args, { wrapper: true, cwd: work });
        child.stdout!.destroy();
        return [label, await done] as const;
      }),
    );
    for (const [label, r] of runs) {
      expectClean(label, r);
      expect(r.code, `${label}: ${r.stderr}`).toBe(0);
    }
    expect(readdirSync(join(out, 'bench')).sort()).toEqual(['benchmark-action.json', 'report.html', 'results.json', 'results.md']);
    expect(readdirSync(join(out, 'train')).sort()).toEqual(['train.html', 'train.json']);
  });
});

describe('fuzz: SIGINT and SIGTERM at seeded points (seed 28)', () => {
  const rng = new Xoshiro128(SEED);
  const cases: [string, (dir: string) => string[]][] = [
    ['bench', (dir) => ['bench', ...BENCH, '--out', dir]],
    ['verify --dump', (dir) => ['verify', '--impl', 'zero-buffer', '--impl', 'tutel', ...TINY, '--dump', dir]],
    ['plan', () => ['plan', '--experts', '4096', '--skew', 'zipf:1.2']],
  ];
  for (const [label, args] of cases) {
    const signal = rng.nextUint32() % 2 ? 'SIGINT' : 'SIGTERM';
    const delay = 300 + (rng.nextUint32() % 4000);
    it(`${label}: ${signal} after ${delay} ms is answered within 1 s; nothing half-written, nothing locked; the message says what is saved`, async () => {
      const dir = join(mkdtempSync(join(work, 'signal-')), 'out');
      const { child, done } = startCli(args(dir));
      const finished = await Promise.race([sleep(delay).then(() => false), done.then(() => true)]);
      const sent = performance.now();
      if (!finished) child.kill(signal);
      const r = await done;
      expectClean(label, r);
      if (finished) expect(r.code, `${label} ended before the signal: ${r.stderr}`).toBe(0);
      if (!finished && r.signal === null) {
        expect(r.endedAt - sent, `${label}: ms from ${signal} to exit`).toBeLessThan(1000);
        // Finished just before the signal (0), or interrupted (128 + the signal's number).
        expect([0, signal === 'SIGINT' ? 130 : 143], r.stderr).toContain(r.code);
        const last = r.stderr.trim().split('\n').at(-1) ?? '';
        if (r.code !== 0) expect(last).toMatch(/^moeblaze: interrupted/);
        // Bench names results.json only when it exists, and then it resumes (item 17).
        if (label === 'bench' && r.code !== 0) expect(last.includes('results.json'), last).toBe(existsSync(join(dir, 'results.json')));
      }
      expect(leftovers(dir), 'no temporary file or lock left').toEqual([]);
    });
  }
});

describe('fuzz: two writers, stale locks', () => {
  it('two verify --dump into one folder at once: one is refused, the folder holds one seed\'s dump', async () => {
    const dir = join(work, 'concurrent-dump');
    const a = startCli(['verify', '--impl', 'zero-buffer', ...TINY, '--seed', '1', '--dump', dir]);
    const b = startCli(['verify', '--impl', 'zero-buffer', ...TINY, '--seed', '2', '--dump', dir]);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    expectClean('a', ra);
    expectClean('b', rb);
    expect([ra.code, rb.code].sort(), `${ra.stderr}\n${rb.stderr}`).toEqual([0, 2]);
    const refused = ra.code === 2 ? ra : rb;
    expect(refused.stderr).toMatch(/moeblaze: --dump: another moeblaze verify --dump \(process \d+\) is writing to/);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { config: { seed: number } };
    const x = readFileSync(join(dir, 'X.npy'));
    const want = Buffer.from(seededInputs(layerConfig({ tokens: 8, hidden: 8, ffn: 8, experts: 2, topK: 1, seed: manifest.config.seed })).X.buffer);
    expect(x.subarray(x.length - want.length).equals(want), 'X.npy is the manifest\'s seed').toBe(true);
    expect(leftovers(dir)).toEqual([]);
  });

  it.runIf(processStartTime(1) !== null)('a stale lock of a recycled pid does not block bench or verify --dump', async () => {
    const stale = `1 ${BigInt(processStartTime(1)!) + 1n}\n`;
    const benchDir = join(work, 'stale-bench');
    const dumpDir = join(work, 'stale-dump');
    for (const dir of [benchDir, dumpDir]) {
      mkdirSync(dir);
      writeFileSync(join(dir, '.moeblaze.lock'), stale);
    }
    const [bench, verify] = await Promise.all([startCli(['bench', ...BENCH, '--out', benchDir]).done, startCli(['verify', '--impl', 'zero-buffer', ...TINY, '--dump', dumpDir]).done]);
    expect(bench.code, bench.stderr).toBe(0);
    expect(verify.code, verify.stderr).toBe(0);
    expect(leftovers(benchDir)).toEqual([]);
    expect(leftovers(dumpDir)).toEqual([]);
  });
});

describe('fuzz: SIGKILL inside a write (the kill points of issue 29, item 5)', () => {
  it('gate --update-baseline killed between the temporary file and the rename: the baseline is the old one or the new one, whole; the next write there removes the temporary file', async () => {
    // A large current run (tens of MB, as CI baselines get), so that the write takes long enough to be caught in the middle.
    const dir = join(work, 'kill-write');
    mkdirSync(dir);
    const fixture = benchFixtureJson();
    const cases = fixture.cases as { key: string; config: { seed: number } }[];
    const many = Array.from({ length: 1500 }, (_, i) => cases.map((c) => ({ ...c, key: c.key.replace(/seed\d+/, `seed${1000 + i}`), config: { ...c.config, seed: 1000 + i } }))).flat();
    const current = join(dir, 'current.json');
    writeFileSync(current, JSON.stringify({ ...fixture, cases: [...cases, ...many] }));
    const target = join(dir, 'baseline.json');
    const old = JSON.stringify(fixture);
    writeFileSync(target, old);
    let caught = 0;
    for (let attempt = 0; attempt < 3 && caught === 0; attempt++) {
      const { child, done } = startCli(['gate', '--baseline', target, '--current', current, '--update-baseline']);
      let ended = false;
      void done.then(() => (ended = true));
      while (!ended && !readdirSync(dir).some((f) => f.startsWith('baseline.json.tmp-'))) await sleep(1);
      if (!ended) {
        child.kill('SIGKILL');
        caught++;
      }
      const r = await done;
      const now = readFileSync(target, 'utf8');
      // Whole: the old text, or a file that parses with every case of the current run.
      if (now !== old) expect((JSON.parse(now) as { cases: unknown[] }).cases).toHaveLength(cases.length + many.length);
      if (!ended) expect(r.signal).toBe('SIGKILL');
      writeFileSync(target, old);
    }
    expect(caught, 'a write was caught in the middle').toBeGreaterThan(0);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-')), 'the killed write left its temporary file').toHaveLength(1);
    // The next write into the folder (a gate that updates the baseline) removes it.
    const next = await startCli(['gate', '--baseline', target, '--current', target, '--update-baseline']).done;
    expect(next.code, next.stderr).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['baseline.json', 'current.json']);
  }, 240_000);
});

describe('fuzz: a full disk', () => {
  /**
   * Fills the filesystem under `dir` but for `pages` pages of 4 KiB; returns the filler's path.
   * Four pages hold a lock and bench's first results.json (no case yet, under 8 KiB), not the next
   * save beside it (temporary file and old file together): the disk fills at a known write.
   */
  function fill(dir: string, pages: number): string {
    const filler = join(dir, `filler-${pages}`);
    const { bavail, bsize } = statfsSync(dir);
    writeFileSync(filler, Buffer.alloc((Number(bavail) - pages) * Number(bsize), 1));
    expect(statfsSync(dir).bavail * statfsSync(dir).bsize).toBe(pages * 4096);
    return filler;
  }

  it('bench, gate --update-baseline, verify --dump: "disk full writing PATH", exit 5, nothing half-written, then the way on works', async (ctx) => {
    const fs = mountTmpfs(2 * 2 ** 20);
    if (typeof fs === 'string') return ctx.skip(fs);
    try {
      // bench: results.json is saved at the start, and the first case's save fills the disk.
      const out = join(fs.dir, 'bench');
      let filler = fill(fs.dir, 4);
      const full = await startCli(['bench', ...BENCH, '--out', out]).done;
      expectClean('bench', full);
      expect(full.code, full.stderr).toBe(5);
      expect(full.stderr.trim().split('\n').at(-1)).toBe(`moeblaze: disk full writing ${join(out, 'results.json')}; free some space, then continue the sweep with: moeblaze bench --resume ${out}`);
      expect(readdirSync(out)).toEqual(['results.json']);
      // gate --update-baseline: the baseline is not created half-way.
      const created = join(fs.dir, 'new-baseline.json');
      const gate = await startCli(['gate', '--baseline', created, '--current', baseline, '--update-baseline']).done;
      expect(gate.code, gate.stderr).toBe(5);
      expect(gate.stderr.trim()).toBe(`moeblaze: disk full writing ${created}`);
      expect(readdirSync(fs.dir).sort()).toEqual(['bench', 'filler-4']);
      unlinkSync(filler);
      const resumed = await startCli(['bench', '--resume', out]).done;
      expect(resumed.code, resumed.stderr).toBe(0);
      expect((JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResults).cases).toHaveLength(2);
      // verify --dump: the disk fills in the middle of the dump; the next dump into the folder replaces the partial one.
      const dump = join(fs.dir, 'dump');
      filler = fill(fs.dir, 4);
      const dumped = await startCli(['verify', '--impl', 'zero-buffer', ...TINY, '--dump', dump]).done;
      expectClean('verify', dumped);
      expect(dumped.code, dumped.stderr).toBe(5);
      expect(dumped.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^moeblaze: disk full writing ${dump}/\\S+\\.npy$`));
      expect(existsSync(join(dump, 'manifest.json'))).toBe(false);
      unlinkSync(filler);
      const again = await startCli(['verify', '--impl', 'zero-buffer', ...TINY, '--dump', dump]).done;
      expect(again.code, again.stderr).toBe(0);
      expect(leftovers(dump)).toEqual([]);
      expect(existsSync(join(dump, 'manifest.json'))).toBe(true);
    } finally {
      fs.unmount();
    }
  }, 300_000);
});

describe('fuzz: results files edited by hand (gate)', () => {
  const variants: [string, (json: Record<string, unknown>) => string][] = [
    ['a duplicate case under another key', (j) => {
      const cases = j.cases as Record<string, unknown>[];
      return JSON.stringify({ ...j, cases: [...cases, { ...cases[0], key: `${String(cases[0].key)}-copy` }] });
    }],
    ['a key that does not match its config', (j) => {
      const cases = j.cases as { key: string }[];
      return JSON.stringify({ ...j, cases: [{ ...cases[0], key: cases[1].key }, ...cases.slice(1).map((c, i) => (i === 0 ? { ...c, key: cases[0].key } : c))] });
    }],
    ['nesting 100,000 levels deep', (j) => JSON.stringify(j).replace('"adapter":{', `"adapter":{"x":${'['.repeat(100_000)}${']'.repeat(100_000)},`)],
  ];
  it('each is exit 2 with one line, before any comparison (duplicates and key/config mismatch pass once the gate helper lands issue 28, item 2)', async () => {
    const runs = await Promise.all(
      variants.map(async ([label, edit]) => {
        const path = join(work, `edited-${label.replace(/\W+/g, '-')}.json`);
        writeFileSync(path, edit(benchFixtureJson()));
        return [label, await startCli(['gate', '--baseline', baseline, '--current', path]).done] as const;
      }),
    );
    for (const [label, r] of runs) {
      expectClean(label, r);
      expect(r.code, `${label}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n'), label).toHaveLength(1);
      expect(r.stderr, label).toMatch(/^moeblaze: --current: /);
    }
  });
});

// Nothing of these runs stays behind in the system's temporary folder.
describe('cleanup', () => {
  it('removes the work folder', () => {
    rmSync(work, { recursive: true, force: true });
  });
});
