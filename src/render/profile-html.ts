import { BUFFER_TAGS, type BufferTag, type MemoryEvent } from '../gpu/allocator.js';
import type { ProfileResult, StrategyProfile } from '../measure/profile.js';
import type { Provenance } from '../measure/provenance.js';
import { formatBytes } from '../units.js';
import { phaseSummary, stepTimeText } from './profile.js';
import { escapeXml as esc, niceTicks } from './svg-chart.js';

/** Okabe–Ito colours again, one per buffer tag, in the allocator's tag order. */
const TAG_COLORS: Record<BufferTag, string> = {
  weights: '#0072B2',
  gradients: '#56B4E9',
  optimizer: '#000000',
  input: '#999999',
  'activations-saved': '#D55E00',
  'routing-metadata': '#CC79A7',
  workspace: '#E69F00',
  output: '#009E73',
  readback: '#F0E442',
};

export interface TimelinePoint {
  /** Position of the event in the step's order (allocations, frees and phase marks). */
  index: number;
  byTag: Partial<Record<BufferTag, number>>;
  live: number;
  mark: string | null;
}

/**
 * Live bytes by tag after every event of the step: the step-start mark gives the composition,
 * allocations and frees change it, later marks (which carry their own composition) re-anchor it.
 */
export function liveByTag(timeline: readonly MemoryEvent[]): TimelinePoint[] {
  let current: Partial<Record<BufferTag, number>> = {};
  return timeline.map((e, index) => {
    if (e.kind === 'mark' && e.byTag) current = { ...e.byTag };
    else if (e.tag) current = { ...current, [e.tag]: Math.max(0, (current[e.tag] ?? 0) + (e.kind === 'alloc' ? e.bytes : -e.bytes)) };
    return { index, byTag: current, live: e.live, mark: e.kind === 'mark' ? e.name : null };
  });
}

const n1 = (v: number) => v.toFixed(1);

