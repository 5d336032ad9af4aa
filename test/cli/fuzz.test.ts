import type { Command } from '@oclif/core';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import Bench from '../../commands/bench.js';
import Devices from '../../commands/devices.js';
import Gate from '../../commands/gate.js';
import Merge from '../../commands/merge.js';
import Plan from '../../commands/plan.js';
import Profile from '../../commands/profile.js';
import Train from '../../commands/train.js';
import Verify from '../../commands/verify.js';
import Tune from '../../commands/tune.js';
import { packageRoot } from '../../src/measure/provenance.js';
import { Xoshiro128 } from '../../src/rng.js';

/*
 * Issue 16's fuzz test: every command, every flag, generated bad values (empty, negative, zero,
 * NaN, Infinity, fractions, huge, wrong units, wrong types) and contradictory pairs. Each must
 * exit 2 with one line on stderr, no stack trace, nothing written, in well under a second: all
 * of it happens before any GPU work. The commands run in-process; GPU commands also get
 * --adapter with a name no adapter has, so that a value that slipped through ends at exit 4
 * (no adapter) instead of running, and fails the test.
 */

const SEED = 16;
const root = resolve(import.meta.dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'moeblaze-fuzz-'));
const sandbox = join(work, 'cwd');
const aFile = join(work, 'a-file');
const aFolder = join(work, 'a-folder');
/** An output folder where each file a command writes is a folder instead (issue 28, item 11). */
const foldersInside = join(work, 'folders-inside');
const corrupt = join(work, 'corrupt.json');
const baseline = join(work, 'baseline.json');
const NO_ADAPTER = ['--adapter', 'fuzz-no-such-adapter'];

type Kind = 'positive' | 'natural' | 'float' | 'size' | 'tolerance' | 'fraction' | 'option' | 'skew' | 'shard' | 'intList' | 'floatList' | 'folderOut' | 'fileOut' | 'fileIn' | 'folderIn' | 'boolean' | 'skip';

/** What each flag takes; a flag missing here fails the test, so a new flag gets fuzzed too. */
const KINDS: Record<string, Kind> = {
  tokens: 'positive', hidden: 'positive', ffn: 'positive', experts: 'positive', 'top-k': 'positive', steps: 'positive', 'input-dim': 'positive', 'output-dim': 'positive',
  layers: 'positive', 'min-samples': 'positive', 'expert-parallel': 'positive',
  seed: 'natural', warmup: 'natural', retries: 'natural',
  'capacity-factor': 'float', 'aux-loss': 'float', 'max-time': 'float', lr: 'float',
  'memory-limit': 'size', memory: 'size', 'chunk-limit': 'size', 'memory-tolerance': 'tolerance',
  'noise-target': 'fraction', threshold: 'fraction', tolerance: 'fraction',
  activation: 'option', checkpoint: 'option', dtype: 'option', backend: 'option', pass: 'option', preset: 'option', impl: 'option', optimizer: 'option', check: 'option', gemm: 'option', routing: 'option', allocator: 'option',
  skew: 'skew',
  shard: 'shard',
  out: 'folderOut', dump: 'folderOut', trace: 'fileOut',
  resume: 'folderIn', baseline: 'fileIn', current: 'fileIn', tuning: 'fileIn',
  adapter: 'skip', json: 'skip',
};

