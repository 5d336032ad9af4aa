/** Rendering of `moeblaze train`: the live progress line, the terminal summary, train.html. */
import type { TrainProgress, TrainResult } from '../train/run.js';
import { formatBytes } from '../units.js';
import { strategyColor } from './bench-format.js';
import { escapeXml as esc, renderLineChart } from './svg-chart.js';
import { maxOf } from '../arrays.js';

function formatLoss(v: number): string {
  return Math.abs(v) >= 0.01 ? v.toFixed(4) : v.toExponential(3);
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
  return `T=${c.tokens} d_in=${c.inputDim} d=${c.hidden} h=${c.ffn} E=${c.experts} k=${c.topK} d_out=${c.outputDim}, ${dtypeLine(r)}, ${c.steps} steps, Adam lr=${c.lr}, aux α=${c.auxLoss}, seed ${c.seed}`;
}

export function renderTrainSummary(r: TrainResult): string {
  const lines = [`train: ${configLine(r)}`];
  for (const run of r.runs) {
    lines.push('');
    lines.push(`${run.strategy}: loss ${formatLoss(run.firstLoss)} → ${formatLoss(run.finalLoss)} (÷${run.reduction.toFixed(1)}, mean of the last ${Math.min(10, run.steps.length)} steps)`);
    lines.push(`  ${formatRate(run.tokensPerSecond)} tokens/s, ${run.wallSeconds.toFixed(1)} s, peak ${formatBytes(run.peakBytes)} (${Object.entries(run.peakByTag).map(([t, b]) => `${t} ${formatBytes(b ?? 0)}`).join(', ')})`);
    lines.push('  expert load (pairs per expert, trained model, fresh batch):');
    for (const line of loadHistogram(run.expertLoads)) lines.push(line);
  }
  return lines.join('\n');
}

export function trainChartSvg(r: TrainResult): string {
  return renderLineChart({
    title: 'Training loss per step',
    xLabel: 'step',
    yLabel: 'loss (MSE + aux)',
    yScale: 'log',
    width: 720,
    height: 380,
    formatY: formatLoss,
    series: r.runs.map((run, i) => ({
      name: run.strategy,
      color: strategyColor(run.strategy, i),
      points: run.steps.map((s) => ({ x: s.step + 1, y: s.loss })),
    })),
  });
}

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1.5rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: .4rem 0 1rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #ddd; text-align: right; } th:first-child, td:first-child { text-align: left; }
.bar { display: inline-block; height: .8em; background: #4a78c2; }
.muted { color: #666; }
`;

export function renderTrainHtml(r: TrainResult): string {
  const rows = r.runs
    .map(
      (run) =>
        `<tr><td>${esc(run.strategy)}</td><td>${formatLoss(run.firstLoss)}</td><td>${formatLoss(run.finalLoss)}</td><td>÷${run.reduction.toFixed(1)}</td><td>${formatRate(run.tokensPerSecond)}</td><td>${esc(formatBytes(run.peakBytes))}</td><td>${esc(formatBytes(run.peakByTag.optimizer ?? 0))}</td></tr>`,
    )
    .join('\n');
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
<p class="muted">${esc(configLine(r))}. Model: z = x·W_in, r = z + MoE(z), y = r·W_out; MSE against a fixed random teacher of the same family.</p>
${prov}
<figure>${trainChartSvg(r)}</figure>
<table><tr><th>strategy</th><th>first loss</th><th>final loss</th><th>reduction</th><th>tokens/s</th><th>peak memory</th><th>optimizer state</th></tr>
${rows}
</table>
<h2>Expert load at the end</h2>
${hist}
</body></html>
`;
}

/**
 * Live progress on stderr: one line redrawn in place on a terminal; otherwise every tenth of the
 * run (and the last step) on its own line, so logs stay short.
 */
export function trainProgressWriter(stream: { write(s: string): boolean; isTTY?: boolean } = process.stderr): (p: TrainProgress) => void {
  const tty = Boolean(stream.isTTY);
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