/** A stacked area of live bytes by tag over the step's events, with the peak marked. */
export function memoryAreaSvg(s: StrategyProfile, width = 900, height = 380): string {
  const points = liveByTag(s.memory.timeline);
  const tags = BUFFER_TAGS.filter((t) => points.some((p) => (p.byTag[t] ?? 0) > 0));
  // Below the plot: slanted phase names, the axis caption, then the legend rows.
  const m = { left: 70, right: 16, top: 34, bottom: 78 + Math.ceil(tags.length / 5) * 16 };
  const [x0, x1, y0, y1] = [m.left, width - m.right, height - m.bottom, m.top];
  const peakLive = Math.max(1, ...points.map((p) => p.live));
  // Round ticks in the binary unit of the peak (0, 200 KiB, 400 KiB …), the top one above the peak.
  const unit = 1024 ** Math.max(0, Math.min(4, Math.floor(Math.log(peakLive) / Math.log(1024))));
  const ticks = niceTicks(0, peakLive / unit).map((t) => t * unit);
  const top = Math.max(peakLive, ticks[ticks.length - 1]);
  const sx = (i: number) => x0 + (points.length > 1 ? (i / (points.length - 1)) * (x1 - x0) : 0);
  const sy = (b: number) => y0 - (b / top) * (y0 - y1);
  const out: string[] = [`<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="live memory by tag">`];
  out.push(`<text x="${width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="600">${esc(`${s.strategy}: live memory by tag over the step`)}</text>`);
  for (const t of ticks) {
    const y = n1(sy(t));
    out.push(`<line x1="${x0}" x2="${x1}" y1="${y}" y2="${y}" stroke="#e4e4e4"/><text x="${x0 - 6}" y="${y}" dy="0.32em" text-anchor="end" font-size="11">${esc(t === 0 ? '0' : formatBytes(t))}</text>`);
  }
  // Layers from the bottom in tag order: persistent tags first, so the step's buffers ride on top.
  const below = points.map(() => 0);
  for (const tag of tags) {
    const upper = points.map((p, i) => below[i] + (p.byTag[tag] ?? 0));
    // Steps, not slopes: the bytes change at an event and hold until the next.
    const edge = (ys: number[]) => ys.flatMap((y, i) => [`${n1(sx(i))},${n1(sy(y))}`, `${n1(sx(Math.min(i + 1, ys.length - 1)))},${n1(sy(y))}`]);
    const poly = [...edge(upper), ...edge(below).reverse()].join(' ');
    out.push(`<polygon class="area" points="${poly}" fill="${TAG_COLORS[tag]}" fill-opacity="0.85" stroke="none"><title>${esc(tag)}</title></polygon>`);
    upper.forEach((v, i) => (below[i] = v));
  }
  for (const p of points.filter((q) => q.mark && q.mark !== 'step-start')) {
    const x = n1(sx(p.index));
    out.push(`<line x1="${x}" x2="${x}" y1="${y1}" y2="${y0}" stroke="#555" stroke-dasharray="2 3"/><text x="${x}" y="${y0 + 13}" text-anchor="end" transform="rotate(-30 ${x} ${y0 + 13})" font-size="9">${esc(p.mark!)}</text>`);
  }
  const peak = points.reduce((a, b) => (b.live > a.live ? b : a), points[0] ?? { index: 0, live: 0, byTag: {}, mark: null });
  out.push(`<circle class="peak" cx="${n1(sx(peak.index))}" cy="${n1(sy(peak.live))}" r="5" fill="none" stroke="#d62728" stroke-width="2.5"/>`);
  out.push(`<text x="${n1(Math.min(sx(peak.index) + 8, x1 - 150))}" y="${n1(sy(peak.live) - 8)}" font-size="11" fill="#d62728">${esc(`peak ${formatBytes(s.memory.stepPeak)}`)}</text>`);
  out.push(`<path d="M${x0},${y1}V${y0}H${x1}" fill="none" stroke="#444"/>`);
  out.push(`<text x="8" y="${y1 - 10}" font-size="12">live bytes</text>`);
  out.push(`<text x="${(x0 + x1) / 2}" y="${y0 + 56}" text-anchor="middle" font-size="12">allocation events of the step, in order (dashed: phase starts)</text>`);
  tags.forEach((tag, i) => {
    const [lx, ly] = [x0 + (i % 5) * 160, y0 + 76 + Math.floor(i / 5) * 16];
    out.push(`<rect x="${lx}" y="${ly - 6}" width="14" height="10" fill="${TAG_COLORS[tag]}"/><text x="${lx + 20}" y="${ly}" dy="0.2em" font-size="11">${esc(tag)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Horizontal bars of each kernel's GPU time, labelled with its throughput where declared. */
export function kernelBarsSvg(s: StrategyProfile, width = 900): string {
  const rows = s.kernels;
  const rowH = 20;
  const label = 230;
  const height = 40 + rows.length * rowH + 30;
  const max = Math.max(1e-9, ...rows.map((k) => k.ms));
  // Room to the right of the longest bar for its label ("1.23 ms · 4.56 TFLOP/s, 7.89 GB/s").
  const scale = (ms: number) => (ms / max) * (width - label - 300);
  const out = [`<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="kernel times">`];
  out.push(`<text x="${width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="600">${esc(`${s.strategy}: GPU time per kernel (one pass per kernel)`)}</text>`);
  rows.forEach((k, i) => {
    const y = 34 + i * rowH;
    const rate = [k.tflops === null ? null : `${k.tflops.toPrecision(3)} TFLOP/s`, k.gbPerS === null ? null : `${k.gbPerS.toPrecision(3)} GB/s`].filter(Boolean).join(', ');
    out.push(`<text x="${label - 6}" y="${y + 10}" text-anchor="end" font-size="11">${esc(k.kernel)}</text>`);
    out.push(`<rect x="${label}" y="${y + 2}" width="${n1(Math.max(1, scale(k.ms)))}" height="${rowH - 5}" fill="#0072B2"><title>${esc(`${k.kernel}: ${k.ms.toFixed(3)} ms, ${k.calls} call(s), ${k.percent.toFixed(1)}%${rate ? `, ${rate}` : ''}`)}</title></rect>`);
    out.push(`<text x="${n1(label + scale(k.ms) + 6)}" y="${y + 10}" font-size="10">${esc(`${k.ms.toFixed(3)} ms${rate ? ` · ${rate}` : ''}`)}</text>`);
  });
  out.push(`<text x="${label}" y="${height - 8}" font-size="12">ms of GPU time (bar length); throughput where the strategy declares the kernel's work</text>`);
  out.push('</svg>');
  return out.join('\n');
}

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; color: #1d1d1f; margin: 2rem auto; max-width: 1100px; padding: 0 1.5rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; } .muted { color: #666; }
svg.chart { width: 100%; height: auto; font-family: system-ui, sans-serif; } figure { margin: .6rem 0; }
`;

/** profile --out DIR: index.html, one self-contained page (inline SVG and CSS, no script, no URL). */
export function renderProfileHtml(result: ProfileResult, provenance?: Provenance): string {
  const c = result.config;
  const shape = `T=${c.tokens} d=${c.hidden} h=${c.ffn} E=${c.experts} k=${c.topK} ${c.activation} checkpoint=${c.checkpoint} ${c.dtype}${c.routing === 'balanced' ? ' routing=balanced' : ''}`;
  const sections = result.strategies.map((s) => {
    const saved = s.memory.savedForBackward === null ? '' : `, saved for backward ${formatBytes(s.memory.savedForBackward)}`;
    return `<h2>${esc(s.strategy)}</h2>
<p>${esc(`step ${stepTimeText(s)} (${s.usefulTflops.toPrecision(3)} useful TFLOP/s); step peak ${formatBytes(s.memory.stepPeak)}, activation peak ${formatBytes(s.memory.activationPeak)}${saved}`)}</p>
<p class="muted">${esc(`phases (ms): ${phaseSummary(s)}`)}</p>
<figure>${memoryAreaSvg(s)}</figure>
<figure>${kernelBarsSvg(s)}</figure>`;
  });
  const prov = provenance ? `<p class="muted">${esc(`${provenance.commandLine} · ${provenance.adapter?.description ?? ''} · ${provenance.time}`)}</p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>moeblaze profile</title><style>${CSS}</style></head>
<body>
<h1>moeblaze profile</h1>
<p>${esc(shape)}</p>
${prov}
<p class="muted">${esc(`Note: ${result.note}. Definitions: docs/design.md, section Measured figures.`)}</p>
${sections.join('\n')}
</body></html>
`;
}
