import { Args, Flags } from '@oclif/core';
import { join } from 'node:path';
import { mergeResultsFolders } from '../src/bench/merge-folders.js';
import { writeBenchReports } from '../src/render/bench-files.js';
import type { BenchResults } from '../src/bench/schema.js';
import { benchExitCode } from '../src/bench/verdict.js';
import { BaseCommand } from '../src/cli/base.js';
import { verboseFlag } from '../src/cli/verbose.js';
import { UsageError } from '../src/errors.js';
import { renderBenchTable } from '../src/render/bench-table.js';

export default class Merge extends BaseCommand {
  static override summary = 'Join the folders of `bench --shard i/n` runs into the results of the whole sweep.';
  static override description =
    'Reads results.json from each shard folder, checks that they are shards of one sweep (same sweep, run settings, schema and moeblaze version), that no two hold the same shard or case, and that together they hold every case of the sweep (--allow-partial merges what there is and lists the missing cases), then writes results.json, results.md, report.html and benchmark-action.json into --out as one bench run would. Each case keeps its shard and the testbed it ran on: reports mark rows of a sweep that ran on several adapters, and `gate` compares absolute times only on the same testbed. A refusal is one line and exit 2, with nothing written; a case that disagreed with float64 exits 3, as in bench. README "Sweeps on many machines"; docs/design.md#shards.';
  static override examples = [
    '<%= config.bin %> merge sweep/1 sweep/2 sweep/3 --out sweep/all',
    '<%= config.bin %> merge shards/* --out merged --allow-partial --json',
  ];
  static override strict = false;
  static override args = {
    dirs: Args.string({ description: 'the --out folders of the shards (bench --shard i/n), one each', required: false }),
  };
  static override flags = {
    out: Flags.string({ description: 'folder for the merged results.json, results.md, report.html and benchmark-action.json (must not hold results yet)', required: true, helpValue: '<dir>' }),
    'allow-partial': Flags.boolean({ description: 'merge even when cases of the sweep are missing (shards not given or unfinished); they are listed, and results.json says complete: false' }),
    verbose: verboseFlag,
  };

  async run(): Promise<BenchResults> {
    const { flags, argv } = await this.parse(Merge);
    const dirs = argv as string[];
    const stray = dirs.find((d) => d.startsWith('-'));
    if (stray !== undefined) throw new UsageError(`merge: unknown flag ${stray}; see \`${this.config.bin} merge --help\``);
    if (dirs.length === 0) throw new UsageError('merge: no shard folder given; name the --out folder of every `bench --shard i/n` run, e.g. merge sweep/1 sweep/2 --out sweep/all');
    const { results, missing } = await mergeResultsFolders({ dirs, out: flags.out, allowPartial: flags['allow-partial'], provenance: this.provenance(), writeReports: writeBenchReports });
    this.log(renderBenchTable(results));
    if (missing.length) this.progress(`partial: ${missing.length} case(s) of the sweep are missing:\n  ${missing.join('\n  ')}`);
    this.progress(`merged ${results.shards!.length} shard(s), ${results.cases.length} case(s): wrote ${join(flags.out, 'results.json')}, results.md, report.html, benchmark-action.json`);
    process.exitCode = benchExitCode(results.cases, null);
    return results;
  }
}
