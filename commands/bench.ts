import { Flags, type Interfaces } from '@oclif/core';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeBenchReports } from '../src/render/bench-files.js';
import { prepareBench, resumeCommand, type PreparedBench } from '../src/bench/prepare.js';
import { givenSweep, saveSweep } from '../src/bench/sweep.js';
import { caseOptions, runBench, sweepFailure } from '../src/bench/run.js';
import { onInterrupt } from '../src/cli/interrupt.js';
import type { BenchResults } from '../src/bench/schema.js';
import { BaseCommand } from '../src/cli/base.js';
import { gpuFlags, gpuSelection, layerFlags, sizeFlag, sweepListFlags } from '../src/cli/flags.js';
import { parseIntegerFlag, parseNonNegativeFloat } from '../src/flag-parsers.js';
import { PRESETS, type Preset } from '../src/config.js';
import { DiskFullError, ExitCode, UsageError } from '../src/errors.js';
import { benchExitCode } from '../src/bench/verdict.js';
import { requireDtype } from '../src/layer.js';
import { openGpu, type GpuContext } from '../src/gpu/runtime.js';
import { createProgress } from '../src/render/progress.js';
import { renderBenchTable } from '../src/render/bench-table.js';
import { verboseFlag } from '../src/cli/verbose.js';
import { renderGate } from '../src/render/gate.js';
import { renderPresets } from '../src/render/presets.js';
import type { Provenance } from '../src/measure/provenance.js';
import { BASELINE_DESCRIPTION, benchGateFlags, DEFAULT_RETRIES, gateOptionsFromFlags, retriesFlag } from '../src/cli/gate-flags.js';
import { gateAgainstBaseline, loadBaselineForRun, replaceCases, requireSharedCases } from '../src/gate/run.js';
import { runCase } from '../src/bench/case.js';
import { checkOutputPath, writeFileAtomic } from '../src/fs.js';
import { strategyIds } from '../src/registry.js';
import { parseShardSpec, type ShardSpec } from '../src/bench/shard.js';
import { tuningAdapterWarning, tuningFlag, tuningProvenance, type TuningFlag } from '../src/cli/tuning-flag.js';

/** "2%" or "0.02" → 0.02. */
function parseFraction(text: string, flag: string): number {
  const percent = text.trim().endsWith('%');
  const value = parseNonNegativeFloat(percent ? text.trim().slice(0, -1) : text, flag) / (percent ? 100 : 1);
  if (!(value > 0 && value < 1)) throw new UsageError(`--${flag}: "${text}" is not allowed; use a fraction or percentage between 0 and 100%, e.g. 2%`);
  return value;
}

