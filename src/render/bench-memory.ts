import type { BenchCase, BenchResults } from '../bench/schema.js';
import { formatBytes } from '../units.js';
import { caseLabel } from '../bench/cases.js';
import { escapeXml as esc } from './svg-chart.js';

/**
 * What made each case's step peak, as results.md and report.html show it (the README promises
 * memory "explained by tensor"): the bytes live at the peak by tag (docs/design.md#memory) and the
 * largest tensors then, from the case's peakByTag and peakByName.
 */
export interface PeakBreakdown {
  label: string;
  stepPeak: number;
  byTag: [string, number][];
  /** The largest tensors live at the peak, largest first. */
  largest: [string, number][];
  /** Tensors live at the peak beyond `largest`, and their bytes. */
  rest: { count: number; bytes: number };
}

export const LARGEST_TENSORS = 5;

export function peakBreakdown(c: BenchCase, top = LARGEST_TENSORS): PeakBreakdown | null {
  const m = c.memory;
  if (!m) return null;
  const byTag = Object.entries(m.peakByTag).filter(([, b]) => (b ?? 0) > 0).sort((a, b) => b[1]! - a[1]!) as [string, number][];
  const tensors = Object.entries(m.peakByName).filter(([, b]) => b > 0).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const rest = tensors.slice(top);
  return { label: caseLabel(c.config), stepPeak: m.stepPeak, byTag, largest: tensors.slice(0, top), rest: { count: rest.length, bytes: rest.reduce((s, [, b]) => s + b, 0) } };
}

const list = (entries: [string, number][]) => entries.map(([k, b]) => `${k} ${formatBytes(b)}`).join(', ');

function restText(b: PeakBreakdown): string {
  return b.rest.count ? `; ${b.rest.count} more: ${formatBytes(b.rest.bytes)}` : '';
}

export const BREAKDOWN_INTRO = `What is live at each case's step peak: by tag (weights, gradients, activations, workspace, …; docs/design.md#memory), then the ${LARGEST_TENSORS} largest tensors.`;

export function memoryBreakdownMarkdown(results: BenchResults): string {
  const rows = results.cases.map((c) => peakBreakdown(c)).filter((b) => b !== null);
  if (!rows.length) return '';
  const cell = (t: string) => t.replace(/\|/g, '\\|');
  return [
    '| Case | Step peak | By tag | Largest tensors at the peak |',
    '| --- | ---: | --- | --- |',
    ...rows.map((b) => `| \`${cell(b.label)}\` | ${formatBytes(b.stepPeak)} | ${cell(list(b.byTag))} | ${cell(list(b.largest) + restText(b))} |`),
  ].join('\n');
}

export function memorySection(results: BenchResults): string {
  const rows = results.cases.map((c) => peakBreakdown(c)).filter((b) => b !== null);
  if (!rows.length) return '';
  const body = rows.map((b) => `<tr><td>${esc(b.label)}</td><td>${esc(formatBytes(b.stepPeak))}</td><td class="wrap">${esc(list(b.byTag))}</td><td class="wrap">${esc(list(b.largest) + restText(b))}</td></tr>`);
  return `<h2>Memory at the peak</h2>
<p class="muted">${esc(BREAKDOWN_INTRO)}</p>
<div class="table-wrap"><table class="cases breakdown">
<thead><tr><th>case</th><th>step peak</th><th>by tag</th><th>largest tensors at the peak</th></tr></thead>
<tbody>
${body.join('\n')}
</tbody>
</table></div>`;
}