const BAD: Record<Exclude<Kind, 'boolean' | 'skip'>, string[]> = {
  positive: ['', ' ', '-1', '0', 'NaN', 'Infinity', '-Infinity', '1.5', '1e3', '99999999999999999999', '4294967296000', '12GiB', '0x10', 'abc', 'true'],
  natural: ['', '-1', 'NaN', 'Infinity', '1.5', '1e3', '99999999999999999999', '12GiB', 'abc'],
  float: ['', '-1', 'NaN', 'Infinity', '-Infinity', '1e400', '2GiB', 'abc', '--1', '1,2'],
  size: ['', '-1', '0', 'NaN', 'Infinity', '12XB', '1e30', '99999999999999999999GiB', 'abc', '-5MiB'],
  tolerance: ['', '-1', 'NaN', 'Infinity', '12XB', '1e30', '99999999999999999999GiB', 'abc', '-5MiB'],
  fraction: ['', '-1', '0', 'NaN', 'Infinity', '1e400', '2000%', 'abc', '-5%'],
  option: ['', 'abc', 'NaN', '1', 'ZERO-BUFFER '],
  skew: ['', 'zipf', 'zipf:-1', 'zipf:NaN', 'zipf:Infinity', 'abc', 'uniform:2'],
  // Issue 32: i/n with 1 ≤ i ≤ n; each is refused before the sweep is planned.
  shard: ['', ' ', '0/3', '4/3', '1/0', '0/0', 'a/b', '1/', '/3', '3', '-1/3', '1/-3', '1.5/3', '1/3.0', '1/3/4', '1\\3', '1 of 3', '2/1', '99999999999/99999999999', '1/10001', 'NaN/3', '1/Infinity', '１/３', '1/3x'],
  intList: ['', '4,,8', '4,-1', '4,abc', '0', ',', '1.5', '99999999999999999999', '4;8'],
  floatList: ['', '1,,2', '1,-1', 'NaN', 'Infinity', '1,abc'],
  folderOut: ['', '/proc/fuzz', '/sys/fuzz/out', '/dev/null', aFile, join(aFile, 'below')],
  fileOut: ['', '/proc/fuzz.json', aFolder, join(aFile, 'below.json')],
  fileIn: ['', join(work, 'missing.json'), corrupt, aFolder, '/proc/self/status'],
  folderIn: ['', join(work, 'missing'), aFile, '/proc/fuzz'],
};

/** A few random strings on top, from a fixed seed: digits, signs, units, junk. */
function randomJunk(rng: Xoshiro128, n: number): string[] {
  const alphabet = ['-', '+', '.', 'e', '9', '0', '1', 'NaN', 'Inf', '%', 'GiB', ',', ' ', 'x', '\u00e9', '\u0000'];
  return Array.from({ length: n }, () => Array.from({ length: 1 + (rng.nextUint32() % 6) }, () => alphabet[rng.nextUint32() % alphabet.length]).join(''));
}

interface Outcome {
  code: number | undefined;
  stderr: string;
  stdout: string;
  ms: number;
}

/** A command class (concrete: oclif's static run instantiates it). */
type CommandClass = { run(argv: string[], opts: string): Promise<unknown> };

async function run(command: CommandClass, argv: string[]): Promise<Outcome> {
  const err: string[] = [];
  const out: string[] = [];
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (err.push(String(chunk)), true));
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (out.push(String(chunk)), true));
  process.exitCode = undefined;
  const start = performance.now();
  try {
    await command.run(argv, packageRoot());
  } catch (error) {
    err.push(`thrown: ${(error as Error).stack}`);
  } finally {
    stderr.mockRestore();
    stdout.mockRestore();
  }
  const code = process.exitCode as number | undefined;
  process.exitCode = undefined;
  return { code, stderr: err.join(''), stdout: out.join(''), ms: performance.now() - start };
}

const COMMANDS: [string, typeof Command, string[]][] = [
  ['bench', Bench, NO_ADAPTER],
  ['verify', Verify, NO_ADAPTER],
  ['profile', Profile, NO_ADAPTER],
  ['train', Train, NO_ADAPTER],
  ['tune', Tune, NO_ADAPTER],
  // Plan without --validate opens no GPU, and refuses --adapter (issue 28, item 18): a value that slips through runs the model, and fails the test by exiting 0.
  ['plan', Plan, []],
  ['gate', Gate, []],
  ['devices', Devices, []],
  ['merge', Merge, []],
];

/** Flags the command needs to get past required-flag checks, for every flag but the one fuzzed. */
function baseArgs(id: string, fuzzed: string): string[] {
  // merge needs its --out and a shard folder (one that holds no results: refused, exit 2, if a bad value slipped through).
  if (id === 'merge') return [aFolder, ...(fuzzed === 'out' ? [] : ['--out', join(work, 'merged')])];
  if (id !== 'gate') return [];
  return [...(fuzzed === 'baseline' ? [] : ['--baseline', baseline]), ...(fuzzed === 'current' ? [] : ['--current', baseline])];
}

