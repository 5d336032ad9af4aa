import { Flags } from '@oclif/core';
import { join } from 'node:path';
import { verboseFlag } from '../src/cli/verbose.js';
import { BaseCommand } from '../src/cli/base.js';
import { gpuFlags, layerConfigFromFlags, layerFlags } from '../src/cli/flags.js';
import { PRESETS } from '../src/config.js';
import { presetShape } from '../src/cli/preset-shape.js';
import { EnvironmentError } from '../src/errors.js';
import { requireDtype } from '../src/layer.js';
import { checkOutputFiles, checkOutputPath, writeFileAtomic } from '../src/fs.js';
import { requireRunnable } from '../src/layer-limits.js';
import { chromeTrace, profileStrategies, type ProfileResult } from '../src/measure/profile.js';
import type { Provenance } from '../src/measure/provenance.js';
import { renderProfile } from '../src/render/profile.js';
import { renderProfileHtml } from '../src/render/profile-html.js';
import { strategyIds, STRATEGIES } from '../src/registry.js';
import { tuningAdapterWarning, tuningFlag, tuningProvenance } from '../src/cli/tuning-flag.js';

export default class Profile extends BaseCommand {
  static override summary = 'Per-kernel GPU time and the memory timeline of one training step.';
  static override description =
    'For one config and one or more strategies: each kernel\'s GPU time (calls, ms, share), the step\'s phases, the live-memory timeline as a sparkline, and what made up the peak, by tag and by buffer. Per-kernel times come from a step that runs each kernel in its own compute pass, which adds overhead; the step time shown is measured separately without that split. --trace writes a Chrome/Perfetto trace (ui.perfetto.dev) with a kernel track and a memory counter track; --out DIR writes index.html with the same in charts. Definitions: docs/design.md#per-kernel-profile and #driver-cross-check.';
  static override examples = ['<%= config.bin %> profile', '<%= config.bin %> profile --impl zero-buffer --impl megablocks --trace step.json', '<%= config.bin %> profile --preset moeblaze-conf4 --impl zero-buffer --driver-check'];
  static override flags = {
    ...gpuFlags,
    tuning: tuningFlag,
    verbose: verboseFlag,
    ...layerFlags,
    impl: Flags.string({ multiple: true, options: strategyIds(), description: 'strategy to profile (repeatable) [default: every strategy]' }),
    preset: Flags.string({ options: PRESETS.map((p) => p.name), description: 'take the shape from a preset (`bench --list-presets`); size flags override, and a preset that sweeps a size needs it given' }),
    trace: Flags.string({ helpValue: '<file>', description: 'write a Chrome/Perfetto trace JSON to this file' }),
    out: Flags.string({ description: 'write index.html into this folder: live memory by tag over the step (peak marked) and a bar chart of kernel times, per strategy', helpValue: '<dir>' }),
    'driver-check': Flags.boolean({
      description:
        'on NVIDIA, pause a real step on the host at the allocator\'s peak (its own buffers alive) and compare the driver\'s used-memory change since the step\'s start (nvidia-smi) with the allocator\'s; then the same for buffers of the table\'s peak sizes held after the step; reports the differences (5% tolerance) and never fails the command; skipped, with the reason, elsewhere',
    }),
  };

  async run(): Promise<ProfileResult & { provenance: Provenance }> {
    const { flags } = await this.parse(Profile);
    const config = layerConfigFromFlags(flags, presetShape(flags.preset, flags, 'profile'));
    const strategies = STRATEGIES.map((s) => s.id).filter((id) => (flags.impl ?? strategyIds()).includes(id));
    requireRunnable(strategies, config);
    if (flags.trace !== undefined) checkOutputPath(flags.trace, 'file', 'trace');
    if (flags.out !== undefined) checkOutputFiles(flags.out, ['index.html'], 'out');
    return this.withGpu(flags, async (gpu) => {
      requireDtype(gpu, config.dtype);
      const mismatch = tuningAdapterWarning(flags.tuning, gpu);
      if (mismatch) this.progress(mismatch);
      if (!gpu.hasTimestamps) throw new EnvironmentError(`profile needs the timestamp-query feature for per-kernel times; ${gpu.adapter.description} lacks it (bench falls back to wall-clock times)`);
      const result = await profileStrategies(gpu, config, strategies, (m) => this.progress(m), { driverCheck: flags['driver-check'] });
      this.log(renderProfile(result));
      if (flags.trace) {
        await writeFileAtomic(flags.trace, JSON.stringify(chromeTrace(result)));
        this.progress(`wrote ${flags.trace}: open it in ui.perfetto.dev or chrome://tracing`);
      }
      // Provenance (commit, adapter, Dawn) makes a committed --driver-check output say where it ran.
      const provenance = { ...this.provenance(gpu.adapter, gpu.allocatorPolicy.mode), ...tuningProvenance(flags.tuning) };
      if (flags.out) {
        await writeFileAtomic(join(flags.out, 'index.html'), renderProfileHtml(result, provenance));
        this.progress(`wrote ${join(flags.out, 'index.html')}`);
      }
      return { ...result, provenance };
    });
  }
}
