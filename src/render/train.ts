/** Rendering of `moeblaze train`: the live progress line, the terminal summary, train.html. */
import type { StackMemory } from '../train/stack.js';
import type { StrategyTraining, TrainProgress, TrainResult } from '../train/run.js';
import { formatBytes } from '../units.js';
import { strategyColor, strategyMarker } from './bench-format.js';
import { escapeXml as esc, renderLineChart } from './svg-chart.js';
import { maxOf } from '../arrays.js';
import { terminalOf, type TerminalStream } from './terminal.js';
import { terminalWidth, visibleWidth, wrapText } from './fit-table.js';

/** Four significant figures in one notation from 1e-4 up, so a value near 0.01 keeps its form. */
export function formatLoss(v: number): string {
  if (v === 0) return '0';
  return Math.abs(v) >= 1e-4 && Math.abs(v) < 1e5 ? v.toPrecision(4) : v.toExponential(3);
}

/**
 * Groups of runs whose loss curves coincide: every step's loss within a relative 1e-6 of the
 * group's first run. Dropless strategies compute the same function, so theirs do (up to the
 * order of float sums); a capacity strategy joins them only when nothing was dropped.
 */
export function coincidingRuns(r: Pick<TrainResult, 'runs'>, relative = 1e-6): string[][] {
  const groups: { lead: TrainResult['runs'][number]; names: string[] }[] = [];
  for (const run of r.runs) {
    const same = (a: typeof run, b: typeof run) =>
      a.steps.length === b.steps.length && a.steps.every((s, i) => Math.abs(s.loss - b.steps[i].loss) <= relative * Math.max(Math.abs(s.loss), Math.abs(b.steps[i].loss)));
    const group = groups.find((g) => same(g.lead, run));
    if (group) group.names.push(run.strategy);
    else groups.push({ lead: run, names: [run.strategy] });
  }
  return groups.map((g) => g.names).filter((names) => names.length > 1);
}

