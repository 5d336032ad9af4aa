import { Flags } from '@oclif/core';
import { BaseCommand } from '../src/cli/base.js';
import { checkOutputPath } from '../src/fs.js';
import { loadResultsFile } from '../src/gate/baseline.js';
import type { GateReport } from '../src/gate/compare.js';
import type { Provenance } from '../src/measure/provenance.js';
import { BASELINE_DESCRIPTION, gateFlags, gateOptionsFromFlags } from '../src/cli/gate-flags.js';
import { gateAgainstBaseline, loadBaselineForRun } from '../src/gate/run.js';
import { verboseFlag } from '../src/cli/verbose.js';
import { renderGate } from '../src/render/gate.js';

export default class Gate extends BaseCommand {
  static override summary = 'Compare a benchmark run with a committed baseline: exit 3 on a memory or speed regression.';
  static override description =
    'Matches the cases of two moeblaze.bench results files (v2, or v1) by strategy and every config field (cases on one side only are listed, not failed). Memory is deterministic: a step or activation peak that grows beyond --memory-tolerance (default 0 bytes) is MEM+, a regression. Speed first through same-run ratios, which cancel machine drift (each case over zero-buffer of the same config, each case\'s fraction of the run\'s GEMM ceiling), then absolute median step times, only when the testbed fingerprint (adapter, backend, driver, Dawn version) is the same; otherwise they are INCOMPARABLE (a warning; a failure with --strict). A case is SLOWER only when its median is worse by more than --threshold and the runs separate: current p10 above baseline p90, or a seeded 95% bootstrap interval of the ratio entirely above 1 + threshold; a change without separation is AMBG, never a failure. Exit codes: 0 pass, 3 regression, 2 usage error, 1 crash, also under --json. The GEMM fraction carries the ceiling\'s own spread and is shown but not gated when the two runs\' ceilings differ by more than --threshold. The table lists the failing rows and a summary; --verbose lists every row. Details: docs/design.md#gate-verdicts.';
  static override examples = [
    '<%= config.bin %> gate --baseline reports/baselines/lavapipe-quick.json --current moeblaze-results/ci/results.json',
    '<%= config.bin %> gate --baseline base.json --current results.json --threshold 5% --memory-tolerance 4KiB --strict',
    '<%= config.bin %> gate --baseline base.json --current results.json --advisory-speed --json',
    '<%= config.bin %> gate --baseline base.json --current results.json --update-baseline',
  ];
  static override flags = {
    baseline: Flags.string({ description: BASELINE_DESCRIPTION, required: true, helpValue: '<file>' }),
    current: Flags.string({ description: 'moeblaze.bench results file (v2, or v1) of the run to check (results.json from `moeblaze bench`)', required: true, helpValue: '<file>' }),
    ...gateFlags,
    verbose: verboseFlag,
  };

  async run(): Promise<(GateReport | { baselineCreated: string }) & { provenance: Provenance }> {
    const { flags } = await this.parse(Gate);
    if (flags['update-baseline']) checkOutputPath(flags.baseline, 'file', 'baseline');
    const current = await loadResultsFile(flags.current, 'current');
    const baseline = await loadBaselineForRun(flags.baseline, flags['update-baseline']);
    const { report, baselineMessage, refused } = await gateAgainstBaseline(baseline, current, {
      baselinePath: flags.baseline,
      options: gateOptionsFromFlags(flags),
      retries: 0,
      update: flags['update-baseline'],
      force: flags.force,
    });
    if (report === null) {
      // Nothing to compare with yet: the first baseline is written (or refused), and said so.
      this.progress(baselineMessage!);
      if (refused) process.exitCode = 3;
      return { baselineCreated: baselineMessage!, provenance: this.provenance() };
    }
    this.log(renderGate(report, { verbose: flags.verbose }));
    process.exitCode = refused ? 3 : report.exitCode;
    if (baselineMessage) this.progress(refused ? baselineMessage : `${baselineMessage} (the verdict above, exit ${report.exitCode}, was against the old one)`);
    return { ...report, provenance: this.provenance() };
  }
}