export default class Bench extends BaseCommand {
  static override summary = 'Sweep strategies and shapes: time, throughput and peak memory per case, checked before timed.';
  static override description =
    'Runs the cross product of --impl, --experts, --top-k, --capacity-factor and --tokens (comma lists; --preset gives real shapes; no flags runs the quick sweep). Each case is first checked against float64 (the full reference on small shapes, sampled rows and columns on large ones; a mismatch exits 3), then timed with GPU timestamps after a warm-up until IQR/median is under --noise-target or --max-time ends. Out-of-memory cases (real, or above --memory-limit) are rows with status oom; the sweep goes on. Writes results.json (schema moeblaze.bench/v2), results.md, report.html and benchmark-action.json into --out. Every figure (step time, useful TFLOP/s, step and activation peaks, saved for backward, the L-layer estimate) is defined in docs/design.md, section Measured figures.';
  static override examples = [
    '<%= config.bin %> bench',
    '<%= config.bin %> bench --preset moeblaze-conf4 --impl zero-buffer --impl megablocks',
    '<%= config.bin %> bench --experts 8,16,32 --top-k 2 --capacity-factor 1,1.25 --memory-limit 512MiB',
    '<%= config.bin %> bench --resume ./moeblaze-results/2026-11-29T10-00-00',
    '<%= config.bin %> bench --preset moeblaze-paper --shard 2/4 --adapter 1 --out sweep/2',
  ];
  static override flags = {
    ...gpuFlags,
    tuning: tuningFlag,
    ...layerFlags,
    impl: Flags.string({ multiple: true, options: strategyIds(), description: 'strategy to run (repeatable) [default: every strategy]' }),
    preset: Flags.string({ options: PRESETS.map((p) => p.name), description: 'real shapes (their d, h, E, k, T: --list-presets, or docs/design.md#presets); --tokens overrides T [default: quick]' }),
    'list-presets': Flags.boolean({ description: 'print every preset with its d, h, E, k and T, then exit (no GPU work)' }),
    ...sweepListFlags,
    pass: Flags.option({ options: ['forward', 'train'] as const, description: 'time the forward pass only, or forward + backward [default: train]' })(),
    check: Flags.option({
      options: ['auto', 'sampled'] as const,
      description: 'float64 check before timing: auto = full reference on small shapes, sampled rows and columns on large ones; sampled = always sampled (README "Verification"); saved, and held to on --resume [default: auto]',
    })(),
    'noise-target': Flags.custom<number>({ parse: async (t, _c, o) => parseFraction(t, o.name), description: 'stop sampling a case once IQR/median is under this [default: 2%]', helpGroup: 'STATISTICS' })(),
    'max-time': Flags.custom<number>({ parse: async (t, _c, o) => parseNonNegativeFloat(t, o.name), description: 'seconds of sampling per case at most [default: 5]', helpGroup: 'STATISTICS' })(),
    'min-samples': Flags.custom<number>({ parse: async (t, _c, o) => parseIntegerFlag(t, o.name, 1, 100000), description: 'samples per case at least [default: 5]', helpGroup: 'STATISTICS' })(),
    warmup: Flags.custom<number>({ parse: async (t, _c, o) => parseIntegerFlag(t, o.name, 0, 1000), description: 'untimed steps before sampling [default: 2]', helpGroup: 'STATISTICS' })(),
    layers: Flags.custom<number>({ parse: async (t, _c, o) => parseIntegerFlag(t, o.name, 1, 100000), description: 'L for the model estimate L × saved-for-backward + backward transient [default: 32]' })(),
    'memory-limit': sizeFlag({ description: 'treat a case that would exceed this many live bytes as out of memory (B, KiB, MiB, GiB; bare number = GiB)' }),
    out: Flags.string({ description: 'folder for results.json, results.md, report.html, benchmark-action.json [default: ./moeblaze-results/<timestamp>]' }),
    resume: Flags.string({
      description: 'continue the interrupted sweep saved in this folder, with its settings, keeping its finished cases; sweep flags that contradict it are refused; with --out, writes the finished sweep there and leaves this folder as it is',
      helpValue: '<dir>',
    }),
    shard: Flags.custom<ShardSpec>({
      parse: async (t, _c, o) => parseShardSpec(t, o.name),
      description: 'run only slice i of n of the sweep: the same sweep and n always give the same slices, balanced by predicted cost (FLOPs and bytes per case); `moeblaze merge` joins the shards\' folders (README "Sweeps on many machines")',
      helpValue: '<i/n>',
    })(),
    baseline: Flags.string({ description: BASELINE_DESCRIPTION, helpGroup: 'GATE' }),
    retries: retriesFlag({ dependsOn: ['baseline'], description: `re-measure noisy or ambiguous cases this many times before a verdict [default: ${DEFAULT_RETRIES}]`, helpGroup: 'GATE' }),
    ...benchGateFlags,
    verbose: verboseFlag,
  };

