/**
 * A small inline-SVG line chart for self-contained reports: no library, no script, and no
 * namespace URL (an <svg> inside HTML5 is placed in the SVG namespace by the parser itself).
 */

export interface ChartPoint {
  x: number;
  /** null: no value (the line breaks here). */
  y: number | null;
  /** A band around y, e.g. p10–p90. */
  lo?: number | null;
  hi?: number | null;
  /** Drawn as a red × at the top of the plot: the case ran out of memory. */
  oom?: boolean;
  /** Tooltip text; defaults to "series: x, y". */
  title?: string;
}

/** Point shapes: with the colours, a second cue that survives colour-blindness and greyscale. */
export type MarkerShape = 'circle' | 'square' | 'triangle' | 'diamond' | 'triangle-down' | 'hexagon';

export interface ChartSeries {
  name: string;
  color: string;
  points: ChartPoint[];
  /** Default circle. */
  marker?: MarkerShape;
  /** Default true; false for dense series (hundreds of steps) where marks would be a smear. */
  showMarkers?: boolean;
  /** SVG stroke-dasharray of the line (e.g. "6 4"); solid when absent. */
  dash?: string;
  /** Line width; default 2. Coinciding series are drawn wide-to-narrow so each stays visible. */
  lineWidth?: number;
  /**
   * A value that does not depend on x (a dropless strategy on a capacity-factor axis): drawn as
   * a dashed level across the plot from its first point, instead of a line through x values it
   * was never measured at.
   */
  level?: boolean;
}

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  xScale?: 'linear' | 'log';
  yScale?: 'linear' | 'log';
  /** Defaults to nice ticks over the data; sweeps pass their own values. */
  xTicks?: number[];
  formatX?: (v: number) => string;
  /** Values in tooltips. */
  formatY?: (v: number) => string;
  /** Tick labels; defaults to a short number (ticks are round, unlike values). */
  formatYTick?: (v: number) => string;
  /** Linear y ticks are nice multiples of this unit (1024² for MiB, say). */
  yUnit?: number;
  /** Dashed horizontal references, e.g. a measured ceiling. */
  refLines?: { y: number; label: string }[];
  /** Legend entry for the bands. */
  bandLabel?: string;
  width?: number;
  height?: number;
}

/** Escapes text for HTML and SVG, and breaks "://" so a report shows no URL, not even in quoted data. */
export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
    .replace(/:\/\//g, ':&#47;&#47;');
}

/** 1, 2 or 5 × 10^n steps covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks.length > 1 && ticks[ticks.length - 1] < max ? [...ticks, ticks[ticks.length - 1] + step] : ticks;
}

/** Decades, with 2 and 5 between them when the range is under two decades. */
export function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const mults = hi - lo <= 2 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e++) for (const m of mults) ticks.push(Number((m * 10 ** e).toPrecision(12)));
  const inside = ticks.filter((t) => t >= min && t <= max);
  return inside.length >= 2 ? inside : [10 ** lo, 10 ** hi];
}

function defaultFormat(v: number): string {
  return Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(1) : String(Number(v.toPrecision(4)));
}

type Scale = (v: number) => number;

function makeScale(kind: 'linear' | 'log', domain: [number, number], range: [number, number]): Scale {
  const f = kind === 'log' ? Math.log10 : (v: number) => v;
  const [d0, d1] = [f(domain[0]), f(domain[1])];
  const span = d1 - d0 || 1;
  return (v) => range[0] + ((f(v) - d0) / span) * (range[1] - range[0]);
}

const n1 = (v: number) => v.toFixed(1);

