import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DiskFullError, UsageError } from '../errors.js';
import { checkOutputFiles, checkOutputPath, isDiskFull } from '../fs.js';
import type { SamplingPolicy } from '../measure/stats.js';
import { findStrategy } from '../registry.js';
import { LOCK_FILE, lockFolder, type FolderLock } from '../lock.js';
import { sweepCases, type SweepCases, type SweepSpec } from './cases.js';
import { readBenchResults } from './read.js';
import type { BenchResults, ShardRecord } from './schema.js';
import { formatShard, casesOfSlice, sliceSweep, type ShardSpec } from './shard.js';
import { completeRunSettings, completeSweep, resumeSweep, type CheckMode, type GivenSweep, type GpuSettings, type RunSettings } from './sweep.js';

export interface BenchRequest {
  /** The sweep flags given on the command line (undefined: not given). */
  given: GivenSweep;
  layers?: number;
  memoryLimit?: number;
  sampling: { warmup?: number; minSamples?: number; noiseTarget?: number; maxTimeS?: number };
  out?: string;
  resume?: string;
  /** --shard i/n: run only that slice of the sweep (src/bench/shard.ts). */
  shard?: ShardSpec;
  /** --check and the GPU flags that change how cases run, as given (undefined: not given). */
  check?: CheckMode;
  gpu?: Partial<GpuSettings>;
}

export interface PreparedBench {
  spec: SweepSpec;
  sweep: SweepCases;
  run: RunSettings;
  outDir: string;
  resume?: BenchResults;
  /** The slice this run holds (--shard, or the one a resumed shard saved). */
  shard?: ShardRecord;
  /** Held until the command ends (released on exit too). */
  lock: FolderLock;
}

export function defaultOutDir(now = new Date()): string {
  return join('moeblaze-results', now.toISOString().replace(/[:.]/g, '-').slice(0, 19));
}

/** Every file bench writes into its output folder: each is checked before the GPU opens. */
export const BENCH_FILES = ['results.json', 'results.md', 'report.html', 'benchmark-action.json', LOCK_FILE];

/**
 * A new folder for a bench run without --out: the time, to the second, and "-2", "-3", … when
 * another run (started in the same second) has it. mkdir without `recursive` claims a name
 * atomically, so two runs never share one. Returns it with the first folder created for it.
 */
export function claimDefaultOutDir(now = new Date()): { dir: string; created: string } {
  const base = defaultOutDir(now);
  const fail = (error: unknown): never => {
    if (isDiskFull(error)) throw new DiskFullError(base);
    throw new UsageError(`cannot create the output folder "${base}" (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); choose one with --out`);
  };
  let parent: string | undefined;
  try {
    parent = mkdirSync(dirname(base), { recursive: true });
  } catch (error) {
    fail(error);
  }
  for (let n = 1; ; n++) {
    const dir = n === 1 ? base : `${base}-${n}`;
    try {
      mkdirSync(dir);
      return { dir, created: parent ?? dir };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || n >= 1000) fail(error);
    }
  }
}

/**
 * Everything bench decides before the GPU opens: the sweep (the saved one with --resume, checked
 * against the flags), its plan, the output folder (checked, created and locked). Every failure
 * is a UsageError (exit 2) and nothing is written before the folder is locked.
 */
