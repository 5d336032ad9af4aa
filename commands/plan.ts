import { Flags } from '@oclif/core';
import { verboseFlag } from '../src/cli/verbose.js';
import { presetShape } from '../src/cli/preset-shape.js';
import { BaseCommand } from '../src/cli/base.js';
import { gpuFlags, layerConfigFromFlags, pickLayerFlags, sizeFlag, type LayerFlagValues } from '../src/cli/flags.js';
import { LAYER_DIMENSION_MAX, parseIntegerFlag } from '../src/flag-parsers.js';
import { PRESETS } from '../src/config.js';
import { ExitCode, UsageError } from '../src/errors.js';
import { requireDtype } from '../src/layer.js';
import { OPTIMIZERS, PLAN_DTYPES } from '../src/plan/memory.js';
import type { PlanResult } from '../src/plan/model.js';
import { runPlan } from '../src/plan/run.js';
import { validatePlan, type ValidationResult } from '../src/plan/validate.js';
import type { Provenance } from '../src/measure/provenance.js';
import type { FitAdvice } from '../src/plan/advice.js';
import { renderPlan, renderValidation } from '../src/render/plan.js';
import { strategyIds, STRATEGIES } from '../src/registry.js';

const integer = (min: number, max?: number) =>
  Flags.custom<number>({ parse: async (input, _ctx, opts) => parseIntegerFlag(input, opts.name, min, max) });

/** The layer flags plan models (its --dtype is its own; gates, aux loss and seed change no byte). */
const PLAN_LAYER_FLAGS = ['tokens', 'hidden', 'ffn', 'experts', 'top-k', 'activation', 'capacity-factor', 'checkpoint', 'skew', 'routing'] as const;

export default class Plan extends BaseCommand {
  static override summary = 'Model every strategy\'s memory and traffic for a shape: per-GPU peak, whether it fits, the largest micro-batch that does.';
  static override description =
    'Evaluates each strategy\'s own buffer table (the one the allocator is checked against to the byte) with expected routing (uniform, or Zipf by Monte-Carlo; --routing balanced gives the exact loads) at the planning dtype, adds weights, gradients and optimizer state for --layers layers, and reports the step\'s peak per GPU, whether it fits --memory, and the largest tokens per micro-batch that fit. --expert-parallel N models experts split over N GPUs with the all-to-all bytes of a step (nothing runs on several GPUs). --validate instead runs every strategy on the present adapter over a small grid, at f32 and (where the adapter has shader-f16) f16, and checks the model against the allocator. The figures are those of docs/design.md#memory.';
  static override examples = [
    '<%= config.bin %> plan --preset deepseek-v3-like-layer --memory 80 --dtype bf16',
    '<%= config.bin %> plan --preset mixtral-8x7b-layer --memory 80GiB --layers 32 --optimizer adam --expert-parallel 8',
    '<%= config.bin %> plan --preset qwen3-30b-a3b-like-layer --skew zipf:1.2 --memory 141 --json',
    '<%= config.bin %> plan --validate',
    '<%= config.bin %> plan --validate --dtype f16 --impl zero-buffer',
  ];
  static override flags = {
    ...gpuFlags,
    verbose: verboseFlag,
    preset: Flags.string({ options: PRESETS.map((p) => p.name), description: 'a preset shape (`bench --list-presets`, docs/design.md#presets); size flags override it' }),
    ...pickLayerFlags(PLAN_LAYER_FLAGS),
    dtype: Flags.option({
      options: PLAN_DTYPES,
      description:
        'storage of weights, gradients and activations [default: f32]: f16 as the strategies store it (router state stays f32); bf16 is modelled only, with the f16 tables (WGSL has no bf16). With --validate, the one dtype to check (f32 or f16) [default there: both]',
    })(),
    layers: integer(1, 100000)({ default: 1, description: 'L, MoE layers held at once: weights, gradients, optimizer state and saved activations scale with it' }),
    memory: sizeFlag({ description: 'memory per GPU (B, KiB, MiB, GiB; bare number = GiB): report fit and the largest micro-batch' }),
    optimizer: Flags.option({
      options: OPTIMIZERS,
      default: 'none' as const,
      description: 'optimizer state: adam (2 f32 moments), sgd (f32 momentum), each + an f32 master copy of every weight stored at 16 bits; none (the step as bench measures it)',
    })(),
    'expert-parallel': integer(1, LAYER_DIMENSION_MAX)({ default: 1, description: 'N GPUs the experts are split over (must divide E): per-GPU memory and all-to-all bytes' }),
    impl: Flags.string({ multiple: true, options: strategyIds(), description: 'strategy to model (repeatable) [default: every strategy]' }),
    validate: Flags.boolean({
      // --validate checks the tables on a fixed grid: a shape or budget given with it would be ignored.
      exclusive: ['preset', ...PLAN_LAYER_FLAGS, 'layers', 'memory', 'optimizer', 'expert-parallel'],
      description: 'run every strategy on this adapter over a small grid, at f32 and f16 (f16 skipped, with a note, without shader-f16), and check the model against the allocator (exit 3 on a mismatch)',
    }),
  };

  async run(): Promise<((PlanResult & { advice: FitAdvice[] }) | ValidationResult) & { provenance: Provenance }> {
    const { flags } = await this.parse(Plan);
    const strategies = STRATEGIES.filter((s) => (flags.impl ?? strategyIds()).includes(s.id));
    if (flags.validate) {
      if (flags.dtype === 'bf16') throw new UsageError('--dtype bf16: bf16 is modelled only (WGSL has no bf16), with the f16 tables; validate those with --dtype f16');
      const dtype = flags.dtype;
      return this.withGpu(flags, async (gpu) => {
        // Asked for by name, f16 without shader-f16 is an environment error (exit 4), as in verify.
        if (dtype) requireDtype(gpu, dtype);
        const result = await validatePlan(gpu, { strategies, dtypes: dtype ? [dtype] : undefined, onProgress: (m) => this.progress(m) });
        this.log(renderValidation(result));
        if (!result.pass) process.exitCode = ExitCode.checkFailed;
        return { ...result, provenance: this.provenance(gpu.adapter, gpu.allocatorPolicy.mode) };
      });
    }
    // Without --validate, plan opens no GPU: an adapter flag would be ignored without a word.
    const gpuGiven = (['adapter', 'backend', 'gemm', 'nvidia-f16', 'unsafe-disable-robustness'] as const).filter((name) => flags[name] !== undefined && flags[name] !== false);
    if (gpuGiven.length) throw new UsageError(`--${gpuGiven[0]} applies to plan --validate only (plan alone models memory and runs nothing on a GPU); add --validate or drop --${gpuGiven[0]}`);
    const layer: LayerFlagValues = Object.fromEntries(PLAN_LAYER_FLAGS.map((name) => [name, flags[name]]));
    const config = layerConfigFromFlags(layer, presetShape(flags.preset, layer, 'plan'));
    const { result, advice } = await runPlan({
      config,
      preset: flags.preset ?? null,
      strategyIds: strategies.map((s) => s.id),
      dtype: flags.dtype ?? 'f32',
      layers: flags.layers,
      optimizer: flags.optimizer,
      memory: flags.memory ?? null,
      expertParallel: flags['expert-parallel'],
    });
    this.log(renderPlan(result, {}, advice));
    return { ...result, advice, provenance: this.provenance() };
  }
}
