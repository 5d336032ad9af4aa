import type { ChalkInstance } from 'chalk';
import { isPooledKey, type GateReport, type GateRow, type GateUnit, type Verdict } from '../gate/compare.js';
import { formatBytes } from '../units.js';
import { fitTable, terminalWidth, visibleWidth, wrapText, type FitColumn } from './fit-table.js';
import { reportChalk } from './style.js';

export interface GateRenderOptions {
  /** Colour on/off; default: on unless NO_COLOR (chalk already drops it for a non-TTY). */
  color?: boolean;
  /** Every row; otherwise only the rows that fail (or would, without --advisory-speed). */
  verbose?: boolean;
  /** Characters the table may use; default: the terminal's width, 100 when not a terminal. */
  width?: number;
}

const COLUMNS: FitColumn[] = [
  { head: 'case', wrap: true, minWidth: 11 },
  { head: 'metric' },
  { head: 'baseline' },
  { head: 'current' },
  { head: 'change', dropOrder: 1 },
  { head: 'verdict' },
  { head: 'note', wrap: true, minWidth: 10 },
];

/** A row worth showing without --verbose: it fails the gate, or would without --advisory-speed. */
export function isFailureRow(row: GateRow): boolean {
  return row.regression || (row.verdict === 'SLOWER' && !row.ungated);
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

function hiddenKinds(rows: readonly GateRow[]): string {
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.verdict, (counts.get(r.verdict) ?? 0) + 1);
  return [...counts].map(([v, n]) => `${n} ${v}`).join(', ');
}

export function renderGateSummary(report: GateReport, options: GateRenderOptions = {}): string {
  const c = reportChalk(options.color);
  return report.exitCode === 0 ? c.green(report.summary) : c.red.bold(report.summary);
}

/** How many keys a one-sided list shows without --verbose. */
const ONE_SIDED_SHOWN = 3;

/**
 * "12 case(s) only in the baseline (listed, not failed): <3 keys> and 9 more; --verbose lists
 * them": keys repeat every config field, so a full list runs to thousands of characters.
 */
export function oneSidedLine(title: string, keys: readonly string[], verbose: boolean): string {
  const names = keys.map((k) => k.split('|').join(' '));
  if (verbose || names.length <= ONE_SIDED_SHOWN) return `${keys.length} case(s) ${title} (listed, not failed): ${names.join(', ')}`;
  return `${keys.length} case(s) ${title} (listed, not failed): ${names.slice(0, ONE_SIDED_SHOWN).join(', ')} and ${names.length - ONE_SIDED_SHOWN} more; --verbose lists them`;
}

/** The verdict table (a row per case and metric), the one-sided cases, then the summary line. */
export function renderGate(report: GateReport, options: GateRenderOptions = {}): string {
  const c = reportChalk(options.color);
  const width = options.width ?? terminalWidth();
  const keys = [...new Set(report.rows.map((r) => r.key))];
  // A strategy's pooled row (`<strategy>|all configs`) names itself; the cases' keys share fields.
  const pooled = keys.filter(isPooledKey);
  const { labels, common } = compactLabels(keys.filter((k) => !pooled.includes(k)));
  for (const k of pooled) labels.set(k, k.replace('|', ' '));
  const lines = [
    c.bold(wrapText(`baseline: ${report.testbed.baseline}`, width, '  ')),
    c.bold(wrapText(`current:  ${report.testbed.current}${report.testbed.comparable ? ' (same testbed: absolute times compared)' : ' (different testbed: absolute times INCOMPARABLE)'}`, width, '  ')),
  ];
  if (common) lines.push(c.dim(wrapText(`every case: ${common}`, width, '  ')));
  const shown = options.verbose ? report.rows : report.rows.filter(isFailureRow);
  const cells: string[][] = [];
  let previous = '';
  for (const row of shown) {
    cells.push([
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
  if (cells.length) {
    const fitted = fitTable(COLUMNS, cells, width);
    lines.push(fitted.text);
    if (fitted.dropped.length) lines.push(c.dim(`left out to fit the terminal: ${fitted.dropped.join(', ')} (--json has every field)`));
  }
  else if (!report.rows.length) lines.push(c.dim('(no case present in both files)'));
  const hidden = report.rows.length - shown.length;
  if (hidden) lines.push(c.dim(`${hidden} of ${report.rows.length} row(s) not shown (${hiddenKinds(report.rows.filter((r) => !shown.includes(r)))}); --verbose shows every row`));
  const oneSided = (title: string, list: string[]) => {
    if (list.length) lines.push(c.dim(wrapText(oneSidedLine(title, list, options.verbose ?? false), width, '  ')));
  };
  oneSided('only in the baseline', report.onlyInBaseline);
  oneSided('only in the current run', report.onlyInCurrent);
  // The summary is `; `-separated clauses: break between clauses, never inside one.
  const summary = report.summary
    .split('; ')
    .reduce((text, part) => (visibleWidth(`${text.split('\n').at(-1)}; ${part}`) > width ? `${text};\n  ${part}` : `${text}; ${part}`))
    .split('\n')
    .map((line) => (visibleWidth(line) > width ? wrapText(line, width, '    ') : line))
    .join('\n');
  lines.push(report.exitCode === 0 ? c.green(summary) : c.red.bold(summary));
  return lines.join('\n');
}