/** A point mark of about the same area in every shape, centred on (x, y). */
export function markerSvg(shape: MarkerShape, x: number, y: number, color: string, inner: string, role: 'marker' | 'legend-marker' = 'marker'): string {
  const attrs = `fill="${color}" stroke="#fff" stroke-width="0.8" class="${role} marker-${shape}"`;
  const poly = (pts: [number, number][]) => `<polygon points="${pts.map(([dx, dy]) => `${n1(x + dx)},${n1(y + dy)}`).join(' ')}" ${attrs}>${inner}</polygon>`;
  switch (shape) {
    case 'square':
      return `<rect x="${n1(x - 3.6)}" y="${n1(y - 3.6)}" width="7.2" height="7.2" ${attrs}>${inner}</rect>`;
    case 'triangle':
      return poly([[0, -4.8], [4.4, 3.4], [-4.4, 3.4]]);
    case 'triangle-down':
      return poly([[0, 4.8], [4.4, -3.4], [-4.4, -3.4]]);
    case 'diamond':
      return poly([[0, -5], [4.2, 0], [0, 5], [-4.2, 0]]);
    case 'hexagon':
      return poly([[4.4, 0], [2.2, 3.8], [-2.2, 3.8], [-4.4, 0], [-2.2, -3.8], [2.2, -3.8]]);
    default:
      return `<circle cx="${n1(x)}" cy="${n1(y)}" r="4" ${attrs}>${inner}</circle>`;
  }
}

