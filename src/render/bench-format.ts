import { STRATEGIES } from '../registry.js';
import type { StrategyStyle } from '../strategy/contract.js';
import { caseLabel } from '../bench/cases.js';
import type { BenchCase, BenchResults, CaseConfig, CaseStatus, Testbed } from '../bench/schema.js';
import { caseTestbed, testbedsOf } from '../bench/testbeds.js';
import { formatSkew } from '../config.js';
import { formatBytes } from '../units.js';
import type { MarkerShape } from './svg-chart.js';

/**
 * Formatting and grouping shared by the bench renderers (terminal, markdown, HTML, action), so
 * that a figure reads the same in every report.
 */

export const DASH = '—';

/** Three significant figures: sweeps span µs-scale software runs to second-scale real shapes. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return DASH;
  const a = Math.abs(ms);
  return ms.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3);
}

export function formatPercent(fraction: number | null | undefined, digits = 1): string {
  return fraction == null || !Number.isFinite(fraction) ? DASH : `${(fraction * 100).toFixed(digits)}%`;
}

export function formatRatio(ratio: number | null | undefined): string {
  return ratio == null || !Number.isFinite(ratio) ? DASH : `${ratio.toFixed(2)}×`;
}

/**
 * A step time over the reference strategy's, said the way it reads: "1.32× slower", "1.25× faster" (the
 * inverse, so both read as "how many times"), "same" within 0.5% (docs/design.md#report-columns).
 */
export function formatVsReference(ratio: number | null | undefined): string {
  if (ratio == null || !Number.isFinite(ratio) || ratio <= 0) return DASH;
  if (Math.abs(ratio - 1) < 0.005) return 'same';
  return ratio > 1 ? `${ratio.toFixed(2)}× slower` : `${(1 / ratio).toFixed(2)}× faster`;
}

/** The mark a case that dropped pairs carries next to its name, in every report, at any width. */
export const DROP_MARK = '†';

export function droppedPairs(c: BenchCase): boolean {
  return (c.routing?.droppedPairs ?? 0) > 0;
}

/** The strategy's label, marked when it dropped pairs. */
export function markedLabel(c: BenchCase): string {
  return `${strategyLabel(c.config)}${droppedPairs(c) ? DROP_MARK : ''}`;
}

/**
 * The footnote that goes with DROP_MARK, or null when no case dropped pairs: a case that drops
 * pairs computes less than the others, so its time is not a rank among them.
 */
export function dropFootnote(cases: readonly BenchCase[], withConfig: boolean): string | null {
  const dropping = cases.filter(droppedPairs);
  if (!dropping.length) return null;
  const list = dropping.map((c) => `${strategyLabel(c.config)}${withConfig ? ` (E=${c.config.experts} k=${c.config.topK})` : ''} ${formatPercent(c.routing!.droppedPercent / 100)}`);
  return `${DROP_MARK} dropped pairs (capacity overflow): ${list.join(', ')}. Such a case computes less than the dropless ones; its time does not rank with theirs.`;
}

/** SI suffixes for rates: "1.23M" reads faster than 1234567 in a narrow column. */
export function formatCount(value: number): string {
  if (!Number.isFinite(value)) return DASH;
  for (const [scale, suffix] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']] as const) {
    if (Math.abs(value) >= scale) return `${(value / scale).toPrecision(3)}${suffix}`;
  }
  return value.toPrecision(3);
}

export function formatTflops(tflops: number): string {
  if (!Number.isFinite(tflops)) return DASH;
  // Software adapters run at GFLOP/s: keep two significant figures rather than print 0.00.
  return tflops >= 10 ? tflops.toFixed(1) : tflops >= 1 ? tflops.toFixed(2) : String(Number(tflops.toPrecision(2)));
}

export function bytesOrDash(bytes: number | null | undefined): string {
  return bytes == null ? DASH : formatBytes(bytes);
}

export function firstLine(text: string | undefined): string {
  return (text ?? '').split('\n')[0].trim();
}

/** Capacity strategies can appear once per factor in one group; the factor tells them apart. */
export function strategyLabel(c: CaseConfig): string {
  return c.capacityFactor === null ? c.impl : `${c.impl} cf=${c.capacityFactor}`;
}

/**
 * Which testbed a case ran on, where a file's cases ran on several (a sweep merged from shards on
 * different adapters: docs/design.md#shards): " [testbed 2]", numbered as testbedLine lists them;
 * empty otherwise.
 */
export function testbedTag(r: Pick<BenchResults, 'testbed' | 'cases'>, c: BenchCase): string {
  const beds = testbedsOf(r);
  if (beds.length < 2) return '';
  return ` [testbed ${beds.findIndex((t) => t.fingerprint === caseTestbed(r, c).fingerprint) + 1}]`;
}

