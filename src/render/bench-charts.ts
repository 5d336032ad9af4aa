import type { BenchCase, BenchResults, CaseConfig } from '../bench/schema.js';
import { formatBytes } from '../units.js';
import { formatMs, formatTflops, strategyColor, strategyMarker } from './bench-format.js';
import { renderLineChart, type ChartPoint, type ChartSeries } from './svg-chart.js';

const AXIS_LABELS: Record<string, string> = {
  experts: 'experts (E)',
  topK: 'top-k (k)',
  capacityFactor: 'capacity factor',
  tokens: 'tokens (T)',
  hidden: 'hidden size (d)',
  ffn: 'expert FFN size (h)',
};

/** The axes a reader most often sweeps come first. */
const AXIS_ORDER = ['experts', 'topK', 'capacityFactor', 'tokens', 'hidden', 'ffn'];

export function axisLabel(axis: string): string {
  return AXIS_LABELS[axis] ?? axis;
}

/** Axes with more than one value, i.e. the ones a chart can put on x. */
export function sweptAxes(results: BenchResults): string[] {
  const axes = Object.entries(results.settings.axes)
    .filter(([, values]) => new Set(values).size > 1)
    .map(([axis]) => axis);
  const rank = (a: string) => (AXIS_ORDER.includes(a) ? AXIS_ORDER.indexOf(a) : AXIS_ORDER.length);
  return axes.sort((a, b) => rank(a) - rank(b));
}

function configValue(c: CaseConfig, axis: string): unknown {
  return (c as unknown as Record<string, unknown>)[axis];
}

/** Dropless cases carry no capacity factor: they are the same case at every factor. */
function matches(c: CaseConfig, axis: string, value: number | string): boolean {
  const v = configValue(c, axis);
  return (axis === 'capacityFactor' && v === null) || v === value;
}

export interface BenchChartSet {
  axis: string;
  /** The other swept axes, held at their first value. */
  fixed: Record<string, number | string>;
  /** One <svg> per metric: step time, useful TFLOP/s, step peak, activation peak, saved for backward, L-layer estimate. */
  svgs: string[];
}

interface Metric {
  title: string;
  yLabel: string;
  value: (c: BenchCase) => number | null;
  band?: (c: BenchCase) => [number, number] | null;
  formatY: (v: number) => string;
  bytes?: boolean;
  ref?: (r: BenchResults) => { y: number; label: string } | null;
}

const METRICS: Metric[] = [
  {
    title: 'Median step time',
    yLabel: 'ms',
    value: (c) => c.time?.step.median ?? null,
    band: (c) => (c.time ? [c.time.step.p10, c.time.step.p90] : null),
    formatY: formatMs,
  },
  {
    title: 'Useful TFLOP/s',
    yLabel: 'TFLOP/s',
    value: (c) => c.throughput?.usefulTflops ?? null,
    formatY: formatTflops,
    ref: (r) => (r.ceilings ? { y: r.ceilings.gemm.tflops, label: `GEMM ceiling ${formatTflops(r.ceilings.gemm.tflops)}` } : null),
  },
  { title: 'Step peak memory', yLabel: 'step peak', value: (c) => c.memory?.stepPeak ?? null, formatY: formatBytes, bytes: true },
  // The figure the dispatcher changes, the one that each of L layers holds, and the L-layer estimate.
  { title: 'Activation peak', yLabel: 'activation peak', value: (c) => c.memory?.activationPeak ?? null, formatY: formatBytes, bytes: true },
  { title: 'Saved for backward', yLabel: 'saved for backward', value: (c) => c.memory?.savedForBackward ?? null, formatY: formatBytes, bytes: true },
  { title: 'L-layer estimate', yLabel: 'L × saved + transient', value: (c) => c.memory?.modelEstimate ?? null, formatY: formatBytes, bytes: true },
];

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** Binary units for byte ticks, so they fall on round MiB or GiB rather than round bytes. */
function byteUnit(max: number): number {
  let unit = 1;
  while (max / unit >= 1024 * 2 && unit < 2 ** 40) unit *= 1024;
  return unit;
}