export async function prepareBench(request: BenchRequest): Promise<PreparedBench> {
  let spec: SweepSpec;
  let run: RunSettings;
  let resume: BenchResults | undefined;
  if (request.resume !== undefined) {
    // Only read, unless the finished sweep goes back there (no --out elsewhere): a read-only folder is a fine source.
    if (request.out === undefined || sameFolder(request.out, request.resume)) checkOutputPath(request.resume, 'folder', 'resume');
    const path = join(request.resume, 'results.json');
    resume = await readBenchResults(path, 'resume', '; the run stopped before it started measuring (or this is not a bench folder): start the sweep again');
    const sampling: Partial<SamplingPolicy> = {
      warmup: request.sampling.warmup,
      minSamples: request.sampling.minSamples,
      noiseTarget: request.sampling.noiseTarget,
      maxTimeMs: request.sampling.maxTimeS === undefined ? undefined : request.sampling.maxTimeS * 1000,
    };
    ({ spec, run } = resumeSweep(resume, path, request.given, { layers: request.layers, memoryLimit: request.memoryLimit, sampling, check: request.check, gpu: request.gpu }));
  } else {
    spec = completeSweep(request.given);
    run = completeRunSettings({ layers: request.layers, memoryLimit: request.memoryLimit, ...request.sampling, check: request.check, gpu: request.gpu });
  }
  const whole = sweepCases(spec);
  if (whole.cases.length === 0) throw new UsageError(`the sweep is empty: ${whole.notes.join('; ') || 'no case to run'}`);
  // The whole sweep, not the slice: a shard of cases this adapter-independent check refuses still records them.
  const reasons = whole.cases.map((c) => findStrategy(c.impl).unsupported(c.layer));
  if (reasons.every((r) => r !== null)) throw new UsageError(`no case of the sweep can run: ${[...new Set(reasons)].join('; ')}`);
  const { sweep, shard } = shardOf(whole, request, resume);
  if (resume) {
    // A finished case the sweep no longer plans would be dropped from the rewritten file.
    const planned = new Set(sweep.cases.map((c) => c.key));
    const stray = resume.cases.filter((c) => !planned.has(c.key));
    if (stray.length) throw new UsageError(`--resume: "${request.resume}" holds ${stray.length} case(s) its saved sweep does not plan (e.g. ${stray[0].key}); resuming would drop them`);
  }
  const flag = request.out === undefined && request.resume !== undefined ? 'resume' : 'out';
  let outDir = request.out ?? request.resume;
  let created: string | undefined;
  if (outDir === undefined) {
    checkOutputPath(defaultOutDir(), 'folder', 'out');
    ({ dir: outDir, created } = claimDefaultOutDir());
  }
  checkOutputFiles(outDir, BENCH_FILES, flag);
  // The lock first: a folder another live bench is writing is reported as such.
  const lock = lockFolder(outDir, { flag, created });
  try {
    if (request.out !== undefined && !sameFolder(request.out, request.resume)) refuseOtherResults(request.out);
  } catch (error) {
    lock.release();
    throw error;
  }
  return { spec, sweep, run, outDir, resume, shard, lock };
}

/**
 * The slice to run: --shard's of a new sweep, or exactly the slice a resumed shard saved (a
 * --shard that contradicts it, or a --shard on a whole sweep's folder, exits 2).
 */
function shardOf(whole: SweepCases, request: BenchRequest, resume: BenchResults | undefined): { sweep: SweepCases; shard?: ShardRecord } {
  if (!resume) return request.shard ? sliceSweep(whole, request.shard) : { sweep: whole };
  // Resumed, a merged file would be rewritten as one run on one adapter, losing its shards' runs.
  if (resume.shards) throw new UsageError(`--resume: "${request.resume}" holds a sweep merged from ${resume.shards.length} shard(s) by \`moeblaze merge\`; resume the unfinished shard's own folder, then merge again`);
  const saved = resume.settings.shard;
  if (request.shard && (!saved || saved.index !== request.shard.index || saved.count !== request.shard.count)) {
    const holds = saved ? `shard ${formatShard(saved)}` : 'a whole sweep (run without --shard)';
    throw new UsageError(`--resume: --shard ${formatShard(request.shard)} contradicts "${request.resume}", which holds ${holds}; resume with --resume alone`);
  }
  return saved ? { sweep: casesOfSlice(whole, saved), shard: saved } : { sweep: whole };
}

function sameFolder(a: string, b: string | undefined): boolean {
  return b !== undefined && resolve(a) === resolve(b);
}

/** A new sweep into a folder that holds another one's results.json would overwrite them: refused, with the ways out. */
function refuseOtherResults(dir: string): void {
  const path = join(dir, 'results.json');
  if (!existsSync(path)) return;
  let what = 'a results.json';
  try {
    const old = JSON.parse(readFileSync(path, 'utf8')) as Partial<BenchResults>;
    what = `the results of another sweep (${Array.isArray(old.cases) ? old.cases.length : '?'} case(s), ${old.complete ? 'complete' : 'unfinished'}, from ${old.provenance?.time ?? 'an unknown time'})`;
  } catch {
    // Unreadable: still not ours to overwrite.
  }
  throw new UsageError(`--out: "${dir}" already holds ${what}; continue that sweep with --resume ${dir}, or choose another folder`);
}

/** The command that continues an interrupted sweep, for the Ctrl-C message. */
export function resumeCommand(bin: string, outDir: string, extra: string[] = []): string {
  const quote = (s: string) => (/^[\w./=:@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return [bin, 'bench', '--resume', quote(outDir), ...extra.map(quote)].join(' ');
}
