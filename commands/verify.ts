import { Flags, type Interfaces } from '@oclif/core';
import type { LayerConfig } from '../src/config.js';
import { verboseFlag } from '../src/cli/verbose.js';
import { BaseCommand } from '../src/cli/base.js';
import { gpuFlags, layerConfigFromFlags, layerFlags, sizeFlag } from '../src/cli/flags.js';
import { ExitCode, UsageError } from '../src/errors.js';
import { requireDtype } from '../src/layer.js';
import { renderVerify } from '../src/render/verify.js';
import { strategyIds } from '../src/registry.js';
import { prepareDumpFolder } from '../src/verify/dump-folder.js';
import { requireRunnable, requireVerifiable } from '../src/layer-limits.js';
import { verifyStrategies, type VerifyResult } from '../src/verify/verify.js';
import type { Provenance } from '../src/measure/provenance.js';

export default class Verify extends BaseCommand {
  static override summary = 'Check strategies against the float64 reference: forward output and every gradient.';
  static override description =
    'Runs one training step of the layer on the GPU with each strategy and compares O, dX, dWr, dW1, dW2 and dW3 with a float64 CPU reference computed from the same seeded inputs (capacity strategies against the reference with the same capacity and drops). Passes when every tensor is within its bound (‖error‖ ≤ rtol·‖ref‖ + atol·‖√Σ terms²‖, largest element ≤ 16× its share; README "Verification") and nothing is NaN; exits 3 otherwise, as bench does for a mismatch. Near-tie tokens (k-th and (k+1)-th logits within 1e-5·max|z|) that the GPU routed differently are given the GPU\'s routing in the reference and counted. --dump writes inputs, routing and every result as .npy files with a manifest. The layer and the error measure: docs/design.md#the-layer and #numerics-and-the-reference.';
  static override examples = [
    '<%= config.bin %> verify',
    '<%= config.bin %> verify --impl zero-buffer --tokens 131 --hidden 67 --ffn 69 --experts 7 --top-k 3',
    '<%= config.bin %> verify --activation gelu --checkpoint full --json',
    '<%= config.bin %> verify --dump ./verify-dump',
  ];
  static override flags = {
    ...gpuFlags,
    verbose: verboseFlag,
    ...layerFlags,
    impl: Flags.string({
      multiple: true,
      options: strategyIds(),
      description: 'strategy to check (repeatable) [default: every strategy]',
    }),
    tolerance: Flags.custom<number>({
      parse: async (input) => {
        const value = Number(input);
        if (!(value > 0 && value < 1)) throw new UsageError(`--tolerance: "${input}" is not allowed; use a relative error between 0 and 1, e.g. 1e-4`);
        return value;
      },
      description: 'relative tolerance rtol of the bound (README "Verification") [default: 1e-4 for f32, 2·2⁻¹¹ ≈ 9.8e-4 for f16, where atol is 4·2⁻¹¹]',
    })(),
    dump: Flags.string({ helpValue: '<dir>', description: 'write inputs, routing and results as .npy files with manifest.json into this folder' }),
    'chunk-limit': sizeFlag({
      description: 'split every chunkable tensor into buffers of at most this size (exercises chunking on small shapes) [default: the adapter\'s binding limit]',
    }),
  };

  async run(): Promise<VerifyResult & { provenance: Provenance }> {
    const { flags } = await this.parse(Verify);
    const config = layerConfigFromFlags(flags);
    const strategies = flags.impl ?? strategyIds();
    requireRunnable(strategies, config);
    requireVerifiable(config);
    const dump = flags.dump === undefined ? null : prepareDumpFolder(flags.dump, { strategies });
    try {
      return await this.verifyOnGpu(flags, config, strategies);
    } finally {
      dump?.release();
    }
  }

  private verifyOnGpu(flags: Interfaces.InferredFlags<typeof Verify.flags>, config: LayerConfig, strategies: string[]): Promise<VerifyResult & { provenance: Provenance }> {
    return this.withGpu(flags, async (gpu) => {
      requireDtype(gpu, config.dtype);
      const result = await verifyStrategies(gpu, config, {
        impl: strategies,
        tolerance: flags.tolerance,
        chunkBytes: flags['chunk-limit'],
        dumpDir: flags.dump,
        onProgress: (message) => this.progress(message),
      });
      this.log(renderVerify(result));
      if (flags.dump) this.progress(`wrote ${flags.dump}/manifest.json and the .npy files it lists`);
      if (!result.pass) process.exitCode = ExitCode.checkFailed;
      return { ...result, provenance: this.provenance(gpu.adapter, gpu.allocatorPolicy.mode) };
    });
  }
}