function byteTick(v: number): string {
  if (v === 0) return '0';
  const power = Math.min(4, Math.floor(Math.log(Math.abs(v)) / Math.log(1024)));
  return `${Number((v / 1024 ** power).toPrecision(3))} ${BYTE_UNITS[power]}`;
}

/**
 * One set of charts per swept axis, the other swept axes held at their first value; one line per
 * strategy. An OOM case is a red × at the top of its x position; other failures leave a gap.
 */
export function benchCharts(results: BenchResults): BenchChartSet[] {
  const sets: BenchChartSet[] = [];
  const swept = sweptAxes(results);
  for (const axis of swept) {
    const values = results.settings.axes[axis];
    const fixed = Object.fromEntries(swept.filter((a) => a !== axis).map((a) => [a, results.settings.axes[a][0]]));
    const cases = results.cases.filter((c) => Object.entries(fixed).every(([a, v]) => matches(c.config, a, v)));
    const numeric = values.every((v) => typeof v === 'number');
    const nums = numeric ? (values as number[]) : [];
    const xOf = (i: number) => (numeric ? nums[i] : i);
    const logX = numeric && Math.min(...nums) > 0 && Math.max(...nums) / Math.min(...nums) >= 4;
    const strategies = [...new Set(cases.map((c) => c.config.impl))];
    const svgs = METRICS.map((metric) => {
      const series: ChartSeries[] = strategies.map((strategy, si) => {
        const style = { color: strategyColor(strategy, si), marker: strategyMarker(strategy, si) };
        // A dropless strategy has no capacity factor: one measured value, drawn as a level.
        const dropless = cases.find((x) => x.config.impl === strategy && x.config.capacityFactor === null);
        if (axis === 'capacityFactor' && dropless) {
          const y = dropless.status === 'ok' ? metric.value(dropless) : null;
          return { name: `${strategy} (no capacity factor)`, ...style, level: true, points: [{ x: xOf(0), y }] };
        }
        const points: ChartPoint[] = [];
        values.forEach((value, i) => {
          const c = cases.find((x) => x.config.impl === strategy && matches(x.config, axis, value));
          if (!c) return;
          const band = c.status === 'ok' ? (metric.band?.(c) ?? null) : null;
          points.push({ x: xOf(i), y: c.status === 'ok' ? metric.value(c) : null, lo: band?.[0] ?? null, hi: band?.[1] ?? null, oom: c.status === 'oom' });
        });
        return { name: strategy, ...style, points };
      });
      const ys = series.flatMap((s) => s.points.flatMap((p) => (p.y != null && p.y > 0 ? [p.y] : [])));
      // A log y axis only when values span more than a decade and a half: else it flattens differences.
      const logY = ys.length > 1 && Math.max(...ys) / Math.min(...ys) > 30;
      return renderLineChart({
        title: `${metric.title} vs ${axisLabel(axis)}`,
        xLabel: axisLabel(axis),
        yLabel: metric.yLabel,
        series,
        xScale: logX ? 'log' : 'linear',
        yScale: logY ? 'log' : 'linear',
        xTicks: values.map((_, i) => xOf(i)),
        formatX: numeric ? (v) => String(v) : (v) => String(values[Math.round(v)] ?? v),
        formatY: metric.formatY,
        formatYTick: metric.bytes ? byteTick : undefined,
        yUnit: metric.bytes && !logY ? byteUnit(Math.max(1, ...ys)) : undefined,
        bandLabel: metric.band ? 'p10–p90' : undefined,
        width: 640,
        height: 360,
        refLines: [metric.ref?.(results)].filter((r): r is { y: number; label: string } => Boolean(r)),
      });
    });
    sets.push({ axis, fixed, svgs });
  }
  return sets;
}