  async run(): Promise<BenchResults | { presets: readonly Preset[]; provenance: Provenance }> {
    const { flags, raw } = await this.parse(Bench);
    if (flags['list-presets']) {
      // Nothing runs: a sweep flag given with it would be ignored without a word.
      const ignored = [...new Set(raw.flatMap((t) => (t.type === 'flag' && !['list-presets', 'json', 'verbose'].includes(t.flag) ? [t.flag] : [])))];
      if (ignored.length) throw new UsageError(`--list-presets prints the presets and runs nothing, so ${ignored.map((f) => `--${f}`).join(', ')} would be ignored; drop ${ignored.length > 1 ? 'them' : 'it'}`);
      this.log(renderPresets(PRESETS));
      return { presets: PRESETS, provenance: this.provenance() };
    }
    // Everything is validated here, before any GPU work.
    const baseline = flags.baseline ? await loadBaselineForRun(flags.baseline, flags['update-baseline'] ?? false) : undefined;
    if (flags.baseline && flags['update-baseline']) checkOutputPath(flags.baseline, 'file', 'baseline');
    const prepared = await prepareBench({
      given: givenSweep(flags),
      layers: flags.layers,
      memoryLimit: flags['memory-limit'],
      sampling: { warmup: flags.warmup, minSamples: flags['min-samples'], noiseTarget: flags['noise-target'], maxTimeS: flags['max-time'] },
      out: flags.out,
      resume: flags.resume,
      shard: flags.shard,
      check: flags.check,
      gpu: { gemm: flags.gemm, nvidiaF16: flags['nvidia-f16'], robustness: flags['unsafe-disable-robustness'] ? false : undefined },
    });
    const { sweep, outDir, lock } = prepared;
    const stopOnInterrupt = onInterrupt(() => {
      lock.release();
      return `interrupted; ${this.howToContinue(flags, outDir)}`;
    });
    try {
      if (baseline) requireSharedCases(baseline, sweep.cases.map((c) => c.key), flags.baseline!);
      return await this.sweep(flags, prepared, baseline);
    } catch (error) {
      // The finished cases are safe (every write is atomic): say how to go on once there is room.
      if (error instanceof DiskFullError) {
        const command = this.continueCommand(flags, outDir);
        throw new DiskFullError(error.path, `; free some space, then ${command ? `continue the sweep with: ${command}` : 'run the same command again'}`);
      }
      throw error;
    } finally {
      stopOnInterrupt();
      lock.release();
    }
  }

  /**
   * What is saved and the command that goes on from it. Before the first save (an interrupt while
   * the output folder was being set up) there is nothing to resume in `outDir`: the command that
   * started the run is the way on.
   */
  private howToContinue(flags: Record<string, unknown>, outDir: string): string {
    const results = join(outDir, 'results.json');
    const command = this.continueCommand(flags, outDir);
    if (existsSync(results)) return `the finished cases are saved in ${results}. Continue the sweep with: ${command}`;
    if (command) return `nothing new was saved. Continue the sweep with: ${command}`;
    return 'nothing was saved yet; run the same command again';
  }

  /** The --resume command from what is on disk now; null when nothing is saved to resume from. */
  private continueCommand(flags: Record<string, unknown>, outDir: string): string | null {
    if (existsSync(join(outDir, 'results.json'))) return resumeCommand(this.config.bin, outDir, this.runFlags(flags));
    if (flags.resume === undefined) return null;
    return resumeCommand(this.config.bin, flags.resume as string, [...(flags.out === undefined ? [] : ['--out', flags.out as string]), ...this.runFlags(flags)]);
  }

  /** The flags that are not part of the saved sweep, for the resume command (the sweep itself comes from the folder). */
  private runFlags(flags: Record<string, unknown>): string[] {
    const out: string[] = [];
    for (const name of ['adapter', 'backend', 'baseline', 'retries', 'threshold']) if (flags[name] !== undefined) out.push(`--${name}`, String(flags[name]));
    // The table is not in the saved sweep: a resumed run must give the same file (runBench holds it to the saved hash).
    if (flags.tuning !== undefined) out.push('--tuning', (flags.tuning as TuningFlag).path);
    if (flags['memory-tolerance'] !== undefined) out.push('--memory-tolerance', `${flags['memory-tolerance'] as number}B`);
    for (const name of ['strict', 'advisory-speed', 'absolute-speed', 'update-baseline', 'force', 'json']) if (flags[name]) out.push(`--${name}`);
    return out;
  }

