import Table from 'cli-table3';
import type { ChalkInstance } from 'chalk';
import type { GateReport, GateRow, GateUnit, Verdict } from '../gate/compare.js';
import { formatBytes } from '../units.js';
import { reportChalk } from './style.js';

export interface GateRenderOptions {
  /** Colour on/off; default: on unless NO_COLOR (chalk already drops it for a non-TTY). */
  color?: boolean;
}

/**
 * Keys repeat every config field; the table names a case by its strategy and the fields that
 * vary between the cases shown, and prints the shared fields once above it.
 */
export function compactLabels(keys: readonly string[]): { labels: Map<string, string>; common: string } {
  const parts = keys.map((k) => k.split('|'));
  const width = Math.max(0, ...parts.map((p) => p.length));
  const varies = Array.from({ length: width }, (_, i) => i === 0 || parts.some((p) => p[i] !== parts[0][i]));
  const labels = new Map(keys.map((k, n) => [k, parts[n].filter((_, i) => varies[i]).join(' ')]));
  const common = parts.length ? parts[0].filter((_, i) => !varies[i]).join(' ') : '';
  return { labels, common };
}

export function formatGateValue(value: number | string | null, unit: GateUnit): string {
  if (value === null) return '—';
  if (typeof value === 'string') return value;
  switch (unit) {
    case 'bytes':
      return formatBytes(value);
    case 'ms':
      return `${value < 1 ? value.toFixed(3) : value.toPrecision(4)} ms`;
    case 'ratio':
      return `${value.toFixed(3)}×`;
    case 'fraction':
      return `${(value * 100).toFixed(2)}%`;
    default:
      return String(value);
  }
}

function formatChange(pct: number | null): string {
  if (pct === null || !Number.isFinite(pct)) return '—';
  if (Math.abs(pct) < 5e-4) return '0%';
  return `${pct > 0 ? '+' : ''}${Math.abs(pct) < 0.1 ? pct.toFixed(3) : pct.toFixed(1)}%`;
}

function paintVerdict(row: GateRow, c: ChalkInstance): string {
  const colours: Record<Verdict, (s: string) => string> = {
    SAME: c.dim,
    FASTER: c.green,
    'MEM-': c.green,
    SLOWER: c.yellow,
    'MEM+': c.red,
    AMBG: c.yellow,
    INCOMPARABLE: c.yellow,
  };
  const text = row.regression ? `${row.verdict} ✗` : row.verdict;
  return row.regression ? c.red.bold(text) : colours[row.verdict](text);
}

export function renderGateSummary(report: GateReport, options: GateRenderOptions = {}): string {
  const c = reportChalk(options.color);
  return report.exitCode === 0 ? c.green(report.summary) : c.red.bold(report.summary);
}

/** The verdict table (a row per case and metric), the one-sided cases, then the summary line. */
export function renderGate(report: GateReport, options: GateRenderOptions = {}): string {
  const c = reportChalk(options.color);
  const keys = [...new Set(report.rows.map((r) => r.key))];
  const { labels, common } = compactLabels(keys);
  const lines = [
    c.bold(`baseline: ${report.testbed.baseline}`),
    c.bold(`current:  ${report.testbed.current}${report.testbed.comparable ? ' (same testbed: absolute times compared)' : ' (different testbed: absolute times INCOMPARABLE)'}`),
  ];
  if (common) lines.push(c.dim(`every case: ${common}`));
  const table = new Table({
    head: ['case', 'metric', 'baseline', 'current', 'change', 'verdict', 'note'],
    style: { head: [], border: [] },
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  let previous = '';
  for (const row of report.rows) {
    table.push([
      row.key === previous ? '' : (labels.get(row.key) ?? row.key),
      row.metric,
      formatGateValue(row.baseline, row.unit),
      formatGateValue(row.current, row.unit),
      formatChange(row.changePct),
      paintVerdict(row, c),
      c.dim(row.note ?? ''),
    ]);
    previous = row.key;
  }
  lines.push(report.rows.length ? table.toString() : c.dim('(no case present in both files)'));
  const oneSided = (title: string, list: string[]) => {
    if (list.length) lines.push(c.dim(`${title} (listed, not failed): ${list.join(', ')}`));
  };
  oneSided('only in the baseline', report.onlyInBaseline);
  oneSided('only in the current run', report.onlyInCurrent);
  lines.push(renderGateSummary(report, options));
  return lines.join('\n');
}
