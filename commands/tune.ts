import { Flags } from '@oclif/core';
import { BaseCommand } from '../src/cli/base.js';
import { gpuFlags, layerConfigFromFlags, pickLayerFlags } from '../src/cli/flags.js';
import { presetShape } from '../src/cli/preset-shape.js';
import { verboseFlag } from '../src/cli/verbose.js';
import { PRESETS } from '../src/config.js';
import { ExitCode } from '../src/errors.js';
import { checkOutputPath, writeFileAtomic } from '../src/fs.js';
import { parseNonNegativeFloat } from '../src/flag-parsers.js';
import { requireDtype } from '../src/layer.js';
import { DEFAULT_SAMPLING } from '../src/measure/stats.js';
import type { Provenance } from '../src/measure/provenance.js';
import { renderTune } from '../src/render/tune.js';
import { tuneRequest, tuneTiles, type TuneResult } from '../src/tune/run.js';

export default class Tune extends BaseCommand {
  static override summary = "Measure the matrix engine's tile candidates for a preset's GEMM shapes and write the fastest correct ones as a tuning table.";
  static override description =
    "For each GEMM shape class (segment: an expert's rows T·k/E × h × d; reduce: a weight gradient d × h over those rows), times every candidate tile (64×128, 128×128, 128×256 at K 32 and 64; those whose staging does not fit the workgroup memory are skipped) on the subgroup-matrix engine, checks each product against float64 on sampled outputs (a wrong candidate is never chosen), prints the table and writes it (format moeblaze.tuning/v1) to --out, for `bench --tuning`. Needs matrix units, or --gemm subgroup-matrix-emulated (a check on a software adapter, whose times say nothing of a GPU's). docs/design.md#tensor-cores.";
  static override examples = [
    '<%= config.bin %> tune --preset mixtral-8x7b-layer --out tuning/h100.json',
    '<%= config.bin %> tune --preset quick --experts 8 --tokens 64 --gemm subgroup-matrix-emulated --json',
  ];
  static override flags = {
    ...gpuFlags,
    verbose: verboseFlag,
    preset: Flags.string({ options: PRESETS.map((p) => p.name), description: 'the shapes to tune for (`bench --list-presets`); size flags override, and a preset that sweeps a size needs it given' }),
    ...pickLayerFlags(['tokens', 'hidden', 'ffn', 'experts', 'top-k']),
    dtype: Flags.option({ options: ['f16'] as const, description: 'operand storage: the matrix engine multiplies f16 (f32 sums) [default: f16]' })(),
    out: Flags.string({ helpValue: '<file>', description: 'write the table here (atomically: a temporary file, then a rename) [default: not written]' }),
    'max-time': Flags.custom<number>({ parse: async (t, _c, o) => parseNonNegativeFloat(t, o.name), description: 'seconds of sampling per candidate at most [default: 2]', helpGroup: 'STATISTICS' })(),
  };

  async run(): Promise<TuneResult & { written: string | null; provenance: Provenance }> {
    const { flags } = await this.parse(Tune);
    const config = layerConfigFromFlags({ ...flags, dtype: 'f16' }, presetShape(flags.preset, flags, 'tune'));
    tuneRequest(flags.gemm);
    if (flags.out !== undefined) checkOutputPath(flags.out, 'file', 'out');
    return this.withGpu({ ...flags, dtype: 'f16' } as typeof flags, async (gpu) => {
      requireDtype(gpu, 'f16');
      const sampling = { ...DEFAULT_SAMPLING, minSamples: 3, maxTimeMs: (flags['max-time'] ?? 2) * 1000 };
      const result = await tuneTiles(gpu, config, { sampling, onProgress: (line) => this.progress(`timing ${line}`) });
      if (flags.out !== undefined) await writeFileAtomic(flags.out, `${JSON.stringify(result.table, null, 2)}\n`);
      this.log(renderTune(result, flags.out ?? null));
      // A candidate off the float64 reference is a kernel bug (it was not chosen): exit 3, as bench and verify do.
      if (result.candidates.some((c) => c.status === 'wrong')) process.exitCode = ExitCode.checkFailed;
      return { ...result, written: flags.out ?? null, provenance: this.provenance(gpu.adapter, gpu.allocatorPolicy.mode) };
    });
  }
}
