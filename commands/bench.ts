import { Flags } from '@oclif/core';
import { join } from 'node:path';
import { planSweep } from '../src/bench/plan.js';
import { writeBenchReports } from '../src/bench/output.js';
import { loadResults, prepareOutDir, runBench } from '../src/bench/run.js';
import type { BenchResults } from '../src/bench/schema.js';
import { BaseCommand } from '../src/cli/base.js';
import { floatList, gpuFlags, gpuSelection, integerList, layerFlags, parseIntegerFlag, parseNonNegativeFloat, sizeFlag } from '../src/cli/flags.js';
import { ACTIVATIONS, CHECKPOINTS, DEFAULT_LAYER, DTYPES, findPreset, PRESETS, type Preset } from '../src/config.js';
import { UsageError } from '../src/errors.js';
import { benchExitCode } from '../src/bench/verdict.js';
import { requireDtype } from '../src/layer.js';
import { openGpu, type GpuContext } from '../src/gpu/runtime.js';
import { createProgress } from '../src/render/progress.js';
import { renderBenchTable } from '../src/render/bench-table.js';
import { verboseFlag } from '../src/cli/verbose.js';
import { renderGate } from '../src/render/gate.js';
import { renderPresets } from '../src/render/presets.js';
import type { Provenance } from '../src/provenance.js';
import { BASELINE_DESCRIPTION, DEFAULT_RETRIES, gateFlags, gateOptionsFromFlags, retriesFlag } from '../src/gate/flags.js';
import { gateAgainstBaseline, loadBaselineForRun, replaceCases } from '../src/gate/run.js';
import { runCase } from '../src/bench/case.js';
import { writeFileAtomic } from '../src/npy.js';
import { DEFAULT_SAMPLING } from '../src/stats.js';
import { strategyIds, STRATEGIES } from '../src/strategies/index.js';

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
    'Runs the cross product of --impl, --experts, --top-k, --capacity-factor and --tokens (comma lists; --preset gives real shapes; no flags runs the quick sweep). Each case is first checked against float64 (the full reference on small shapes, sampled rows and columns on large ones; a mismatch exits 3), then timed with GPU timestamps after a warm-up until IQR/median is under --noise-target or --max-time ends. Out-of-memory cases (real, or above --memory-limit) are rows with status oom; the sweep goes on. Writes results.json (schema moeblaze.bench/v1), results.md, report.html and benchmark-action.json into --out. Every figure (step time, useful TFLOP/s, step and activation peaks, saved for backward, the L-layer estimate) is defined in docs/design.md, section Measured figures.';
  static override examples = [
    '<%= config.bin %> bench',
    '<%= config.bin %> bench --preset moeblaze-conf4 --impl zero-buffer --impl megablocks',
    '<%= config.bin %> bench --experts 8,16,32 --top-k 2 --capacity-factor 1,1.25 --memory-limit 512MiB',
    '<%= config.bin %> bench --resume ./moeblaze-results/2026-11-29T10-00-00',
  ];
  static override flags = {
    ...gpuFlags,
    ...layerFlags,
    impl: Flags.string({ multiple: true, options: strategyIds(), description: 'strategy to run (repeatable) [default: every strategy]' }),
    preset: Flags.string({ options: PRESETS.map((p) => p.name), description: 'real shapes (their d, h, E, k, T: --list-presets, or docs/design.md#presets); --tokens overrides T [default: quick]' }),
    'list-presets': Flags.boolean({ description: 'print every preset with its d, h, E, k and T, then exit (no GPU work)' }),
    tokens: integerList({ description: 'T values to sweep [default: the preset\'s]', helpGroup: 'SWEEP' }),
    hidden: integerList({ description: 'd values [default: the preset\'s]', helpGroup: 'SWEEP' }),
    ffn: integerList({ description: 'h values [default: the preset\'s]', helpGroup: 'SWEEP' }),
    experts: integerList({ description: 'E values to sweep [default: the preset\'s]', helpGroup: 'SWEEP' }),
    'top-k': integerList({ description: 'k values to sweep [default: the preset\'s]', helpGroup: 'SWEEP' }),
    'capacity-factor': floatList({ description: 'capacity factors for capacity strategies (0 = busiest expert) [default: 1]', helpGroup: 'SWEEP' }),
    pass: Flags.option({ options: ['forward', 'train'] as const, default: 'train' as const, description: 'time the forward pass only, or forward + backward' })(),
    check: Flags.option({
      options: ['auto', 'sampled'] as const,
      default: 'auto' as const,
      description: 'float64 check before timing: auto = full reference on small shapes, sampled rows and columns on large ones; sampled = always sampled (README "Verification")',
    })(),
    'noise-target': Flags.custom<number>({ parse: async (t, _c, o) => parseFraction(t, o.name), description: 'stop sampling a case once IQR/median is under this [default: 2%]', helpGroup: 'STATISTICS' })(),
    'max-time': Flags.custom<number>({ parse: async (t, _c, o) => parseNonNegativeFloat(t, o.name), description: 'seconds of sampling per case at most [default: 5]', helpGroup: 'STATISTICS' })(),
    'min-samples': Flags.custom<number>({ parse: async (t, _c, o) => parseIntegerFlag(t, o.name, 1, 100000), description: 'samples per case at least [default: 5]', helpGroup: 'STATISTICS' })(),
    warmup: Flags.custom<number>({ parse: async (t, _c, o) => parseIntegerFlag(t, o.name, 0, 1000), description: 'untimed steps before sampling [default: 2]', helpGroup: 'STATISTICS' })(),
    layers: Flags.custom<number>({ parse: async (t, _c, o) => parseIntegerFlag(t, o.name, 1, 100000), description: 'L for the model estimate L × saved-for-backward + backward transient [default: 32]' })(),
    'memory-limit': sizeFlag({ description: 'treat a case that would exceed this many live bytes as out of memory (B, KiB, MiB, GiB; bare number = GiB)' }),
    out: Flags.string({ description: 'folder for results.json, results.md, report.html, benchmark-action.json [default: ./moeblaze-results/<timestamp>]' }),
    resume: Flags.directory({ description: 'continue an interrupted sweep from this folder, keeping its finished cases', exists: true }),
    baseline: Flags.string({ description: BASELINE_DESCRIPTION, helpGroup: 'GATE' }),
    retries: retriesFlag({ description: `re-measure noisy or ambiguous cases this many times before a verdict [default: ${DEFAULT_RETRIES}]`, helpGroup: 'GATE' }),
    ...gateFlags,
    verbose: verboseFlag,
  };

  async run(): Promise<BenchResults | { presets: readonly Preset[]; provenance: Provenance }> {
    const { flags } = await this.parse(Bench);
    if (flags['list-presets']) {
      this.log(renderPresets(PRESETS));
      return { presets: PRESETS, provenance: this.provenance() };
    }
    // Everything is validated here, before any GPU work.
    const preset = flags.preset ? findPreset(flags.preset) : null;
    const strategies = STRATEGIES.map((s) => s.id).filter((id) => (flags.impl ?? strategyIds()).includes(id));
    const plan = planSweep({
      strategies,
      preset: preset?.name ?? null,
      tokens: flags.tokens,
      hidden: flags.hidden,
      ffn: flags.ffn,
      experts: flags.experts,
      topK: flags['top-k'],
      capacityFactor: flags['capacity-factor'] ?? [DEFAULT_LAYER.capacityFactor],
      activation: flags.activation ?? ACTIVATIONS[0],
      checkpoint: flags.checkpoint ?? CHECKPOINTS[0],
      dtype: flags.dtype ?? DTYPES[0],
      skew: flags.skew ?? DEFAULT_LAYER.skew,
      normalizeGates: flags['normalize-gates'],
      auxLoss: flags['aux-loss'] ?? 0,
      seed: flags.seed ?? DEFAULT_LAYER.seed,
      pass: flags.pass,
    });
    if (plan.cases.length === 0) throw new UsageError(`the sweep is empty: ${plan.notes.join('; ') || 'no case to run'}`);
    const resume = flags.resume ? await loadResults(join(flags.resume, 'results.json')) : undefined;
    const baseline = flags.baseline ? await loadBaselineForRun(flags.baseline, flags['update-baseline'] ?? false) : undefined;
    if (flags['update-baseline'] && !flags.baseline) throw new UsageError('--update-baseline needs --baseline FILE: the file to write');
    const outDir = flags.resume ?? flags.out ?? join('moeblaze-results', new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19));
    await prepareOutDir(outDir);
    const sampling = {
      warmup: flags.warmup ?? DEFAULT_SAMPLING.warmup,
      minSamples: flags['min-samples'] ?? DEFAULT_SAMPLING.minSamples,
      maxSamples: DEFAULT_SAMPLING.maxSamples,
      noiseTarget: flags['noise-target'] ?? DEFAULT_SAMPLING.noiseTarget,
      maxTimeMs: (flags['max-time'] ?? 5) * 1000,
    };
    return this.withGpu(flags, async (gpu) => {
      for (const c of plan.cases) requireDtype(gpu, c.layer.dtype);
      for (const note of plan.notes) this.progress(`note: ${note}`);
      const progress = createProgress(plan.cases.length);
      const reopened: GpuContext[] = [];
      try {
        const results = await runBench(gpu, plan, {
          preset: preset?.name ?? null,
          pass: flags.pass,
          layers: flags.layers ?? 32,
          check: flags.check,
          sampling,
          memoryLimit: flags['memory-limit'] ?? null,
          outDir,
          provenance: this.provenance(gpu.adapter),
          resume,
          onCaseStart: (_i, _n, label) => progress.tick(label),
          writeReports: writeBenchReports,
          reopenDevice: async (old) => {
            // The first device too: until it is destroyed, Dawn keeps the memory of its freed buffers.
            old.destroy();
            const fresh = await openGpu(gpuSelection(flags));
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
          const byKey = new Map(plan.cases.map((c) => [c.key, c]));
          const { report, baselineMessage } = await gateAgainstBaseline(baseline, results, {
            baselinePath: flags.baseline,
            options: gateOptionsFromFlags(flags, sampling.noiseTarget),
            retries: flags.retries ?? DEFAULT_RETRIES,
            update: flags['update-baseline'] ?? false,
            remeasure: async (keys) => {
              this.progress(`re-measuring ${keys.length} noisy or ambiguous case(s)`);
              const fresh = [];
              for (const key of keys) {
                const planned = byKey.get(key);
                if (planned) fresh.push(await runCase(device, planned, { sampling, layers: flags.layers ?? 32, memoryLimit: flags['memory-limit'] ?? null, gemmCeilingTflops: results.ceilings?.gemm.tflops ?? null, check: flags.check }));
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
        }
        return results;
      } finally {
        reopened.forEach((g) => g.destroy());
      }
    });
  }
}
