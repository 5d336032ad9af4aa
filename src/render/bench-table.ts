import type { ChalkInstance } from 'chalk';
import type { BenchCase, BenchResults } from '../bench/schema.js';
import { formatBytes } from '../units.js';
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
  formatVsReference,
  dropFootnote,
  markedLabel,
  groupCases,
  memoryVsReference,
  missedNoiseTarget,
  noiseWarning,
  samplingLine,
  statusTone,
  strategyLabel,
  testbedLine,
  testbedTag,
  timingLine,
} from './bench-format.js';
import { fitTable, terminalWidth, wrapText as wrap, type FitColumn } from './fit-table.js';
import { allocatorLine, busyIdleCell, idleNotes, reservedCell } from './bench-gpu-time.js';
import { reportChalk } from './style.js';

export interface BenchTableOptions {
  /** Defaults to colour when stdout is a TTY and NO_COLOR is unset. */
  color?: boolean;
  /** Width that context lines, notes and failure reasons wrap to; defaults to the terminal's (120 when unknown). */
  width?: number;
}

/**
 * Heads wrap at their spaces on a narrow terminal; tokens/s, the L-layer estimate,
 * the drop rate, saved and step peak go, in that order (the activation peak stays: it is the point).
 * No status column: a case that did not run shows its status where its step time would be.
 */
const COLUMNS: FitColumn[] = [
  { head: 'strategy' },
  { head: 'step (median)', wrap: true, minWidth: 7 },
  { head: 'GPU busy (idle)', dropOrder: 7, wrap: true, minWidth: 10 },
  { head: 'tokens/s', dropOrder: 1 },
  { head: 'TFLOP/s (GEMM %)' },
  { head: 'step peak', dropOrder: 5, wrap: true, minWidth: 8 },
  { head: 'act. peak', wrap: true, minWidth: 8 },
  { head: 'reserved', dropOrder: 6, wrap: true, minWidth: 8 },
  { head: 'saved', dropOrder: 4 },
  { head: 'L-layer est.', dropOrder: 2 },
  { head: 'mem ×ZB' },
  { head: 'vs zero-buffer', wrap: true, minWidth: 6 },
  { head: 'dropped', dropOrder: 3 },
];
const HEAD = COLUMNS.map((c) => c.head);

function statusCell(c: BenchCase, ch: ChalkInstance): string {
  const tone = statusTone(c.status);
  return tone === 'good' ? ch.green(c.status) : tone === 'warn' ? ch.yellow(c.status) : ch.red(c.status);
}

/** A case that did not run: its status where the time would be; the planned peaks when they are known. */
function notRunRow(c: BenchCase, ch: ChalkInstance): string[] {
  const cells = HEAD.slice(2).map(() => ch.dim(DASH));
  if (c.planned) {
    cells[HEAD.indexOf('step peak') - 2] = ch.dim(`${formatBytes(c.planned.stepPeak)} (plan)`);
    cells[HEAD.indexOf('act. peak') - 2] = ch.dim(`${formatBytes(c.planned.activationPeak)} (plan)`);
  }
  return [statusCell(c, ch), ...cells];
}

function okRow(c: BenchCase, ch: ChalkInstance, noisy: boolean): string[] {
  const t = c.time?.step;
  const tp = c.throughput;
  const m = c.memory;
  const tflops = tp ? `${formatTflops(tp.usefulTflops)}${tp.gemmFraction == null ? '' : ` (${formatPercent(tp.gemmFraction, 0)})`}` : DASH;
  return [
    t ? `${formatMs(t.median)} ms ${noisy ? ch.yellow(`±${formatPercent(t.noise)}!`) : ch.dim(`±${formatPercent(t.noise)}`)}` : DASH,
    busyIdleCell(c, (idle) => ch.yellow(`${idle}!`)),
    tp ? formatCount(tp.tokensPerS) : DASH,
    tflops,
    bytesOrDash(m?.stepPeak),
    bytesOrDash(m?.activationPeak),
    reservedCell(c),
    bytesOrDash(m?.savedForBackward),
    bytesOrDash(m?.modelEstimate),
    formatRatio(memoryVsReference(c)),
    formatVsReference(c.relative?.stepTimeVsReference),
    c.routing ? formatPercent(c.routing.droppedPercent / 100) : DASH,
  ];
}

