import { formatBytes } from '../../src/units.js';
import { describe, expect, it } from 'vitest';
import { dropFootnote, formatVsReference, markedLabel } from '../../src/render/bench-format.js';
import { renderBenchHtml } from '../../src/render/bench-html.js';
import { renderBenchMarkdown } from '../../src/render/bench-markdown.js';
import { peakBreakdown } from '../../src/render/bench-memory.js';
import { renderBenchTable } from '../../src/render/bench-table.js';
import { terminalWidth, visibleWidth } from '../../src/render/fit-table.js';
import { oneSidedLine } from '../../src/render/gate.js';
import { dropsLine, renderTrainHtml, renderTrainSummary } from '../../src/render/train.js';
import { trainDrops, type StrategyTraining, type TrainResult } from '../../src/train/run.js';
import { trainConfig } from '../../src/train/model.js';
import { benchFixture } from '../helpers/bench-fixture.js';

/** Issue 25 §3: what a reader sees, item by item. */

describe('drops next to a time (§3.1)', () => {
  it('a case that dropped pairs is marked and footnoted at every width, also when the column is left out', () => {
    const r = benchFixture();
    const tutel = r.cases.find((c) => (c.routing?.droppedPairs ?? 0) > 0)!;
    expect(markedLabel(tutel)).toBe(`tutel cf=${tutel.config.capacityFactor}†`);
    for (const width of [60, 80, 100, 200]) {
      const text = renderBenchTable(r, { color: false, width }).replace(/\s+/g, ' ');
      expect(text).toContain(`tutel cf=${tutel.config.capacityFactor}†`);
      expect(text).toMatch(/† dropped pairs \(capacity overflow\): tutel cf=[\d.]+ \(E=\d+ k=\d+\) [\d.]+%/);
    }
    expect(renderBenchTable(r, { color: false, width: 80 })).toMatch(/left out to fit 80 columns: .*dropped/);
    expect(dropFootnote(r.cases.filter((c) => !c.routing?.droppedPairs), false)).toBeNull();
    expect(renderBenchHtml(r)).toMatch(/tutel cf=[\d.]+†/);
  });

  it('piped output honours COLUMNS', () => {
    expect(terminalWidth({ isTTY: false }, { COLUMNS: '72' })).toBe(72);
    expect(terminalWidth({ isTTY: false }, {})).toBe(100);
    expect(terminalWidth({ isTTY: true, columns: 150 }, { COLUMNS: '72' })).toBe(150);
  });
});

describe('the vs zero-buffer column (§3.2)', () => {
  it('says slower or faster with the factor that reads that way', () => {
    expect(formatVsReference(1.32)).toBe('1.32× slower');
    expect(formatVsReference(0.8)).toBe('1.25× faster');
    expect(formatVsReference(1.001)).toBe('same');
    expect(formatVsReference(null)).toBe('—');
    const text = renderBenchTable(benchFixture(), { color: false, width: 200 });
    expect(text).toMatch(/vs zero-buffer/);
    expect(text).toMatch(/1\.34× slower/);
    expect(text).not.toMatch(/ZB speedup/);
    expect(renderBenchHtml(benchFixture())).toMatch(/<th>vs zero-buffer<\/th>/);
  });
});

