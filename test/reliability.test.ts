import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import Gate from '../commands/gate.js';
import { maxOf, minOf } from '../src/arrays.js';
import { parseIntegerFlag } from '../src/flag-parsers.js';
import { layerConfig } from '../src/config.js';
import { prepareDumpFolder } from '../src/verify/dump-folder.js';
import { EnvironmentError, UsageError } from '../src/errors.js';
import { sweepFailure } from '../src/bench/run.js';
import { compareResults } from '../src/gate/compare.js';
import { gateAgainstBaseline } from '../src/gate/run.js';
import { requireBindingFits, requireRunnable, requireVerifiable } from '../src/layer-limits.js';
import { planModel } from '../src/plan/model.js';
import { summaryFromLoads } from '../src/plan/routing.js';
import { packageRoot } from '../src/measure/provenance.js';
import { formatPercent } from '../src/render/plan.js';
import { sparkline } from '../src/render/profile.js';
import { loadHistogram } from '../src/render/train.js';
import { findStrategy } from '../src/registry.js';
import { formatBytes, parseBytes } from '../src/units.js';
import { config as caseConfig, results, SWEEP } from './fixtures/gate/synthetic.js';

/* Issue 16's smaller items, each at the shared place it comes from. */

afterEach(() => {
  process.exitCode = undefined;
});

describe('limits are named', () => {
  it('integers too large say the limit, not "use a positive integer"', () => {
    expect(() => parseIntegerFlag('99999999999999999999', 'tokens', 1, 2 ** 31 - 1)).toThrow(/^--tokens: "99999999999999999999" is too large; at most 2147483647$/);
    expect(() => parseIntegerFlag('2147483648', 'experts', 1, 2 ** 31 - 1)).toThrow(/at most 2147483647/);
    expect(() => parseIntegerFlag('0', 'tokens', 1, 100)).toThrow(/use a positive integer \(at most 100\)/);
    expect(() => parseBytes('99999999999999999999', 'memory')).toThrow(/^--memory: "99999999999999999999" is too large; at most 8\.00 PiB$/);
  });

  it('plan prints no -0.0% and no e-notation GiB', () => {
    expect(formatPercent(-1e-9)).toBe('0.0%');
    expect(formatPercent(0.123)).toBe('12.3%');
    expect(formatBytes(1.67e22 * 2 ** 30)).not.toMatch(/e\+/);
    expect(formatBytes(3 * 2 ** 50)).toBe('3.00 PiB');
    expect(formatBytes(2 ** 40)).toBe('1.00 TiB');
    expect(() => planModel({ config: layerConfig({ tokens: 2e9, hidden: 2e9, ffn: 2e9, experts: 2e6, topK: 2 }), memory: null, dtype: 'f32', layers: 1, optimizer: 'none', expertParallel: 1 })).toThrow(/more than plan models \(at most 8\.00 PiB\)/);
  });
});

describe('no spread of size-dependent arrays', () => {
  it('maxOf/minOf take any length', () => {
    const big = Array.from({ length: 500_000 }, (_, i) => i % 1000);
    expect(maxOf(big)).toBe(999);
    expect(minOf(big)).toBe(0);
    expect(maxOf([], 0)).toBe(0);
  });

  it('plan at 130000 experts, a histogram of 200000 experts, a sparkline of 300000 events', () => {
    const c = layerConfig({ tokens: 512, experts: 130_000, topK: 1, capacityFactor: 0 });
    const loads = Array.from({ length: 130_000 }, (_, e) => (e === 7 ? 9 : 0));
    expect(summaryFromLoads(c, false, loads).capacity).toBe(9);
    expect(loadHistogram(Array.from({ length: 200_000 }, () => 1))).toHaveLength(200_000);
    expect(sparkline(Array.from({ length: 300_000 }, (_, i) => i))).toHaveLength(60);
    const plan = planModel({ config: c, memory: null, dtype: 'f32', layers: 1, optimizer: 'none', expertParallel: 1, strategies: [findStrategy('zero-buffer')], samples: 1 });
    expect(plan.strategies[0].strategy).toBe('zero-buffer');
  });
});

