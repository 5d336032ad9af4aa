import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
// Spelled in two parts so that this file does not match its own search.
const OLD_REFERENCE = ['DESIGN', 'md'].join('.');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function anchors(markdown: string): Set<string> {
  const slugs = [...markdown.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
    m[1]
      .toLowerCase()
      .replace(/[^\p{L}\p{N} -]/gu, '')
      .replace(/ /g, '-'),
  );
  return new Set(slugs);
}

describe('docs/design.md', () => {
  const tracked = execFileSync('git', ['ls-files', 'src', 'kernels', 'baselines', 'commands', 'bin', 'test', 'README.md', '.ci'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean);

  it(`is what code, tests and help point to: no ${OLD_REFERENCE} outside docs/`, () => {
    const offenders = tracked.filter((f) => readFileSync(join(root, f), 'utf8').includes(OLD_REFERENCE));
    expect(offenders).toEqual([]);
  });

  it('has every section that code, help and the README link to', () => {
    const known = anchors(readFileSync(join(root, 'docs/design.md'), 'utf8'));
    const links = new Set(tracked.flatMap((f) => [...readFileSync(join(root, f), 'utf8').matchAll(/docs\/design\.md#([a-z0-9-]+)/g)].map((m) => m[1])));
    expect(links.size).toBeGreaterThan(10);
    expect([...links].filter((a) => !known.has(a))).toEqual([]);
  });
});

/** The moeblaze command lines of a docs/ci example, with the shell's variables filled in as a job would. */
function commandLines(file: string): string[][] {
  const text = readFileSync(join(root, 'docs/ci', file), 'utf8');
  return [...text.matchAll(/npx moeblaze ([^'\n]+)/g)].map((m) =>
    m[1]
      .trim()
      .replace(/\$SWEEP|"\$\{SWEEP\[@\]\}"/g, '--preset moeblaze-paper')
      .replace(/\$\{\{ matrix\.shard \}\}\/\$SHARDS/g, '1/4')
      .replace(/"\$i\/\$n"/g, '1/8')
      .replace(/\$\{\{ matrix\.shard \}\}/g, '1')
      .replace(/"\$out"/g, 'sweep/shard-1')
      .split(/\s+/),
  );
}

describe('docs/ci examples (issue 32)', () => {
  const cli = (args: string[], cwd: string) =>
    new Promise<{ code: number; stderr: string }>((done) =>
      execFile(process.execPath, [join(root, 'bin/run.js'), ...args], { cwd, timeout: 60_000 }, (error, _out, stderr) => done({ code: error ? Number(error.code) : 0, stderr })),
    );

  it('use only the CLI, with flags it takes: each bench line gets as far as opening the GPU, each merge and gate line as far as reading its files', async () => {
    const files = readdirSync(join(root, 'docs/ci'));
    expect(files.sort()).toEqual(['github-actions-shards.yml', 'slurm-shards.sh']);
    const cwd = mkdtempSync(join(tmpdir(), 'moeblaze-ci-docs-'));
    for (const file of files) {
      const lines = commandLines(file);
      expect(lines.map((l) => l[0]).sort(), file).toEqual(file.endsWith('.yml') ? ['bench', 'gate', 'merge'] : ['bench', 'bench', 'merge']);
      for (const args of lines) {
        if (args.includes('--resume')) continue; // the folder of an earlier attempt: resume.test.ts covers it
        const shown = `${file}: moeblaze ${args.join(' ')}`;
        const r = await cli(args[0] === 'bench' ? [...args, '--adapter', 'no-such-adapter-here'] : args, cwd);
        if (args[0] === 'bench') expect(r.stderr, shown).toMatch(/--adapter: no adapter matches/);
        else expect(r.stderr, shown).toMatch(/cannot read "[^"]+"/);
        expect(r.code, shown).toBe(args[0] === 'bench' ? 4 : 2);
      }
    }
    expect(readdirSync(cwd), 'nothing left behind').toEqual([]);
  }, 120_000);
});