describe('memory by tensor in the reports (§3.6)', () => {
  it('results.md and report.html break each case peak down by tag and by its largest tensors', () => {
    const r = benchFixture();
    const c = r.cases.find((x) => x.memory && Object.keys(x.memory.peakByName).length > 5)!;
    const b = peakBreakdown(c)!;
    expect(b.largest).toHaveLength(5);
    expect(b.largest[0][1]).toBeGreaterThanOrEqual(b.largest[4][1]);
    expect(b.byTag.reduce((s, [, v]) => s + v, 0)).toBe(Object.values(c.memory!.peakByTag).reduce((s, v) => s + (v ?? 0), 0));
    const md = renderBenchMarkdown(r);
    expect(md).toMatch(/### Memory at the peak/);
    expect(md).toContain(`| \`${b.label}\` |`);
    expect(md).toContain(b.largest[0][0]);
    // Every case's row lists its own largest tensors (the first case once listed none: map's index became the count).
    for (const x of r.cases.filter((y) => y.memory)) {
      const own = peakBreakdown(x)!;
      const row = md.split('\n').find((l) => l.startsWith(`| \`${own.label}\` | ${formatBytes(own.stepPeak)}`))!;
      for (const [name, bytes] of own.largest) expect(row).toContain(`${name} ${formatBytes(bytes)}`);
    }
    const html = renderBenchHtml(r);
    expect(html).toMatch(/<h2>Memory at the peak<\/h2>/);
    expect(html).toContain(b.largest[0][0]);
  });
});

describe('train reports drops (§3.4)', () => {
  const steps = (dropped: number) => Array.from({ length: 4 }, (_, step) => ({ step, loss: 1 / (step + 1), mse: 1 / (step + 1), aux: 0, ms: 1, peakBytes: 1024, stepPeakBytes: 1024, tablePeakBytes: 1024, pairs: 100, droppedPairs: step % 2 ? dropped : 0 }));
  const run = (strategy: string, dropped: number): StrategyTraining => {
    const s = steps(dropped);
    return { strategy, steps: s, firstLoss: 1, finalLoss: 0.25, reduction: 4, tokensPerSecond: 1000, peakBytes: 1024, peakByTag: {}, expertLoads: [1, 1], expertLoadsByLayer: [[1, 1]], wallSeconds: 1, drops: trainDrops(s) };
  };
  const result: TrainResult = { config: trainConfig({ steps: 4 }), lossScale: 1, runs: [run('zero-buffer', 0), run('tutel', 9)] };

  it('counts pairs dropped per strategy and shows them in the terminal, train.json and train.html', () => {
    expect(result.runs[1].drops).toEqual({ pairs: 400, dropped: 18, percent: 4.5, steps: 2 });
    expect(dropsLine(result.runs[1])).toBe('pairs dropped: 18 of 400 (4.50%), in 2 step(s)');
    expect(dropsLine(result.runs[0])).toBe('pairs dropped: none of 400');
    expect(renderTrainSummary(result)).toMatch(/tutel: .*\n.*\n\s+pairs dropped: 18 of 400/);
    expect(JSON.parse(JSON.stringify(result)).runs[1].drops.dropped).toBe(18);
    expect(renderTrainHtml(result)).toMatch(/<th>pairs dropped<\/th>/);
    expect(renderTrainHtml(result)).toContain('<td>18 (4.50%)</td>');
  });
});

describe('lines fit (§3.5)', () => {
  it('one-sided keys are summarised without --verbose', () => {
    const keys = Array.from({ length: 12 }, (_, i) => `megablocks|T${i}|d64|h128|E16|k2|swiglu|cf-|activations|f32|zipf:3|norm1|aux0|seed1|train`);
    const line = oneSidedLine('only in the baseline', keys, false);
    expect(line).toMatch(/^12 case\(s\) only in the baseline \(listed, not failed\): .* and 9 more; --verbose lists them$/);
    expect(line.length).toBeLessThan(400);
    expect(oneSidedLine('only in the baseline', keys, true)).toContain('T11');
    expect(visibleWidth(renderBenchTable(benchFixture(), { color: false, width: 100 }))).toBeLessThanOrEqual(100);
  });
});

describe('train prose wraps at the terminal width (§3.5)', () => {
  it('no line of the train summary is wider than COLUMNS when piped', () => {
    const long: TrainResult = { config: trainConfig({ steps: 4 }), lossScale: 1, runs: [{ ...{ strategy: 'tutel', steps: [], firstLoss: 2, finalLoss: 1, reduction: 2, tokensPerSecond: 1, peakBytes: 1, expertLoads: [1, 2], expertLoadsByLayer: [[1, 2]], wallSeconds: 1 }, peakByTag: { weights: 1, gradients: 2, optimizer: 3, input: 4, 'activations-saved': 5, 'routing-metadata': 6, workspace: 7, output: 8 } }] };
    const before = process.env.COLUMNS;
    process.env.COLUMNS = '60';
    try {
      const text = renderTrainSummary(long);
      expect(Math.max(...text.split('\n').map((l) => visibleWidth(l)))).toBeLessThanOrEqual(60);
      expect(text.replace(/\s+/g, ' ')).toMatch(/peak 1 B \(weights 1 B, gradients 2 B, optimizer 3 B/);
    } finally {
      if (before === undefined) delete process.env.COLUMNS;
      else process.env.COLUMNS = before;
    }
  });
});