function coincidenceNote(r: TrainResult): string | null {
  const groups = coincidingRuns(r);
  if (!groups.length) return null;
  const list = (names: string[]) => (names.length === 2 ? names.join(' and ') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`);
  return `${groups.map(list).join('; ')}: the same loss at every step (within 1e-6), as expected of strategies that compute the same function (no drops); the chart draws them dashed on top of each other`;
}

function formatRate(v: number): string {
  return v >= 1e6 ? `${(v / 1e6).toFixed(2)}M` : v >= 1e3 ? `${(v / 1e3).toFixed(1)}k` : v.toFixed(0);
}

/** One line: strategy, step, loss, tokens/s, peak memory. */
export function progressLine(p: TrainProgress): string {
  const width = String(p.total).length;
  const r = p.record;
  const aux = r.aux > 0 ? ` (aux ${formatLoss(r.aux)})` : '';
  return `${p.strategy}  step ${String(r.step + 1).padStart(width)}/${p.total}  loss ${formatLoss(r.loss)}${aux}  ${formatRate(p.tokensPerSecond)} tokens/s  peak ${formatBytes(r.peakBytes)}`;
}

/** Text bars, one row per expert. */
export function loadHistogram(loads: readonly number[], width = 30): string[] {
  const total = loads.reduce((a, b) => a + b, 0) || 1;
  const max = Math.max(maxOf(loads), 1);
  const w = String(loads.length - 1).length;
  return loads.map((n, e) => `  expert ${String(e).padStart(w)} ${'█'.repeat(Math.round((n / max) * width)).padEnd(width)} ${n} (${((100 * n) / total).toFixed(1)}%)`);
}

/** Storage of the run: f32, or f16 mixed precision with its f32 optimizer copies and loss scale. */
export function dtypeLine(r: Pick<TrainResult, 'config' | 'lossScale'>): string {
  if (r.config.dtype === 'f32') return 'f32 storage';
  return `${r.config.dtype} storage (f32 master weights and Adam state, loss scale ${r.lossScale})`;
}

function configLine(r: TrainResult): string {
  const c = r.config;
  // Older train.json files predate the flag: they ran without drops.
  const cf = c.capacityFactor ?? 0;
  const capacity = cf === 0 ? 'capacity factor 0 (no drops)' : `capacity factor ${cf} (Tutel and GShard drop overflow)`;
  // Older train.json files predate --layers: one layer.
  return `T=${c.tokens} d_in=${c.inputDim} d=${c.hidden} h=${c.ffn} E=${c.experts} k=${c.topK} d_out=${c.outputDim} L=${c.layers ?? 1}, ${dtypeLine(r)}, ${c.steps} steps, Adam lr=${c.lr}, aux α=${c.auxLoss}, ${capacity}, seed ${c.seed}`;
}

/** How far an estimate is from the measured figure: "+24.0 KiB (+8.0%)" (positive: the measurement is larger). */
export function gap(measured: number, estimate: number): string {
  const d = measured - estimate;
  const pct = estimate === 0 ? '' : ` (${d >= 0 ? '+' : ''}${((100 * d) / estimate).toFixed(1)}%)`;
  return `${d >= 0 ? '+' : ''}${formatBytes(d)}${pct}`;
}

/** Why the measured stack and the estimates differ, once per report. */
const STACK_NOTE =
  "bench's L × saved + transient and plan's model free each layer's output after its residual add and keep one dO for the model; here each layer keeps its output until its backward and has its own dO buffer. And each layer here routes its own tokens, where bench's estimate repeats layer 1's step and plan routes by expectation (docs/design.md#memory)";

/** The L-layer step's memory: measured, as the buffer tables predict it, and bench's and plan's estimates. */
export function stackLines(m: StackMemory): string[] {
  const where = `layer ${m.peakLayer} of ${m.layers}, phase ${m.peakPhase}`;
  const tables = m.tablePeak === m.stepPeak ? `as the buffer tables predict (${where})` : `the buffer tables predict ${formatBytes(m.tablePeak)} (${where})`;
  return [
    `${m.layers}-layer step: peak ${formatBytes(m.stepPeak)}, ${tables}`,
    `activation peak ${formatBytes(m.activationPeak)} vs bench's estimate ${formatBytes(m.benchEstimate)}: ${gap(m.activationPeak, m.benchEstimate)}`,
    `MoE part ${formatBytes(m.moePeak)} vs plan's estimate (Adam) ${formatBytes(m.planEstimate)}: ${gap(m.moePeak, m.planEstimate)}`,
  ];
}

/**
 * Pairs dropped over the run (issue 25): a strategy that drops pairs trains on less, which a
 * higher loss may reflect. Files from before the count have no `drops`.
 */
export function dropsLine(run: Pick<StrategyTraining, 'drops'>): string {
  const d = run.drops;
  if (!d) return 'pairs dropped: not recorded';
  if (!d.dropped) return `pairs dropped: none of ${d.pairs.toLocaleString('en-US')}`;
  return `pairs dropped: ${d.dropped.toLocaleString('en-US')} of ${d.pairs.toLocaleString('en-US')} (${d.percent.toFixed(2)}%), in ${d.steps} step(s)`;
}

const dropsCell = (run: Pick<StrategyTraining, 'drops'>) => (run.drops ? (run.drops.dropped ? `${run.drops.dropped.toLocaleString('en-US')} (${run.drops.percent.toFixed(2)}%)` : '0') : '—');

/** The histogram shows layer 1's loads; the JSON has every layer's. */
function layerNote(r: TrainResult, file: string): string {
  const L = r.config.layers ?? 1;
  return L > 1 ? `layer 1 of ${L}; ${file} has every layer's` : '';
}