/**
 * The `bench` summary for a terminal: context lines (testbed, ceilings, timing, notes), then one
 * table with a heading row per config and one row per case. Everything needed to judge a figure
 * (noise, its ceiling, the zero-buffer baseline) sits on the same row.
 */
export function renderBenchTable(results: BenchResults, options: BenchTableOptions = {}): string {
  const ch = reportChalk(options.color);
  const width = options.width ?? terminalWidth();
  const out: string[] = [];
  const line = (label: string, text: string) => out.push(wrap(`${ch.bold(label)} ${text}`, width, '  '));
  line('testbed:', testbedLine(results));
  line('ceilings:', ceilingsLine(results));
  line('timing:', `${timingLine(results)}; ${samplingLine(results)}`);
  line('checks:', checksLine(results));
  line('memory:', `L-layer est. = ${results.settings.layers} × saved + backward transient${results.settings.memoryLimit ? `; --memory-limit ${bytesOrDash(results.settings.memoryLimit)}` : ''}`);
  line('allocator:', allocatorLine(results));
  for (const note of results.notes) out.push(ch.yellow(wrap(`note: ${note}`, width, '  ')));
  if (!results.complete) out.push(ch.yellow(results.shards ? `partial: merged without every case of the sweep (see the note)` : `incomplete: ${results.cases.length} case(s) so far; continue with --resume`));

  const groups = groupCases(results.cases);
  if (groups.common) line('config:', groups.common);

  const rows: string[][] = [];
  // Why a case did not run goes below the table: a spanning cell would break the compact borders.
  const reasons: string[] = [];
  for (const group of groups) {
    if (groups.length > 1) rows.push([ch.bold.cyan(group.short), ...HEAD.slice(1).map(() => '')]);
    for (const c of group.cases) {
      if (c.status !== 'ok') reasons.push(`${strategyLabel(c.config)}${groups.length > 1 ? ` (${group.short})` : ''}: ${c.status}: ${firstLine(c.message) || 'no message'}`);
      const rest = c.status === 'ok' ? okRow(c, ch, missedNoiseTarget(c, results)) : notRunRow(c, ch);
      rows.push([`${groups.length > 1 ? '  ' : ''}${markedLabel(c)}${testbedTag(results, c)}`, ...rest]);
    }
  }
  if (results.cases.length) {
    const fitted = fitTable(COLUMNS.map((c) => ({ ...c, head: ch.bold(c.head) })), rows, width);
    out.push(fitted.text);
    if (fitted.dropped.length) out.push(ch.dim(wrap(`left out to fit ${width} columns: ${fitted.dropped.map((h) => HEAD.find((x) => h.includes(x))).join(', ')} (results.md and report.html have every column)`, width)));
  } else {
    out.push(ch.dim('no cases yet'));
  }
  for (const reason of reasons) out.push(ch.dim(wrap(reason, width, '  ')));
  for (const note of idleNotes(results)) out.push(ch.yellow(wrap(`idle: ${note}`, width, '  ')));
  const drops = dropFootnote(results.cases, groups.length > 1);
  if (drops) out.push(ch.yellow(wrap(drops, width, '  ')));
  out.push(ch.dim(wrap(`mem ×ZB: activation peak over zero-buffer's; vs zero-buffer: this step time against zero-buffer's of the same config; ± is IQR/median, ! above the noise target; GPU busy: the step's kernel passes summed, idle the rest of the step (! above 2%); reserved: the most bytes the allocator held, live or pooled; (plan): the buffer table's figure for a case refused before it ran. Every term: docs/design.md#report-columns.`, width)));
  const noise = noiseWarning(results);
  if (noise) out.push(ch.yellow(wrap(`warning: ${noise}`, width, '  ')));
  return out.join('\n');
}