/** Label parts in reading order; balanced routing and aux appear only when set, as most sweeps leave them out. */
function configParts(c: CaseConfig): [string, string][] {
  const parts: [string, string][] = [
    ['tokens', `T=${c.tokens}`],
    ['hidden', `d=${c.hidden}`],
    ['ffn', `h=${c.ffn}`],
    ['experts', `E=${c.experts}`],
    ['topK', `k=${c.topK}`],
    ['activation', c.activation],
    ['checkpoint', `checkpoint ${c.checkpoint}`],
    ['dtype', c.dtype],
    ['skew', `skew ${formatSkew(c.skew)}`],
    ['normalizeGates', c.normalizeGates ? 'normalized gates' : 'raw gates'],
    ['seed', `seed ${c.seed}`],
    ['pass', c.pass],
  ];
  if (c.routing === 'balanced') parts.push(['routing', 'balanced routing']);
  if (c.auxLoss) parts.push(['auxLoss', `aux ${c.auxLoss}`]);
  return parts;
}

export function configLabel(c: CaseConfig): string {
  return configParts(c).map(([, text]) => text).join(' ');
}

/**
 * The fields a group's cases share: everything but the strategy and the capacity factor, as the
 * runner's configKey does (dropless cases carry no factor, yet are compared with capacity ones).
 */
export function groupKey(c: CaseConfig): string {
  const { impl: _impl, capacityFactor: _cf, ...rest } = c;
  return JSON.stringify(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)));
}

export interface CaseGroup {
  key: string;
  /** Every config field. */
  label: string;
  /** Only the fields that differ between groups ("E=64"); the full label when there is one group. */
  short: string;
  cases: BenchCase[];
}

/**
 * Groups in the order their first case ran, which is the plan's order. `common` holds the fields
 * every group shares, said once above the tables instead of in each heading.
 */
export function groupCases(cases: readonly BenchCase[]): CaseGroup[] & { common: string } {
  const groups = new Map<string, CaseGroup>();
  for (const c of cases) {
    const key = groupKey(c.config);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { key, label: configLabel(c.config), short: '', cases: [] }));
    group.cases.push(c);
  }
  const list = [...groups.values()];
  const parts = list.map((g) => configParts(g.cases[0].config));
  const varies = new Set(parts.flatMap((p) => p.filter(([field, text]) => parts.some((q) => q.find(([f]) => f === field)?.[1] !== text)).map(([field]) => field)));
  list.forEach((g, i) => (g.short = varies.size ? parts[i].filter(([f]) => varies.has(f)).map(([, t]) => t).join(' ') : g.label));
  const common = parts.length ? parts[0].filter(([f]) => !varies.has(f)).map(([, t]) => t).join(' ') : '';
  return Object.assign(list, { common });
}

export type StatusTone = 'good' | 'bad' | 'warn';

export function statusTone(status: CaseStatus): StatusTone {
  return status === 'ok' ? 'good' : status === 'unsupported' ? 'warn' : 'bad';
}

/** Memory ratio shown when only one fits: the activation peak is what dispatch strategies change. */
export function memoryVsReference(c: BenchCase): number | null {
  return c.relative?.activationPeakVsReference ?? c.relative?.stepPeakVsReference ?? null;
}

/** Dawn derives some device names from the driver's by replacing punctuation with "-", leaving one at the end. */
export function deviceName(device: string): string {
  return device.replace(/^-+|-+$/g, '');
}

export function testbedLine(r: BenchResults): string {
  const beds = testbedsOf(r);
  if (beds.length > 1) return beds.map((t, i) => `testbed ${i + 1}: ${oneTestbed(t)}`).join('; ');
  return oneTestbed(beds[0]);
}

function oneTestbed(t: Testbed): string {
  const main = deviceName(t.device) || t.description || t.vendor;
  // On Vulkan the description is the driver string: worth keeping, but not as the name.
  const details = [[t.vendor, t.architecture].filter(Boolean).join(' '), t.backend, t.description !== main ? t.description : ''].filter(Boolean);
  return `${main} (${details.join(', ')}); Dawn (webgpu) ${t.dawnVersion}`;
}

export function ceilingsLine(r: BenchResults): string {
  const c = r.ceilings;
  // A merged sweep's shards each measured their own (the notes list them).
  if (!c) return r.shards ? `one set per shard, ${r.shards.length} shards (see the notes)` : 'not measured';
  const matrix = c.gemmSubgroupMatrix ? `, subgroup-matrix GEMM ${formatTflops(c.gemmSubgroupMatrix.tflops)} TFLOP/s (f16 operands, f32 sums, n=${c.gemmSubgroupMatrix.n})` : '';
  return `GEMM ${formatTflops(c.gemm.tflops)} TFLOP/s (f32, n=${c.gemm.n})${matrix}, bandwidth ${c.bandwidth.gbPerS >= 100 ? c.bandwidth.gbPerS.toFixed(0) : Number(c.bandwidth.gbPerS.toPrecision(3))} GB/s (${formatBytes(c.bandwidth.bytes)} copy)`;
}