export function renderTrainSummary(r: TrainResult): string {
  const lines = [`train: ${configLine(r)}`];
  for (const run of r.runs) {
    lines.push('');
    if (run.diverged) lines.push(`${run.strategy}: DIVERGED at step ${run.diverged.step} (loss ${run.diverged.loss})${run.steps.length ? `; loss ${formatLoss(run.firstLoss)} → ${formatLoss(run.steps.at(-1)!.loss)} before it` : ''}`);
    else lines.push(`${run.strategy}: loss ${formatLoss(run.firstLoss)} → ${formatLoss(run.finalLoss)} (÷${run.reduction.toFixed(1)}, mean of the last ${Math.min(10, run.steps.length)} steps)`);
    lines.push(`  ${formatRate(run.tokensPerSecond)} tokens/s, ${run.wallSeconds.toFixed(1)} s, peak ${formatBytes(run.peakBytes)} (${Object.entries(run.peakByTag).map(([t, b]) => `${t} ${formatBytes(b ?? 0)}`).join(', ')})`);
    lines.push(`  ${dropsLine(run)}`);
    if (run.memory) for (const line of stackLines(run.memory)) lines.push(`  ${line}`);
    const note = layerNote(r, '--json');
    if (run.expertLoads.length === 0) continue; // a diverged model's routing is not read
    lines.push(`  expert load (pairs per expert, trained model, fresh batch${note ? `; ${note}` : ''}):`);
    for (const line of loadHistogram(run.expertLoads)) lines.push(line);
  }
  const note = coincidenceNote(r);
  if (note) lines.push('', `note: ${note}`);
  if (r.runs.some((run) => run.memory)) lines.push('', `memory: ${STACK_NOTE}`);
  // Prose wraps at the terminal's width (COLUMNS when piped); the histogram's bars are short already.
  const width = terminalWidth();
  return lines.map((line) => (visibleWidth(line) > width ? wrapText(line, width, `${line.match(/^\s*/)![0]}  `) : line)).join('\n');
}

const DASHES = ['9 5', '3 4', '12 4 3 4'];

