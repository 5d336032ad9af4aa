import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import type { BenchResults } from '../../src/bench/schema.js';
import { validateBenchResults } from '../../src/bench/validate.js';

/*
 * Issue 32 on lavapipe: the README's "Sweeps on many machines" block as written (a sweep in three
 * shards, merged, gated against the committed baseline), the same sweep unsharded, and what merge
 * refuses. The sweep is the README's: 4 small cases, so the GPU work stays at seconds.
 */

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');
const cli = (args: string[], cwd: string) => runCli(args, { cwd });

/** The README section's first shell block, which must run as written. */
function readmeBlock(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Sweeps on many machines'));
  return /```sh\n([\s\S]*?)```/.exec(section)![1];
}

const read = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as BenchResults;

describe('bench --shard and moeblaze merge on lavapipe', () => {
  it('the README block runs as written; the merge equals the unsharded sweep case for case, byte for byte; merge refuses what does not fit', async () => {
    const work = mkdtempSync(join(tmpdir(), 'moeblaze-shards-'));
    // The block runs from the repository: give it the committed baseline at the same path, and npx's moeblaze.
    mkdirSync(join(work, 'reports/baselines'), { recursive: true });
    cpSync(join(root, 'reports/baselines/lavapipe-quick.json'), join(work, 'reports/baselines/lavapipe-quick.json'));
    mkdirSync(join(work, 'bin'));
    symlinkSync(join(root, 'bin/run.js'), join(work, 'bin/moeblaze'));
    const block = readmeBlock();
    expect(block).toMatch(/--shard \$i\/3/);
    const script = `set -e\nnpx() { "$@"; }\nexport PATH="${join(work, 'bin')}:$PATH"\n${block}`;
    const readmeRun = run('bash', ['-c', script], { cwd: work, timeout: 300_000 }).then(
      (r) => ({ code: 0, stderr: r.stderr, stdout: r.stdout }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stderr: e.stderr, stdout: e.stdout }),
    );
    // Meanwhile, the same sweep without --shard.
    const sweep = /npx moeblaze bench (.*) --shard/.exec(block)![1].split(' ');
    const whole = await cli(['bench', ...sweep, '--out', 'whole'], work);
    const shards = await readmeRun;
    expect(whole.code, whole.stderr).toBe(0);
    expect(shards.code, shards.stderr).toBe(0);
    expect(shards.stdout).toMatch(/PASS: no regression; 4 case\(s\) compared/);

    const merged = read(join(work, 'sweep/all/results.json'));
    const unsharded = read(join(work, 'whole/results.json'));
    expect(validateBenchResults(merged)).toEqual([]);
    expect(merged.complete).toBe(true);
    expect(merged.cases.map((c) => c.key)).toEqual(unsharded.cases.map((c) => c.key));
    for (const [i, c] of merged.cases.entries()) {
      expect(c.status, c.key).toBe('ok');
      expect(c.memory, c.key).toEqual(unsharded.cases[i].memory);
      expect(c.routing, c.key).toEqual(unsharded.cases[i].routing);
      expect(c.testbed!.fingerprint).toBe(unsharded.testbed.fingerprint);
    }
    const slices = [1, 2, 3].map((i) => read(join(work, `sweep/${i}/results.json`)).settings.shard!);
    expect(slices.map((s) => `${s.index}/${s.count}`)).toEqual(['1/3', '2/3', '3/3']);
    expect(slices.flatMap((s) => s.keys).sort()).toEqual(unsharded.cases.map((c) => c.key).sort());
    for (const s of slices) expect(s.sweepKeys).toEqual(unsharded.cases.map((c) => c.key));
    for (const file of ['results.md', 'report.html', 'benchmark-action.json']) expect(existsSync(join(work, 'sweep/all', file)), file).toBe(true);
    // gate takes the merged file, on either side.
    const gate = await cli(['gate', '--baseline', 'sweep/all/results.json', '--current', 'whole/results.json', '--advisory-speed'], work);
    expect(gate.code, gate.stderr).toBe(0);

    // Refusals: one line, exit 2, nothing written.
    const refused = async (args: string[], pattern: RegExp) => {
      const r = await cli(['merge', ...args, '--out', 'refused'], work);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(pattern);
      expect(existsSync(join(work, 'refused'))).toBe(false);
    };
    cpSync(join(work, 'sweep/2'), join(work, 'copy-of-2'), { recursive: true });
    await refused(['sweep/1', 'sweep/2', 'copy-of-2', 'sweep/3'], /are both shard 2\/3/);
    await refused(['sweep/1', 'sweep/3'], /of the sweep's 4 case\(s\) are missing \(shard\(s\) 2\/3 not given\)/);
    await refused(['sweep/1', 'whole'], /"whole" holds a whole sweep/);
    await refused(['sweep/1', 'no-such-folder'], /^moeblaze: merge: cannot read "no-such-folder\/results\.json"/);
    // An interrupted shard: merge names it, --resume finishes it keeping what it had, then merge takes it.
    const two = read(join(work, 'sweep/2/results.json'));
    const kept = two.cases.slice(0, -1);
    writeFileSync(join(work, 'copy-of-2/results.json'), JSON.stringify({ ...two, cases: kept, complete: false }));
    await refused(['sweep/1', 'copy-of-2', 'sweep/3'], /"copy-of-2" \(shard 2\/3\) unfinished with \d case\(s\) left: continue it with bench --resume/);
    const partial = await cli(['merge', 'sweep/1', 'copy-of-2', 'sweep/3', '--out', 'partial', '--allow-partial', '--json'], work);
    expect(partial.code, partial.stderr).toBe(0);
    expect((JSON.parse(partial.stdout) as BenchResults).complete).toBe(false);
    expect(partial.stderr).toMatch(/partial: \d case\(s\) of the sweep are missing:/);
    const resumed = await cli(['bench', '--resume', 'copy-of-2'], work);
    expect(resumed.code, resumed.stderr).toBe(0);
    const finished = read(join(work, 'copy-of-2/results.json'));
    expect(finished.complete).toBe(true);
    expect(finished.cases.map((c) => c.key)).toEqual(two.cases.map((c) => c.key));
    expect(finished.cases.slice(0, kept.length)).toEqual(kept);
    const again = await cli(['merge', 'sweep/1', 'copy-of-2', 'sweep/3', '--out', 'again'], work);
    expect(again.code, again.stderr).toBe(0);
    expect(readdirSync(join(work, 'again')).sort()).toEqual(['benchmark-action.json', 'report.html', 'results.json', 'results.md']);
  }, 300_000);
});