/** Contradictory or meaningless combinations, each a usage error. */
const PAIRS: [typeof Command, string[]][] = [
  [Verify, ['--normalize-gates', '--no-normalize-gates']],
  [Bench, ['--no-normalize-gates', '--normalize-gates']],
  [Verify, ['--impl', 'zero-buffer', '--impl', 'zero-buffer']],
  [Bench, ['--impl', 'tutel', '--impl', 'gshard', '--impl', 'tutel']],
  [Plan, ['--validate', '--memory', '80']],
  [Plan, ['--validate', '--tokens', '99']],
  [Bench, ['--strict']],
  [Bench, ['--threshold', '5%']],
  [Bench, ['--update-baseline']],
  [Bench, ['--retries', '3']],
  [Verify, ['--top-k', '9', '--experts', '8']],
  [Bench, ['--top-k', '9', '--experts', '8']],
  [Train, ['--top-k', '9', '--experts', '8']],
  [Plan, ['--expert-parallel', '3', '--experts', '8']],
  // Balanced routing fixes the loads that a zipf skew would unbalance.
  [Verify, ['--routing', 'balanced', '--skew', 'zipf:1']],
  [Bench, ['--skew', 'zipf:2', '--routing', 'balanced']],
  [Profile, ['--routing', 'balanced', '--skew', 'zipf:0.5']],
  [Plan, ['--routing', 'balanced', '--skew', 'zipf:1.2']],
  [Verify, ['--tokens', '4', '--tokens', '8']],
  [Verify, ['--tokens', '16', '--hidden', '8', '--ffn', '8', '--experts', '5000', '--top-k', '1']],
  [Profile, ['--experts', '100000000']],
  [Verify, ['--tokens', '16', '--hidden', '65536', '--ffn', '65536', '--experts', '64']],
  [Plan, ['--tokens', '2000000000', '--hidden', '2000000000', '--ffn', '2000000000', '--experts', '2000000']],
  [Bench, ['--resume', work, '--out', join(work, 'elsewhere')]],
  // A gate that would compare nothing: refused before the sweep runs.
  [Bench, ['--baseline', baseline, '--experts', '3', '--top-k', '1']],
  [Gate, ['--baseline', baseline, '--current', baseline, '--strict', '--strict', '--threshold', '5%', '--threshold', '6%']],
  // Issue 32: more shards than cases, a shard of a folder that is no shard, merges of nothing.
  [Bench, ['--shard', '4/4', '--impl', 'zero-buffer', '--experts', '4', '--top-k', '1']],
  [Bench, ['--shard', '3/3', '--shard', '2/3']],
  [Merge, ['--out', join(work, 'merged')]],
  [Merge, [aFolder, aFolder, '--out', join(work, 'merged')]],
  [Merge, [aFolder, '--out', aFolder]],
  [Merge, [aFolder, '--out', join(work, 'merged'), '--no-such-flag']],
  [Merge, [join(work, 'missing'), '--out', join(work, 'merged')]],
  [Merge, [baseline, '--out', join(work, 'merged')]],
  // Issue 28, item 18: what was silently dropped or ignored is said, as a usage error.
  [Bench, ['--tokens', '64,64']],
  [Bench, ['--capacity-factor', '1,1.0']],
  [Bench, ['--list-presets', '--experts', '8']],
  [Plan, ['--adapter', 'llvmpipe']],
  [Plan, ['--unsafe-disable-robustness']],
  // Item 11: every file a command writes into its folder is checked before the work, not found to be a folder after it.
  [Train, ['--out', foldersInside]],
  [Profile, ['--out', foldersInside]],
  [Bench, ['--out', foldersInside]],
  [Verify, ['--dump', foldersInside]],
  // Items 6 and 8: sizes that cannot finish are refused up front, naming the limit.
  [Plan, ['--experts', '2147483647', '--top-k', '1']],
  [Plan, ['--experts', '1000000', '--skew', 'zipf:1.2']],
  [Bench, ['--capacity-factor', '2147483648']],
  [Verify, ['--capacity-factor', '9007199254740993']],
  [Train, ['--capacity-factor', '9007199254740993']],
];