export function trainChartSvg(r: TrainResult): string {
  const groups = coincidingRuns(r);
  return renderLineChart({
    title: 'Training loss per step',
    xLabel: 'step',
    yLabel: 'loss (MSE + aux), log scale',
    yScale: 'log',
    width: 960,
    height: 420,
    formatY: formatLoss,
    series: r.runs.map((run, i) => {
      // Within a group of coinciding curves, each later one is narrower and dashed, so that all
      // of them show instead of only the last drawn.
      const group = groups.find((g) => g.includes(run.strategy));
      const rank = group ? group.indexOf(run.strategy) : 0;
      return {
        name: run.strategy,
        color: strategyColor(run.strategy, i),
        marker: strategyMarker(run.strategy, i),
        showMarkers: false,
        lineWidth: group ? Math.max(1.2, 5 - 1.6 * rank) : 2,
        dash: rank > 0 ? DASHES[(rank - 1) % DASHES.length] : undefined,
        points: run.steps.map((s) => ({ x: s.step + 1, y: s.loss })),
      };
    }),
  });
}

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1.5rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: .4rem 0 1rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #ddd; text-align: right; } th:first-child, td:first-child { text-align: left; }
.bar { display: inline-block; height: .8em; background: #4a78c2; }
.muted { color: #666; }
.note { border-left: 3px solid #d4a72c; padding: .2rem .7rem; }
svg.chart { max-width: 100%; height: auto; }
`;

export function renderTrainHtml(r: TrainResult): string {
  const rows = r.runs
    .map(
      (run) =>
        `<tr><td>${esc(run.strategy)}</td><td>${formatLoss(run.firstLoss)}</td><td>${formatLoss(run.finalLoss)}</td><td>÷${run.reduction.toFixed(1)}</td><td>${formatRate(run.tokensPerSecond)}</td><td>${esc(formatBytes(run.peakBytes))}</td><td>${esc(formatBytes(run.peakByTag.optimizer ?? 0))}</td><td>${esc(dropsCell(run))}</td></tr>`,
    )
    .join('\n');
  const memoryRows = r.runs
    .filter((run) => run.memory)
    .map((run) => {
      const m = run.memory!;
      const cells = [formatBytes(m.stepPeak), formatBytes(m.tablePeak), `${m.peakLayer}, ${m.peakPhase}`, formatBytes(m.activationPeak), formatBytes(m.benchEstimate), gap(m.activationPeak, m.benchEstimate), formatBytes(m.moePeak), formatBytes(m.planEstimate), gap(m.moePeak, m.planEstimate)];
      return `<tr><td>${esc(run.strategy)}</td>${cells.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`;
    })
    .join('\n');
  const memory = memoryRows
    ? `<h2>Memory of the ${r.config.layers ?? 1}-layer step</h2>
<table><tr><th>strategy</th><th>step peak</th><th>buffer tables</th><th>peak at (layer, phase)</th><th>activation peak</th><th>bench estimate</th><th>measured − bench</th><th>MoE part</th><th>plan estimate (Adam)</th><th>measured − plan</th></tr>
${memoryRows}
</table>
<p class="muted">${esc(`Step peak: the most bytes live in any training step; buffer tables: the same predicted from each layer's buffer table at that step's routing. Activation peak: the step peak minus what is live when the step starts; MoE part: the step peak minus the dense layers around the MoE stack. Differences: ${STACK_NOTE}.`)}</p>`
    : '';
  const hist = r.runs
    .map((run) => {
      const max = Math.max(maxOf(run.expertLoads), 1);
      const bars = run.expertLoads.map((n, e) => `<tr><td>expert ${e}</td><td style="text-align:left"><span class="bar" style="width:${((240 * n) / max).toFixed(0)}px"></span></td><td>${n}</td></tr>`).join('');
      return `<h3>${esc(run.strategy)}</h3><table>${bars}</table>`;
    })
    .join('\n');
  const prov = r.provenance ? `<p class="muted">${esc(`${r.provenance.tool.name} ${r.provenance.tool.version} · ${r.provenance.commandLine} · ${r.provenance.adapter?.description ?? ''} · ${r.provenance.time}`)}</p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>moeblaze train</title><style>${CSS}</style></head>
<body>
<h1>moeblaze train</h1>
<p class="muted">${esc(configLine(r))}. Model: z = x·W_in, x_1 = z, x_{i+1} = x_i + MoE_i(x_i) for i = 1..L, y = x_{L+1}·W_out; MSE against a fixed random teacher of the same family with one MoE layer.</p>
${prov}
<figure>${trainChartSvg(r)}</figure>
${coincidenceNote(r) ? `<p class="note">${esc(`Note: ${coincidenceNote(r)}.`)}</p>` : ''}
<table><tr><th>strategy</th><th>first loss</th><th>final loss</th><th>reduction</th><th>tokens/s</th><th>peak memory</th><th>optimizer state</th><th>pairs dropped</th></tr>
${rows}
</table>
${memory}
<h2>Expert load at the end${layerNote(r, 'train.json') ? ` (${esc(layerNote(r, 'train.json'))})` : ''}</h2>
${hist}
</body></html>
`;
}

/**
 * Live progress on stderr: one line redrawn in place on a terminal; otherwise every tenth of the
 * run (and the last step) on its own line, so logs stay short.
 */
export function trainProgressWriter(stream: TerminalStream & { write(s: string): boolean } = process.stderr): (p: TrainProgress) => void {
  const tty = terminalOf(stream) !== null;
  return (p) => {
    const n = p.record.step + 1;
    const last = n === p.total;
    if (tty) {
      stream.write(`\r\x1b[2K${progressLine(p)}${last ? '\n' : ''}`);
    } else if (last || n === 1 || n % Math.max(1, Math.round(p.total / 10)) === 0) {
      stream.write(`${progressLine(p)}\n`);
    }
  };
}