/** One <svg> with title, axes, ticks, grid, optional bands, lines, points, OOM marks and a legend. */
export function renderLineChart(spec: LineChartSpec): string {
  const W = spec.width ?? 460;
  const H = spec.height ?? 300;
  const fx = spec.formatX ?? defaultFormat;
  const fy = spec.formatY ?? defaultFormat;
  const fyTick = spec.formatYTick ?? defaultFormat;
  const xKind = spec.xScale ?? 'linear';
  const yKind = spec.yScale ?? 'linear';
  const all = spec.series.flatMap((s) => s.points);
  const xs = [...all.map((p) => p.x), ...(spec.xTicks ?? [])].filter((v) => Number.isFinite(v) && (xKind === 'linear' || v > 0));
  const ys = [...all.flatMap((p) => [p.y, p.lo, p.hi]), ...(spec.refLines ?? []).map((r) => r.y)].filter((v): v is number => v != null && Number.isFinite(v) && (yKind === 'linear' || v > 0));

  // Legend rows first: their number sets the plot's bottom edge.
  const hasBand = all.some((p) => p.lo != null && p.hi != null);
  const hasOom = all.some((p) => p.oom);
  const legend = [
    ...spec.series.map((s) => ({ kind: 'line' as const, label: s.name, color: s.color, series: s })),
    ...(hasBand ? [{ kind: 'band' as const, label: spec.bandLabel ?? 'band', color: '#888' }] : []),
    ...(hasOom ? [{ kind: 'oom' as const, label: 'out of memory', color: '#d62728' }] : []),
  ];
  const placed: { item: (typeof legend)[number]; x: number; row: number }[] = [];
  let lx = 10;
  let row = 0;
  for (const item of legend) {
    const w = 26 + item.label.length * 6.5;
    if (lx + w > W - 10 && lx > 10) [lx, row] = [10, row + 1];
    placed.push({ item, x: lx, row });
    lx += w + 12;
  }
  const rows = legend.length ? row + 1 : 0;
  const m = { left: 64, right: 20, top: 42, bottom: 44 + rows * 16 };
  const plot = { x0: m.left, x1: W - m.right, y0: H - m.bottom, y1: m.top };

  const xMin = xs.length ? Math.min(...xs) : 1;
  const xMax = xs.length ? Math.max(...xs) : 1;
  const xTicks = spec.xTicks ?? (xKind === 'log' ? logTicks(xMin, xMax) : niceTicks(xMin, xMax));
  // Pad x so that end points do not sit on the axes.
  const pad = xKind === 'log' ? Math.max(xMax / xMin, 1.0001) ** 0.08 : (xMax - xMin || 1) * 0.08;
  const xDomain: [number, number] = xKind === 'log' ? [xMin / pad, xMax * pad] : [xMin - pad, xMax + pad];
  let yTicks: number[];
  let yDomain: [number, number];
  if (!ys.length) {
    [yTicks, yDomain] = [[0, 1], [0, 1]];
  } else if (yKind === 'log') {
    yTicks = logTicks(Math.min(...ys), Math.max(...ys));
    yDomain = [Math.min(yTicks[0], ...ys), Math.max(yTicks[yTicks.length - 1], ...ys)];
  } else {
    // Linear axes start at zero: differences between strategies read as true proportions.
    const unit = spec.yUnit ?? 1;
    yTicks = niceTicks(Math.min(0, ...ys) / unit, Math.max(...ys) / unit).map((v) => v * unit);
    yDomain = [yTicks[0], yTicks[yTicks.length - 1]];
  }
  const sx = makeScale(xKind, xDomain, [plot.x0, plot.x1]);
  // The top strip stays free for the OOM marks.
  const sy = makeScale(yKind, yDomain, [plot.y0, plot.y1 + (hasOom ? 22 : 6)]);

  const out: string[] = [];
  out.push(`<svg class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeXml(spec.title)}">`);
  out.push(`<title>${escapeXml(spec.title)}</title>`);
  out.push(`<text x="${W / 2}" y="18" text-anchor="middle" font-size="14" font-weight="600">${escapeXml(spec.title)}</text>`);
  for (const t of yTicks) {
    const y = n1(sy(t));
    out.push(`<line x1="${plot.x0}" x2="${plot.x1}" y1="${y}" y2="${y}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${plot.x0 - 6}" y="${y}" dy="0.32em" text-anchor="end" font-size="11">${escapeXml(fyTick(t))}</text>`);
  }
  for (const t of xTicks) {
    const x = n1(sx(t));
    out.push(`<line x1="${x}" x2="${x}" y1="${plot.y0}" y2="${plot.y0 + 5}" stroke="#444"/>`);
    out.push(`<text x="${x}" y="${plot.y0 + 17}" text-anchor="middle" font-size="11">${escapeXml(fx(t))}</text>`);
  }
  out.push(`<path d="M${plot.x0},${plot.y1}V${plot.y0}H${plot.x1}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${(plot.x0 + plot.x1) / 2}" y="${plot.y0 + 34}" text-anchor="middle" font-size="12">${escapeXml(spec.xLabel)}</text>`);
  // Above the y axis rather than rotated beside it: tick labels of any width cannot cover it.
  out.push(`<text x="8" y="${plot.y1 - 8}" font-size="12">${escapeXml(spec.yLabel)}</text>`);

  for (const r of spec.refLines ?? []) {
    const y = n1(sy(r.y));
    out.push(`<line class="ref" x1="${plot.x0}" x2="${plot.x1}" y1="${y}" y2="${y}" stroke="#888" stroke-dasharray="5 4"/>`);
    out.push(`<text x="${plot.x1 - 4}" y="${y}" dy="-0.4em" text-anchor="end" font-size="10" fill="#666">${escapeXml(r.label)}</text>`);
  }
  // Several strategies can run out of memory at one x: set their marks side by side, each with a
  // dot of its series' colour, instead of drawing them on top of each other.
  const oomAt = new Map<number, string[]>();
  for (const s of spec.series) for (const p of s.points) if (p.oom && p.y == null) oomAt.set(p.x, [...(oomAt.get(p.x) ?? []), s.name]);
  for (const s of spec.series) {
    if (s.level) {
      const p = s.points.find((q) => q.y != null && Number.isFinite(q.y) && (yKind === 'linear' || q.y > 0));
      if (p) {
        const y = n1(sy(p.y!));
        const tip = p.title ?? `${s.name}: ${fy(p.y!)} at every ${spec.xLabel}`;
        out.push(`<line class="level" x1="${plot.x0}" x2="${plot.x1}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2" stroke-dasharray="${s.dash ?? '7 4'}"><title>${escapeXml(tip)}</title></line>`);
        if (s.showMarkers !== false) out.push(markerSvg(s.marker ?? 'circle', plot.x1 - 6, sy(p.y!), s.color, `<title>${escapeXml(tip)}</title>`));
      }
      continue;
    }
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    const usable = (v: number | null | undefined): v is number => v != null && Number.isFinite(v) && (yKind === 'linear' || v > 0);
    // Bands and lines break where a case has no value, rather than bridging an OOM gap.
    const runs: ChartPoint[][] = [[]];
    for (const p of pts) {
      if (usable(p.y)) runs[runs.length - 1].push(p);
      else if (runs[runs.length - 1].length) runs.push([]);
    }
    for (const run of runs) {
      const banded = run.filter((p) => usable(p.lo) && usable(p.hi));
      if (banded.length >= 2) {
        const upper = banded.map((p) => `${n1(sx(p.x))},${n1(sy(p.hi!))}`);
        const lower = banded.map((p) => `${n1(sx(p.x))},${n1(sy(p.lo!))}`).reverse();
        out.push(`<polygon class="band" points="${[...upper, ...lower].join(' ')}" fill="${s.color}" fill-opacity="0.15" stroke="none"/>`);
      } else {
        for (const p of banded) out.push(`<line class="band" x1="${n1(sx(p.x))}" x2="${n1(sx(p.x))}" y1="${n1(sy(p.lo!))}" y2="${n1(sy(p.hi!))}" stroke="${s.color}" stroke-opacity="0.4" stroke-width="6"/>`);
      }
      if (run.length >= 2) out.push(`<polyline points="${run.map((p) => `${n1(sx(p.x))},${n1(sy(p.y!))}`).join(' ')}" fill="none" stroke="${s.color}" stroke-width="${s.lineWidth ?? 2}"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    }
    for (const p of pts) {
      if (usable(p.y)) {
        if (s.showMarkers === false) continue;
        const tip = p.title ?? `${s.name}: ${fx(p.x)}, ${fy(p.y)}`;
        out.push(markerSvg(s.marker ?? 'circle', sx(p.x), sy(p.y), s.color, `<title>${escapeXml(tip)}</title>`));
      } else if (p.oom) {
        const names = oomAt.get(p.x) ?? [s.name];
        const x = sx(p.x) + (names.indexOf(s.name) - (names.length - 1) / 2) * 12;
        const y = plot.y1 - 2;
        const tip = p.title ?? `${s.name} at ${fx(p.x)}: out of memory`;
        out.push(
          `<g class="oom"><title>${escapeXml(tip)}</title><path d="M${n1(x - 5)},${n1(y - 5)}L${n1(x + 5)},${n1(y + 5)}M${n1(x - 5)},${n1(y + 5)}L${n1(x + 5)},${n1(y - 5)}" stroke="#d62728" stroke-width="2.5"/><circle cx="${n1(x)}" cy="${n1(y + 9)}" r="2.2" fill="${s.color}"/></g>`,
        );
      }
    }
  }

  const legendTop = plot.y0 + 48;
  for (const { item, x, row: r } of placed) {
    const y = legendTop + r * 16;
    if (item.kind === 'line') {
      const s = (item as { series?: ChartSeries }).series;
      const dash = s?.dash ?? (s?.level ? '7 4' : undefined);
      out.push(`<line x1="${x}" x2="${x + 20}" y1="${y}" y2="${y}" stroke="${item.color}" stroke-width="2.5"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
      if (s && s.showMarkers !== false) out.push(markerSvg(s.marker ?? 'circle', x + 10, y, item.color, '', 'legend-marker'));
    }
    else if (item.kind === 'band') out.push(`<rect x="${x}" y="${y - 5}" width="20" height="10" fill="${item.color}" fill-opacity="0.3"/>`);
    else out.push(`<path d="M${x + 5},${y - 5}L${x + 15},${y + 5}M${x + 5},${y + 5}L${x + 15},${y - 5}" stroke="${item.color}" stroke-width="2.5"/>`);
    out.push(`<text x="${x + 26}" y="${y}" dy="0.32em" font-size="11">${escapeXml(item.label)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n');
}