export function timingLine(r: BenchResults): string {
  const sources = new Set(r.cases.flatMap((c) => (c.time ? [c.time.source] : [])));
  const main = r.settings.timing === 'timestamp' ? 'GPU timestamp queries' : 'wall clock around onSubmittedWorkDone()';
  // A resumed sweep can mix sources; say so rather than let the two be compared silently.
  return sources.size > 1 ? `${main} (mixed: some cases timed by ${[...sources].join(' and ')})` : main;
}

export function samplingLine(r: BenchResults): string {
  const s = r.settings.sampling;
  return `warm-up ${s.warmup}, ${s.minSamples}–${s.maxSamples} samples until IQR/median ≤ ${formatPercent(s.noiseTarget)} or ${(s.maxTimeMs / 1000).toFixed(1)} s`;
}

/** A case's median is less settled than asked for: its IQR/median stayed above --noise-target. */
export function missedNoiseTarget(c: BenchCase, r: BenchResults): boolean {
  return c.status === 'ok' && c.time != null && c.time.step.noise > r.settings.sampling.noiseTarget;
}

/**
 * One sentence for the end of a report when cases missed the noise target (as hyperfine warns of
 * outliers), or null when every timed case met it.
 */
export function noiseWarning(r: BenchResults): string | null {
  const timed = r.cases.filter((c) => c.status === 'ok' && c.time);
  const missed = timed.filter((c) => missedNoiseTarget(c, r));
  if (!missed.length) return null;
  const worst = missed.reduce((a, b) => (b.time!.step.noise > a.time!.step.noise ? b : a));
  return (
    `${missed.length} of ${timed.length} timed case(s) missed the ${formatPercent(r.settings.sampling.noiseTarget)} noise target ` +
    `(IQR/median up to ${formatPercent(worst.time!.step.noise)}, ${caseLabel(worst.config)}) before the time budget ran out: ` +
    `compare their medians with care; a longer --max-time, an idle machine, or a looser --noise-target helps.`
  );
}

/**
 * Colours and point shapes come from each strategy (Strategy.style), so a strategy looks the same
 * in every chart. The built-in ones use the Okabe–Ito palette, told apart with any common
 * colour-vision deficiency; the shapes tell them apart in greyscale too. A strategy without a
 * style (or a label no strategy has) takes a spare one.
 */
function styleOf(label: string): StrategyStyle | undefined {
  return STRATEGIES.find((s) => s.id === label)?.style;
}
const SPARE_COLORS = ['#000000', '#F0E442'];
const SPARE_MARKERS: MarkerShape[] = ['circle', 'square', 'triangle', 'diamond', 'triangle-down', 'hexagon'];

export function strategyColor(label: string, index: number): string {
  return styleOf(label)?.color ?? SPARE_COLORS[index % SPARE_COLORS.length];
}

export function strategyMarker(label: string, index: number): MarkerShape {
  return styleOf(label)?.marker ?? SPARE_MARKERS[index % SPARE_MARKERS.length];
}

/** Which float64 check each case got (issue 18): the reader of a table must see what was verified. */
export function checksLine(r: BenchResults): string {
  const checks = r.cases.map((c) => c.check).filter((k) => k !== undefined);
  if (!checks.length) return 'no case checked yet';
  const full = checks.filter((k) => k.against === 'reference' && k.kind !== 'sampled').length;
  const sampled = checks.filter((k) => k.kind === 'sampled');
  const gpuOnly = checks.length - full - sampled.length;
  const parts = [`${full} full float64`];
  if (sampled.length) {
    const tokens = sampled.map((k) => k.sample?.tokens ?? 0);
    const [low, high] = [Math.min(...tokens), Math.max(...tokens)];
    parts.push(`${sampled.length} sampled float64 (${low === high ? low : `${low}–${high}`} tokens' rows, every expert's columns)`);
  }
  if (gpuOnly) parts.push(`${gpuOnly} only against another GPU run or a NaN scan (a file from before float64 checks of large shapes)`);
  const forced = checks.reduce((n, k) => n + (k.forcedTokens?.length ?? 0), 0);
  if (forced) parts.push(`${forced} near-tie token(s) routed in the reference as the GPU routed them (check.forcedTokens)`);
  const seconds = checks.map((k) => k.seconds).filter((t) => t !== undefined);
  if (seconds.length) parts.push(`each check took at most ${Math.max(...seconds).toFixed(1)} s`);
  return parts.join(', ');
}