describe('size checks before any input is generated', () => {
  it('a config no chosen strategy runs is a usage error listing each reason', () => {
    const c = layerConfig({ tokens: 16, hidden: 8, ffn: 8, experts: 5000, topK: 1 });
    expect(() => requireRunnable(['zero-buffer', 'megablocks'], c)).toThrow(/^no chosen strategy can run this config: zero-buffer: .*; megablocks: /);
    expect(requireRunnable(['zero-buffer', 'megablocks'], layerConfig({ experts: 1000, topK: 1 }))).toEqual(['zero-buffer']);
  });

  it('verify: host memory of the float64 reference, and the binding limits MoELayer also checks', () => {
    expect(() => requireVerifiable(layerConfig({ tokens: 16, hidden: 65536, ffn: 65536, experts: 64, topK: 2 }))).toThrow(/needs about .* of host memory, more than verify allows \(at most 4\.00 GiB\)/);
    expect(() => requireVerifiable(layerConfig({}))).not.toThrow();
    const wide = layerConfig({ tokens: 16, hidden: 8192, ffn: 8192, experts: 2, topK: 1 });
    expect(() => requireBindingFits(wide, 128 * 2 ** 20)).toThrow(EnvironmentError);
    expect(() => requireBindingFits(layerConfig({ tokens: 2 ** 22, hidden: 64 }), 128 * 2 ** 20)).toThrow(/X \[4194304×64\] needs 1\.00 GiB, more than one storage binding holds on this adapter \(128 MiB\)/);
    // Below the adapter's limit, a too-small --chunk-limit is the user's choice: exit 2 naming the flag.
    expect(() => requireBindingFits(layerConfig({}), 128 * 2 ** 20, 1)).toThrow(/^--chunk-limit: 1 B is smaller than one expert's weight matrix \[64×128\] \(32\.0 KiB\)/);
  });

  it('a bench where no case produced a result does not pass', () => {
    const r = results({ cases: SWEEP.map((c) => ({ ...c, status: 'error' as const })) });
    r.cases.forEach((c) => (c.message = 'X needs 477 GiB, more than one storage binding holds'));
    expect(sweepFailure(r)).toMatch(/^no case of the sweep produced a result \(3 error, 0 unsupported\), e\.g\. zero-buffer: X needs 477 GiB/);
    r.cases[1].status = 'oom';
    expect(sweepFailure(r)).toBeNull();
  });
});

describe('verify --dump folder reuse', () => {
  const dumpAt = (dir: string) => {
    mkdirSync(join(dir, 'zero-buffer'), { recursive: true });
    mkdirSync(join(dir, 'ref'));
    for (const f of ['X.npy', 'zero-buffer/O.npy', 'ref/O.npy', 'ref/experts.npy']) writeFileSync(join(dir, f), '');
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ format: 'moeblaze.verify-dump/v1', files: {} }));
  };

  it('clears an earlier dump, so that the new manifest and the folder agree', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moeblaze-dump-'));
    dumpAt(dir);
    const dump = prepareDumpFolder(dir);
    // Locked, and marked as a dump in progress until its manifest is written.
    expect(readdirSync(dir).sort()).toEqual(['.moeblaze-dump-in-progress', '.moeblaze.lock']);
    dump.release();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses a folder with other files, and an interrupted dump without its manifest, touching nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moeblaze-dump-'));
    dumpAt(dir);
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    expect(() => prepareDumpFolder(dir)).toThrow(/^--dump: ".*" is not empty and not an earlier moeblaze dump \(it holds notes\.txt\)/);
    expect(readdirSync(dir).sort()).toEqual(['X.npy', 'manifest.json', 'notes.txt', 'ref', 'zero-buffer']);
    const other = mkdtempSync(join(tmpdir(), 'moeblaze-dump-'));
    writeFileSync(join(other, 'X.npy'), '');
    expect(() => prepareDumpFolder(other)).toThrow(UsageError);
  });
});

describe('the gate compares something or exits 2', () => {
  const disjoint = () => {
    const r = results({ cases: SWEEP.map((c) => ({ ...c, experts: 16 })) });
    expect(r.cases[0].config).toEqual(caseConfig('zero-buffer', 16));
    return r;
  };

  it('gateAgainstBaseline: no shared case is a usage error', async () => {
    await expect(gateAgainstBaseline(results({ cases: SWEEP }), disjoint(), { baselinePath: 'b.json', options: { strict: true }, retries: 0, update: false })).rejects.toThrow(/^--baseline: "b\.json" shares no case with the current run/);
  });

  it('a case that now fails its correctness check is a regression, --strict or not', () => {
    const now = results({ cases: SWEEP.map((c, i) => (i === 1 ? { ...c, status: 'mismatch' as const } : c)) });
    now.cases[1].message = 'dX differs';
    const report = compareResults(results({ cases: SWEEP }), now, { strict: false });
    expect(report.exitCode).toBe(3);
    expect(report.rows.find((r) => r.metric === 'status')).toMatchObject({ regression: true, note: 'now fails its correctness check: dX differs' });
  });

  it('gate --strict with files that share no config: exit 2, one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moeblaze-gate-'));
    writeFileSync(join(dir, 'base.json'), JSON.stringify(results({ cases: SWEEP })));
    writeFileSync(join(dir, 'cur.json'), JSON.stringify(disjoint()));
    const err: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => (err.push(String(c)), true));
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      await Gate.run(['--baseline', join(dir, 'base.json'), '--current', join(dir, 'cur.json'), '--strict'], packageRoot());
    } finally {
      spy.mockRestore();
      out.mockRestore();
    }
    expect(process.exitCode).toBe(2);
    expect(err.join('').trim().split('\n')).toHaveLength(1);
    expect(err.join('')).toMatch(/shares no case/);
  });
});
