import Table from 'cli-table3';
import type { ChalkInstance } from 'chalk';
import type { BenchCase, BenchResults } from '../bench/schema.js';
import {
  bytesOrDash,
  ceilingsLine,
  checksLine,
  DASH,
  firstLine,
  formatCount,
  formatMs,
  formatPercent,
  formatRatio,
  formatTflops,
  groupCases,
  memoryVsZeroBuffer,
  samplingLine,
  statusTone,
  strategyLabel,
  testbedLine,
  timingLine,
} from './bench-format.js';
import { reportChalk } from './style.js';

export interface BenchTableOptions {
  /** Defaults to colour when stdout is a TTY and NO_COLOR is unset. */
  color?: boolean;
  /** Width that context lines, notes and failure reasons wrap to; defaults to the terminal's (120 when unknown). */
  width?: number;
}

const HEAD = ['strategy', 'status', 'step (median)', 'tokens/s', 'TFLOP/s (GEMM %)', 'step peak', 'act. peak', 'saved', 'L-layer est.', 'mem ×ZB', 'ZB speedup', 'dropped'];

/** No rule between rows: group headings already separate the configs. */
const COMPACT = { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' };

function statusCell(c: BenchCase, ch: ChalkInstance): string {
  const tone = statusTone(c.status);
  return tone === 'good' ? ch.green(c.status) : tone === 'warn' ? ch.yellow(c.status) : ch.red(c.status);
}

function okRow(c: BenchCase, ch: ChalkInstance): string[] {
  const t = c.time?.step;
  const tp = c.throughput;
  const m = c.memory;
  const tflops = tp ? `${formatTflops(tp.usefulTflops)}${tp.gemmFraction == null ? '' : ` (${formatPercent(tp.gemmFraction, 0)})`}` : DASH;
  return [
    t ? `${formatMs(t.median)} ms ${ch.dim(`±${formatPercent(t.noise)}`)}` : DASH,
    tp ? formatCount(tp.tokensPerS) : DASH,
    tflops,
    bytesOrDash(m?.stepPeak),
    bytesOrDash(m?.activationPeak),
    bytesOrDash(m?.savedForBackward),
    bytesOrDash(m?.modelEstimate),
    formatRatio(memoryVsZeroBuffer(c)),
    formatRatio(c.relative?.zeroBufferSpeedup),
    c.routing ? formatPercent(c.routing.droppedPercent / 100) : DASH,
  ];
}

/** Greedy word wrap; cli-table3's own wrapping needs fixed column widths. */
function wrap(text: string, width: number, indent = ''): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const next = line ? `${line} ${word}` : word;
    if (line && next.length > width) {
      lines.push(line);
      line = indent + word;
    } else {
      line = next;
    }
  }
  if (line) lines.push(line);
  return lines.join('\n');
}

/**
 * The `bench` summary for a terminal: context lines (testbed, ceilings, timing, notes), then one
 * table with a heading row per config and one row per case. Everything needed to judge a figure
 * (noise, its ceiling, the zero-buffer baseline) sits on the same row.
 */
export function renderBenchTable(results: BenchResults, options: BenchTableOptions = {}): string {
  const ch = reportChalk(options.color);
  const width = options.width ?? (process.stdout.columns || 120);
  const out: string[] = [];
  const line = (label: string, text: string) => out.push(wrap(`${ch.bold(label)} ${text}`, width, '  '));
  line('testbed:', testbedLine(results));
  line('ceilings:', ceilingsLine(results));
  line('timing:', `${timingLine(results)}; ${samplingLine(results)}`);
  line('checks:', checksLine(results));
  line('memory:', `L-layer est. = ${results.settings.layers} × saved + backward transient${results.settings.memoryLimit ? `; --memory-limit ${bytesOrDash(results.settings.memoryLimit)}` : ''}`);
  for (const note of results.notes) out.push(ch.yellow(wrap(`note: ${note}`, width, '  ')));
  if (!results.complete) out.push(ch.yellow(`incomplete: ${results.cases.length} case(s) so far; continue with --resume`));

  const groups = groupCases(results.cases);
  if (groups.common) line('config:', groups.common);

  const table = new Table({ head: HEAD.map((h) => ch.bold(h)), style: { head: [], border: [] }, chars: COMPACT });
  // Why a case did not run goes below the table: a spanning cell would break the compact borders.
  const reasons: string[] = [];
  for (const group of groups) {
    if (groups.length > 1) table.push([ch.bold.cyan(group.short), ...HEAD.slice(1).map(() => '')]);
    for (const c of group.cases) {
      if (c.status !== 'ok') reasons.push(`${strategyLabel(c.config)}${groups.length > 1 ? ` (${group.short})` : ''}: ${c.status}: ${firstLine(c.message) || 'no message'}`);
      const rest = c.status === 'ok' ? okRow(c, ch) : HEAD.slice(2).map(() => ch.dim(DASH));
      table.push([`${groups.length > 1 ? '  ' : ''}${strategyLabel(c.config)}`, statusCell(c, ch), ...rest]);
    }
  }
  out.push(results.cases.length ? table.toString() : ch.dim('no cases yet'));
  for (const reason of reasons) out.push(ch.dim(wrap(reason, width, '  ')));
  out.push(ch.dim(wrap('mem ×ZB: activation peak relative to zero-buffer; ZB speedup: this step time / zero-buffer\'s (>1: zero-buffer is faster); ± is IQR/median.', width)));
  return out.join('\n');
}