beforeAll(() => {
  mkdirSync(sandbox);
  mkdirSync(aFolder);
  for (const name of ['train.html', 'index.html', 'results.md', 'manifest.json']) mkdirSync(join(foldersInside, name), { recursive: true });
  writeFileSync(aFile, 'not a folder\n');
  writeFileSync(corrupt, JSON.stringify({ schema: 'moeblaze.bench/v1', cases: 'x' }));
  copyFileSync(join(root, 'test/fixtures/bench-results.json'), baseline);
  process.chdir(sandbox);
});

afterAll(() => {
  process.chdir(root);
});

function expectUsageError(label: string, r: Outcome): void {
  const lines = r.stderr.trim().split('\n');
  expect(r.code, `${label}: exit code (stderr: ${r.stderr})`).toBe(2);
  expect(lines, `${label}: one line on stderr`).toHaveLength(1);
  expect(lines[0], label).toMatch(/^moeblaze: /);
  expect(r.stderr, `${label}: no stack trace`).not.toMatch(/\n\s+at |thrown:|internal error/);
  expect(r.ms, `${label}: before any work`).toBeLessThan(3000);
}

describe('fuzz: bad values for every flag of every command (seed 16)', () => {
  const rng = new Xoshiro128(SEED);
  for (const [id, command, extra] of COMMANDS) {
    it(`${id}: every flag, every bad value: exit 2, one line, nothing written`, async () => {
      const flags = command.flags as Record<string, { type: string; allowNo?: boolean }>;
      let runs = 0;
      for (const [name, flag] of Object.entries(flags)) {
        // tune's --out is a file (the table), everywhere else a folder.
        const kind = flag.type === 'boolean' ? 'boolean' : id === 'tune' && name === 'out' ? 'fileOut' : KINDS[name];
        expect(kind, `${id} --${name} has no fuzz kind`).toBeDefined();
        if (kind === 'skip' || kind === 'boolean') continue;
        const listKind = (id === 'bench' && ['tokens', 'hidden', 'ffn', 'experts', 'top-k'].includes(name)) ? 'intList' : id === 'bench' && name === 'capacity-factor' ? 'floatList' : kind;
        const values = [...BAD[listKind], ...(listKind === 'option' || listKind.endsWith('In') || listKind.endsWith('Out') ? [] : randomJunk(rng, 3).filter((v) => !/^\d+(\.\d+)?$/.test(v.trim())))];
        for (const value of values) {
          // A junk string can be a valid number by chance (e.g. "9e1"); those are not bad values.
          if (['positive', 'natural', 'float', 'intList', 'floatList'].includes(listKind) && /^\s*\+?\d*\.?\d+(e\+?\d{1,2})?\s*$/i.test(value) && Number(value) > 0 && Number(value) < 1e6 && !BAD[listKind].includes(value)) continue;
          const argv = [...baseArgs(id, name), `--${name}`, value, ...(name === 'adapter' ? [] : extra)];
          expectUsageError(`${id} --${name} ${JSON.stringify(value)}`, await run(command, argv));
          runs++;
        }
      }
      expect(readdirSync(sandbox), 'nothing written in the working folder').toEqual([]);
      expect(readdirSync(aFolder), 'nothing written in an existing folder').toEqual([]);
      if (Object.keys(flags).some((n) => KINDS[n] !== 'skip' && flags[n].type !== 'boolean')) expect(runs).toBeGreaterThan(0);
    });
  }

  it('contradictory or meaningless combinations: exit 2 naming the conflict', async () => {
    for (const [command, argv] of PAIRS) {
      const gpu = command === Gate || command === Merge || (command === Plan && !argv.includes('--validate')) ? [] : NO_ADAPTER;
      expectUsageError(`${command.id ?? command.name} ${argv.join(' ')}`, await run(command, [...argv, ...gpu]));
    }
    expect(readdirSync(sandbox)).toEqual([]);
    expect(readdirSync(work).sort()).toEqual(['a-file', 'a-folder', 'baseline.json', 'corrupt.json', 'cwd', 'folders-inside']);
    expect(readdirSync(foldersInside).sort(), 'nothing written into the output folder').toEqual(['index.html', 'manifest.json', 'results.md', 'train.html']);
  });
});
