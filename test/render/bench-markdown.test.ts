import { describe, expect, it } from 'vitest';
import { renderBenchMarkdown } from '../../src/render/bench-markdown.js';
import { benchFixture } from '../helpers/bench-fixture.js';

const fixture = benchFixture;

/** Markdown tables: runs of lines starting with "|". */
function tables(md: string): string[][] {
  const out: string[][] = [];
  let current: string[] | null = null;
  for (const line of md.split('\n')) {
    if (line.startsWith('|')) (current ??= []).push(line);
    else if (current) {
      out.push(current);
      current = null;
    }
  }
  if (current) out.push(current);
  return out;
}

/** Cells of a row, with escaped pipes kept inside their cell. */
const cells = (row: string) => row.replace(/\\\|/g, '').split('|').length;

describe('renderBenchMarkdown', () => {
  const md = renderBenchMarkdown(fixture());

  it('starts with provenance: tool version, commit, Dawn, adapter, date and command line', () => {
    expect(md.startsWith('# moeblaze bench results\n')).toBe(true);
    expect(md).toContain('| tool | moeblaze 0.1.0 |');
    expect(md).toContain('`12dfb53c4a1e9f0b7d2a6c3e8f5b1d9a0c7e4f21`');
    expect(md).toContain('| Dawn (webgpu) | 0.6.2 |');
    expect(md).toMatch(/\| adapter \| NVIDIA H200 /);
    expect(md).toContain('| date | 2026-11-29T10:00:00.000Z |');
    expect(md).toContain('| command | `moeblaze bench --experts 64,256,1024');
  });

  it('has one hyperfine-style time table per config group, then a memory table', () => {
    const timeTables = tables(md).filter((t) => t[0].startsWith('| Case | Median [p10, p90] (ms) | Noise |'));
    expect(timeTables).toHaveLength(3);
    expect(md.indexOf('### E=64')).toBeLessThan(md.indexOf('### E=256'));
    expect(md).toContain('### E=1024');
    const memory = tables(md).find((t) => t[0].startsWith('| Case | Status | Step peak |'))!;
    expect(memory).toHaveLength(2 + 9);
    expect(md.indexOf('## Memory')).toBeGreaterThan(md.lastIndexOf('| Case | Median'));
  });

  it('gives median [p10, p90], noise, n and the ratio to the fastest case', () => {
    expect(md).toContain('| `zero-buffer` | 2.91 [2.89, 2.95] | 1.3% | 25 |');
    expect(md).toMatch(/\| `zero-buffer` \|.*\| \*\*1\.00\*\* \|/);
    // It dropped pairs: marked, footnoted, and not the fastest of its config (issue 25).
    expect(md).toMatch(/\| `tutel cf=1\.25†` \| 3\.89 .*\| 1\.34 \|/);
    expect(md).toMatch(/† dropped pairs \(capacity overflow\): tutel cf=1\.25 \(E=\d+ k=\d+\) [\d.]+%.*does not rank/);
    expect(md).toContain('| `tutel cf=1.25` | **oom**: planned step peak 3.30 GiB exceeds --memory-limit 3.20 GiB |');
  });

  it('writes well-formed tables: every row has the header\'s cell count', () => {
    for (const t of tables(md)) for (const row of t) expect(cells(row)).toBe(cells(t[0]));
  });

  it('escapes pipes and newlines in messages', () => {
    const r = fixture();
    r.cases[7].message = 'a | b\nsecond line';
    const out = renderBenchMarkdown(r);
    expect(out).toContain('a \\| b');
    expect(out).not.toContain('second line');
    for (const t of tables(out)) for (const row of t) expect(cells(row)).toBe(cells(t[0]));
  });
});
