import chalk from 'chalk';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { renderBenchTable } from '../../src/render/bench-table.js';
import { benchFixture } from '../helpers/bench-fixture.js';

const fixture = benchFixture;
const ESC = '\x1b[';

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('renderBenchTable', () => {
  const text = renderBenchTable(fixture(), { color: false, width: 200 });

  for (const width of [80, 100, 120]) {
    it(`fits ${width} columns (heads wrap, then columns are left out and named)`, () => {
      const narrow = renderBenchTable(fixture(), { color: true, width });
      // eslint-disable-next-line no-control-regex
      const widest = Math.max(...narrow.replace(/\x1b\[[0-9;]*m/g, '').split('\n').map((l) => [...l].length));
      expect(widest).toBeLessThanOrEqual(width);
      expect(narrow).toMatch(/zero-buffer/);
      if (width < 120) expect(narrow).toMatch(/left out to fit \d+ columns: tokens\/s/);
    });
  }

  it('has a row for every case, labelled by strategy, with the failed ones and why', () => {
    for (const s of ['zero-buffer', 'tutel cf=1.25', 'megablocks']) expect(text).toContain(s);
    expect(text).toMatch(/tutel cf=1\.25\s*│ oom/);
    expect(text).toMatch(/megablocks\s*│ unsupported/);
    expect(text).toContain('tutel cf=1.25 (E=1024): oom: planned step peak 3.30 GiB exceeds --memory-limit 3.20 GiB');
    expect(text).toContain("megablocks (E=1024): unsupported: 1024 experts > 512 (the bins kernel's limit)");
    expect(text.split('\n').filter((l) => /│\s+(zero-buffer|tutel|megablocks)/.test(l))).toHaveLength(9);
  });

  it('groups rows under what differs between configs and states the rest once', () => {
    expect(text).toContain('config: T=8192 d=512 h=256 k=2 swiglu');
    const order = ['E=64', 'E=256', 'E=1024'].map((g) => text.indexOf(`│ ${g} `));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  it('shows time with noise, throughput against the ceiling, memory and the zero-buffer ratios', () => {
    const row = text.split('\n').find((l) => l.includes('tutel cf=1.25') && l.includes(' ms '))!;
    expect(row).toContain('3.89 ms ±1.0%');
    expect(row).toContain('2.10M');
    expect(row).toContain('10.3 (56%)');
    expect(row).toContain('410 MiB'); // step peak
    expect(row).toContain('186 MiB'); // activation peak
    expect(row).toContain('2.67 GiB'); // 32 × saved + transient
    expect(row).toContain('2.26×'); // activation peak vs zero-buffer
    expect(row).toContain('1.34×'); // zero-buffer speedup
    expect(row).toContain('0.1%'); // dropped
  });

  it('leads with the testbed, ceilings, timing source and notes', () => {
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^testbed: NVIDIA H200 \(nvidia hopper, vulkan/);
    expect(text).toContain('ceilings: GEMM 18.5 TFLOP/s (f32, n=4096), bandwidth 3968 GB/s');
    expect(text).toContain('timing: GPU timestamp queries');
    expect(text).toContain('note: dropless strategies');
  });

  it('says when ceilings were not measured, times are wall clock, or the sweep is incomplete', () => {
    const r = fixture();
    r.ceilings = null;
    r.settings.timing = 'wall';
    r.complete = false;
    const out = renderBenchTable(r, { color: false });
    expect(out).toContain('ceilings: not measured');
    expect(out).toContain('wall clock');
    expect(out).toContain('incomplete: 9 case(s) so far');
  });

  it('uses no colour when asked not to, or under NO_COLOR', () => {
    expect(text).not.toContain(ESC);
    vi.stubEnv('NO_COLOR', '1');
    expect(renderBenchTable(fixture())).not.toContain(ESC);
  });

  it('colours the status of cases that did not run when colour is on', () => {
    // Under a test runner stdout is no TTY, so chalk starts at level 0; colour on means the terminal's level.
    const level = chalk.level;
    chalk.level = 1;
    try {
      const out = renderBenchTable(fixture(), { color: true });
      expect(out).toContain(chalk.red('oom'));
      expect(out).toContain(chalk.yellow('unsupported'));
      expect(out).not.toContain(chalk.green('ok')); // a case that ran shows its time instead
    } finally {
      chalk.level = level;
    }
  });

  it('renders an empty sweep', () => {
    const r = { ...fixture(), cases: [] };
    expect(renderBenchTable(r, { color: false })).toContain('no cases yet');
  });

  it('marks medians noisier than the target and warns once below the table, as hyperfine does', () => {
    const r = fixture();
    r.settings.sampling.noiseTarget = 0.012;
    const out = renderBenchTable(r, { color: false, width: 200 });
    expect(out).toContain('2.91 ms ±1.3%!');
    expect(out).toContain('3.89 ms ±1.0% ');
    expect(out).toMatch(/warning: \d+ of 7 timed case\(s\) missed the 1\.2% noise target \(IQR\/median up to \d\.\d%, /);
    expect(text).not.toMatch(/warning: .*noise target/);
  });

  it('names the device without the dash Dawn leaves at the end of a derived name', () => {
    const r = fixture();
    r.testbed.device = 'llvmpipe-llvm-15-0-6-256-bits-';
    expect(renderBenchTable(r, { color: false, width: 200 })).toMatch(/^testbed: llvmpipe-llvm-15-0-6-256-bits \(/);
  });

  it('shows the planned peaks of a case refused above --memory-limit', () => {
    expect(text).toMatch(/tutel cf=1\.25\s*│ oom\s*│ .*│ 3\.30 GiB \(plan\)\s*│ 391 MiB \(plan\)/);
  });
});

describe('the checks line (issue 18)', () => {
  it('says how many cases got the full and the sampled float64 check, and flags older GPU-only checks', async () => {
    const { checksLine } = await import('../../src/render/bench-format.js');
    const base = { key: 'k', config: {} as never, status: 'ok' as const };
    const results = {
      cases: [
        { ...base, check: { against: 'reference' as const, kind: 'full' as const, sample: null, maxRelError: 1e-7 } },
        { ...base, check: { against: 'reference' as const, kind: 'sampled' as const, sample: { tokens: 64, units: 32 }, maxRelError: 1e-7 } },
        { ...base, check: { against: 'reference' as const, kind: 'sampled' as const, sample: { tokens: 70, units: 32 }, maxRelError: 1e-7 } },
        { ...base, check: { against: 'none' as const, maxRelError: null } },
      ],
    };
    expect(checksLine(results as never)).toBe("1 full float64, 2 sampled float64 (64–70 tokens' rows, every expert's columns), 1 only against another GPU run or a NaN scan (a file from before float64 checks of large shapes)");
    // Issue 29's fields: the near-tie tokens taken from the GPU's routing, and the checks' time.
    results.cases[1].check = { ...results.cases[1].check, forcedTokens: [4, 9], seconds: 21.34 } as never;
    results.cases[0].check = { ...results.cases[0].check, forcedTokens: [], seconds: 0.2 } as never;
    expect(checksLine(results as never)).toMatch(/, 2 near-tie token\(s\) routed in the reference as the GPU routed them \(check\.forcedTokens\), each check took at most 21\.3 s$/);
  });
});
