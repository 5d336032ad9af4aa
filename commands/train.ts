import { Flags } from '@oclif/core';
import { join } from 'node:path';
import { verboseFlag } from '../src/cli/verbose.js';
import { BaseCommand } from '../src/cli/base.js';
import { gpuFlags } from '../src/cli/flags.js';
import { LAYER_DIMENSION_MAX, parseIntegerFlag, parseNonNegativeFloat } from '../src/flag-parsers.js';
import { DTYPES } from '../src/config.js';
import { requireDtype } from '../src/layer.js';
import { checkOutputFiles, writeFileAtomic } from '../src/fs.js';
import { requireRunnable } from '../src/layer-limits.js';
import { renderTrainHtml, renderTrainSummary, trainProgressWriter } from '../src/render/train.js';
import { REFERENCE_STRATEGY, strategyIds } from '../src/registry.js';
import { moeConfig, trainConfig, DEFAULT_TRAIN, TRAIN_LAYERS_MAX } from '../src/train/model.js';
import { divergenceMessages, runTraining, type TrainResult } from '../src/train/run.js';
import { ExitCode } from '../src/errors.js';

const int = (min: number, max = LAYER_DIMENSION_MAX) => Flags.custom<number>({ parse: async (input, _ctx, opts) => parseIntegerFlag(input, opts.name, min, max) });
const float = Flags.custom<number>({ parse: async (input, _ctx, opts) => parseNonNegativeFloat(input, opts.name) });

export default class Train extends BaseCommand {
  static override summary = 'Train a small model with L MoE layers (Adam, on the GPU) and show the loss falling and the L-layer step\'s memory.';
  static override description =
    'Model: z = x·W_in, r = z + MoE(z), y = r·W_out (with --layers L: L MoE layers, each with its residual), trained with Adam (GPU kernels; m and v under the allocator\'s "optimizer" tag) to regress the output of a fixed random teacher of the same family (one MoE layer), on batches drawn from --seed. Every strategy gets the same data and initial weights. With --dtype f16 (mixed precision; needs the adapter\'s shader-f16) activations, weights and gradients are stored as f16 while Adam keeps f32 master weights and f32 moments, and the loss is scaled by a power of two for the f16 gradients. Prints a live progress line (step, loss, tokens/s, peak memory) on stderr, a summary with the expert-load histogram and the measured peak of the L-layer step next to its prediction from the strategy\'s buffer tables and to bench\'s and plan\'s L-layer estimates, and with --out writes train.json and train.html (loss curve per strategy, inline SVG). The MoE layer is the one of docs/design.md#the-layer.';
  static override examples = [
    '<%= config.bin %> train',
    '<%= config.bin %> train --impl zero-buffer --impl megablocks-grouped --steps 300 --out reports/train',
    '<%= config.bin %> train --aux-loss 0.01 --experts 8',
    '<%= config.bin %> train --dtype f16 --impl zero-buffer',
    '<%= config.bin %> train --layers 4 --impl zero-buffer --impl tutel --steps 100',
  ];
  static override flags = {
    ...gpuFlags,
    verbose: verboseFlag,
    impl: Flags.string({ multiple: true, options: strategyIds(), description: 'strategy of the MoE layer (repeatable) [default: zero-buffer]' }),
    steps: int(1, 10_000_000)({ description: `optimizer steps [default: ${DEFAULT_TRAIN.steps}]` }),
    lr: float({ description: `Adam learning rate [default: ${DEFAULT_TRAIN.lr}]` }),
    seed: Flags.custom<number>({ parse: async (input, _ctx, opts) => parseIntegerFlag(input, opts.name, 0, 0xffffffff) })({ description: `seed of data, teacher and initial weights [default: ${DEFAULT_TRAIN.seed}]` }),
    dtype: Flags.option({ options: DTYPES, description: 'storage of activations, weights and gradients; f16 keeps f32 master weights and Adam state and needs the adapter\'s shader-f16 [default: f32]' })(),
    'capacity-factor': float({ description: 'capacity factor of Tutel and GShard (C = k·⌊cf·⌈T/E⌉⌋; drops cost loss); dropless strategies ignore it [default: 0 = no drops]', helpValue: '<cf>' }),
    'aux-loss': float({ description: 'Switch load-balancing loss coefficient α; 0 = off [default: 0]', helpValue: '<alpha>' }),
    tokens: int(1)({ description: `T, tokens per step [default: ${DEFAULT_TRAIN.tokens}]`, helpGroup: 'MODEL' }),
    'input-dim': int(1)({ description: `input size d_in [default: ${DEFAULT_TRAIN.inputDim}]`, helpGroup: 'MODEL' }),
    hidden: int(1)({ description: `d, hidden size of the MoE layer [default: ${DEFAULT_TRAIN.hidden}]`, helpGroup: 'MODEL' }),
    ffn: int(1)({ description: `h, expert FFN size [default: ${DEFAULT_TRAIN.ffn}]`, helpGroup: 'MODEL' }),
    experts: int(1)({ description: `E, experts [default: ${DEFAULT_TRAIN.experts}]`, helpGroup: 'MODEL' }),
    'top-k': int(1)({ description: `k, experts per token [default: ${DEFAULT_TRAIN.topK}]`, helpGroup: 'MODEL' }),
    'output-dim': int(1)({ description: `output size d_out [default: ${DEFAULT_TRAIN.outputDim}]`, helpGroup: 'MODEL' }),
    layers: int(1, TRAIN_LAYERS_MAX)({ description: `L, MoE layers of the model, each with its residual, on one allocator [default: ${DEFAULT_TRAIN.layers}]`, helpGroup: 'MODEL' }),
    out: Flags.string({ description: 'write train.json and train.html into this folder', helpValue: '<dir>' }),
  };

  async run(): Promise<TrainResult> {
    const { flags } = await this.parse(Train);
    const config = trainConfig({
      steps: flags.steps,
      lr: flags.lr,
      seed: flags.seed,
      auxLoss: flags['aux-loss'],
      capacityFactor: flags['capacity-factor'],
      tokens: flags.tokens,
      inputDim: flags['input-dim'],
      hidden: flags.hidden,
      ffn: flags.ffn,
      experts: flags.experts,
      topK: flags['top-k'],
      outputDim: flags['output-dim'],
      layers: flags.layers,
      dtype: flags.dtype,
    });
    const strategies = flags.impl ?? [REFERENCE_STRATEGY];
    requireRunnable(strategies, moeConfig(config));
    if (flags.out !== undefined) checkOutputFiles(flags.out, ['train.json', 'train.html'], 'out');
    return this.withGpu(flags, async (gpu) => {
      requireDtype(gpu, config.dtype);
      const result = await runTraining(gpu, config, strategies, trainProgressWriter());
      result.provenance = this.provenance(gpu.adapter, gpu.allocatorPolicy.mode);
      if (!this.jsonEnabled()) this.log(renderTrainSummary(result));
      if (flags.out) {
        await writeFileAtomic(join(flags.out, 'train.json'), `${JSON.stringify(result, null, 2)}\n`);
        await writeFileAtomic(join(flags.out, 'train.html'), renderTrainHtml(result));
        this.progress(`wrote ${join(flags.out, 'train.json')} and train.html`);
      }
      const diverged = divergenceMessages(result);
      for (const line of diverged) this.progress(`moeblaze: ${line}`);
      if (diverged.length) process.exitCode = ExitCode.checkFailed;
      return result;
    });
  }
}