  private async sweep(
    flags: Interfaces.InferredFlags<typeof Bench.flags>,
    prepared: PreparedBench,
    baseline: BenchResults | null | undefined,
  ): Promise<BenchResults> {
    const { sweep, resume, spec, outDir } = prepared;
    const { sampling, layers, memoryLimit, check } = prepared.run;
    const kept = resume ? sweep.cases.filter((c) => resume.cases.some((k) => k.key === c.key)).length : 0;
    // The device as the sweep runs (with --resume, as it ran before: sweep.ts holds the flags to the saved ones).
    const { gemm, nvidiaF16, robustness } = prepared.run.gpu;
    const deviceFlags = { ...flags, dtype: spec.dtype, gemm, 'nvidia-f16': nvidiaF16, 'unsafe-disable-robustness': !robustness };
    return this.withGpu(deviceFlags, async (gpu) => {
      for (const c of sweep.cases) requireDtype(gpu, c.layer.dtype);
      for (const note of sweep.notes) this.progress(`note: ${note}`);
      const mismatch = tuningAdapterWarning(flags.tuning, gpu);
      if (mismatch) this.progress(mismatch);
      if (resume) this.progress(`resuming: ${kept} of ${sweep.cases.length} case(s) already finished in ${flags.resume}; running the other ${sweep.cases.length - kept}`);
      const progress = createProgress(sweep.cases.length - kept);
      const reopened: GpuContext[] = [];
      try {
        const results = await runBench(gpu, sweep, {
          preset: spec.preset,
          pass: spec.pass,
          layers,
          check,
          gpu: prepared.run.gpu,
          sampling,
          memoryLimit,
          outDir,
          sweep: saveSweep(spec),
          shard: prepared.shard,
          provenance: { ...this.provenance(gpu.adapter, gpu.allocatorPolicy.mode), ...tuningProvenance(flags.tuning) },
          resume,
          onCaseStart: (_i, _n, label) => progress.tick(label),
          writeReports: writeBenchReports,
          reopenDevice: async (old) => {
            // The first device too: until it is destroyed, Dawn keeps the memory of its freed buffers.
            old.destroy();
            const fresh = await openGpu(gpuSelection(deviceFlags));
            reopened.push(fresh);
            return fresh;
          },
        });
        progress.done();
        this.log(renderBenchTable(results));
        this.progress(`wrote ${join(outDir, 'results.json')}, results.md, report.html, benchmark-action.json`);
        const mismatches = results.cases.filter((c) => c.status === 'mismatch');
        if (mismatches.length) this.progress(`${mismatches.length} case(s) disagree with the float64 reference (exit 3): ${mismatches.map((c) => c.key).join('; ')}`);
        process.exitCode = benchExitCode(results.cases, null);
        if (flags.baseline && baseline !== undefined) {
          const device = reopened.at(-1) ?? gpu;
          const byKey = new Map(sweep.cases.map((c) => [c.key, c]));
          const { report, baselineMessage, refused } = await gateAgainstBaseline(baseline, results, {
            baselinePath: flags.baseline,
            options: gateOptionsFromFlags(flags, sampling.noiseTarget),
            retries: flags.retries ?? DEFAULT_RETRIES,
            update: flags['update-baseline'] ?? false,
            force: flags.force,
            remeasure: async (keys) => {
              this.progress(`re-measuring ${keys.length} noisy or ambiguous case(s)`);
              const fresh = [];
              for (const key of keys) {
                const sweepCase = byKey.get(key);
                if (sweepCase) fresh.push(await runCase(device, sweepCase, caseOptions(device, sweepCase, results, { sampling, layers, memoryLimit, check })));
              }
              replaceCases(results, fresh);
              await writeFileAtomic(join(outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
            },
          });
          if (report) {
            this.log(renderGate(report, { verbose: flags.verbose }));
            process.exitCode = benchExitCode(results.cases, report.exitCode);
          }
          if (baselineMessage) this.progress(baselineMessage);
          if (refused) process.exitCode = 3;
        }
        const failure = sweepFailure(results);
        if (failure) {
          // Per-case errors here are the adapter's limits (usage errors were refused before the GPU opened).
          this.progress(`moeblaze: ${failure}`);
          process.exitCode = ExitCode.environment;
        }
        return results;
      } finally {
        reopened.forEach((g) => g.destroy());
      }
    });
  }
}
