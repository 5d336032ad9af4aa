import chalk from 'chalk';
import { formatMs, formatPercent, formatTflops } from './bench-format.js';
import { fitTable, terminalWidth, wrapText } from './fit-table.js';
import type { DriverCheckReport, DriverFigures, ProfileResult, StrategyProfile } from '../measure/profile.js';
import { formatBytes } from '../units.js';
import { maxOf, minOf } from '../arrays.js';

const BLOCKS = '▁▂▃▄▅▆▇█';

/** Live bytes over the step's allocation events, as a one-line chart. */
export function sparkline(values: number[], width = 60): string {
  if (values.length === 0) return '';
  const step = Math.max(1, values.length / width);
  const samples: number[] = [];
  for (let i = 0; i < values.length; i += step) samples.push(maxOf(values.slice(Math.floor(i), Math.floor(i + step)), 0));
  const lo = minOf(samples);
  const hi = maxOf(samples);
  return samples.map((v) => BLOCKS[hi === lo ? BLOCKS.length - 1 : Math.round(((v - lo) / (hi - lo)) * (BLOCKS.length - 1))]).join('');
}

/**
 * "forward 3.10: routing 0.41, metadata 1.20, experts 1.49; backward …": phases grouped by
 * direction (forward and backward reuse names), a phase that runs in several passes summed once.
 */
export function phaseSummary(s: Pick<StrategyProfile, 'phases' | 'forwardMs' | 'backwardMs'>): string {
  const parts: string[] = [];
  for (const direction of ['forward', 'backward'] as const) {
    const totals = new Map<string, { ms: number; passes: number }>();
    for (const p of s.phases.filter((x) => x.direction === direction)) {
      const t = totals.get(p.label) ?? { ms: 0, passes: 0 };
      t.ms += p.ms;
      t.passes++;
      totals.set(p.label, t);
    }
    if (!totals.size) continue;
    const span = direction === 'forward' ? s.forwardMs : s.backwardMs;
    const list = [...totals].map(([label, t]) => `${label} ${t.ms.toFixed(2)}${t.passes > 1 ? ` (${t.passes} passes)` : ''}`).join(', ');
    parts.push(`${direction}${span === null ? '' : ` ${span.toFixed(2)}`}: ${list}`);
  }
  return parts.join('; ');
}

/** "26.3 ms (median of 9 steps, p10–p90 25.1–27.9 ms, IQR/median 3.1%)": a time with its spread. */
export function stepTimeText(s: Pick<StrategyProfile, 'stepTime'>): string {
  const t = s.stepTime;
  return `${formatMs(t.median)} ms (median of ${t.n} steps, p10–p90 ${formatMs(t.p10)}–${formatMs(t.p90)} ms, IQR/median ${formatPercent(t.noise)})`;
}

function strategyBlock(s: StrategyProfile): string {
  const num = (v: number | null, digits: number) => (v === null ? '—' : v.toPrecision(digits));
  const rows = s.kernels.map((k) => [k.kernel, String(k.calls), k.ms.toFixed(3), `${k.percent.toFixed(1)}%`, num(k.tflops, 3), num(k.gbPerS, 3)]);
  const kernels = fitTable(['kernel', 'calls', 'ms', '% of kernel time', 'TFLOP/s', 'GB/s (est.)'].map((head) => ({ head })), rows, terminalWidth());
  const phases = phaseSummary(s);
  const tags = Object.entries(s.peakByTag)
    .sort((a, b) => (b[1] ?? 0) - (a[1] ?? 0))
    .map(([tag, bytes]) => `${tag} ${formatBytes(bytes ?? 0)}`)
    .join(', ');
  const buffers = Object.entries(s.memory.peakByName)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10)
    .map(([name, bytes]) => `${name} ${formatBytes(bytes)}`)
    .join(', ');
  const live = s.memory.timeline.filter((e) => e.kind !== 'mark').map((e) => e.live);
  return [
    chalk.bold(`${s.strategy}: step ${stepTimeText(s)} (${formatTflops(s.usefulTflops)} useful TFLOP/s)`),
    `GPU busy ${s.busyMs.toFixed(3)} ms, idle ${s.idleMs.toFixed(3)} ms (${s.stepMs > 0 ? ((100 * s.idleMs) / s.stepMs).toFixed(1) : '0.0'}%)${idleCauses(s)}`,
    wrapText(`phases (ms): ${phases}`, terminalWidth(), '  '),
    kernels.text,
    `memory over the step  ${sparkline(live)}  peak ${formatBytes(s.memory.stepPeak)}, activation peak ${formatBytes(s.memory.activationPeak)}` +
      (s.memory.savedForBackward === null ? '' : `, saved for backward ${formatBytes(s.memory.savedForBackward)}`) +
      `, reserved ${formatBytes(s.memory.reservedPeak)}, ${s.memory.buffersCreated} buffer${s.memory.buffersCreated === 1 ? '' : 's'} created`,
    wrapText(`peak by tag: ${tags}`, terminalWidth(), '  '),
    wrapText(`largest buffers at the peak: ${buffers}`, terminalWidth(), '  '),
  ].join('\n');
}

/** ": readback 1.2 ms, submission 0.3 ms" (largest first), or nothing without idle time. */
function idleCauses(s: StrategyProfile): string {
  const causes = Object.entries(s.idleByCause).filter(([, ms]) => (ms ?? 0) > 0).sort((a, b) => (b[1] ?? 0) - (a[1] ?? 0));
  return causes.length ? `: ${causes.map(([cause, ms]) => `${cause} ${(ms ?? 0).toFixed(3)} ms`).join(', ')}` : '';
}

const signed = (bytes: number) => `${bytes >= 0 ? '+' : ''}${formatBytes(bytes)}`;

function comparison(f: DriverFigures, tolerance: number): string {
  const diff = f.relativeDifference === null ? 'n/a' : `${f.relativeDifference >= 0 ? '+' : ''}${(100 * f.relativeDifference).toFixed(2)}%`;
  const verdict = f.withinTolerance ? chalk.green('yes') : chalk.red('no');
  return `allocator ${signed(f.allocatorDeltaBytes)}, driver ${signed(f.driverDeltaBytes)}, difference ${diff} (within ${100 * tolerance}%: ${verdict})`;
}

/** The --driver-check block: one line per strategy, or why it was skipped. */
export function driverCheckBlock(d: DriverCheckReport): string {
  if (d.skipped) return `driver cross-check: skipped — ${d.skipped}`;
  const lines = [chalk.bold(`driver cross-check (nvidia-smi):`)];
  for (const s of d.strategies) {
    if (s.skipped !== null) {
      lines.push(`  ${s.strategy}: skipped — ${s.skipped}`);
      continue;
    }
    lines.push(`  ${s.strategy}, reserved at the step's peak (since before the layer): ${s.reserved ? `${comparison(s.reserved, d.tolerance)}; ${formatBytes(s.reserved.liveBytes)} of it live` : 'not measured (see notes)'}`);
    if (s.reserved) for (const n of s.reserved.notes) lines.push(chalk.dim(`    note: ${n}`));
    lines.push(`    allocated, the step paused at its peak (fresh buffers): ${s.step ? `${comparison(s.step, d.tolerance)}${s.step.atPeak ? '' : ' (after a free that followed the peak)'}` : 'not measured (see notes)'}`);
    if (s.step) for (const n of s.step.notes) lines.push(chalk.dim(`    note: ${n}`));
    lines.push(`    table-sized hold (${s.peakPhase}, ${s.buffers} buffers): ${comparison(s, d.tolerance)}`);
    if (s.persistent) lines.push(`    persistent (layer creation): ${comparison(s.persistent, d.tolerance)}`);
    lines.push(chalk.dim(`    on ${s.gpu}; freeing them gave back ${formatBytes(s.releasedBytes)}`));
    for (const n of s.notes) lines.push(chalk.dim(`    note: ${n}`));
  }
  if (d.method === 'nvidia-smi') lines.push(chalk.dim('note: nvidia-smi was asked directly: systeminformation had no NVIDIA figure (it reads nvidia-smi only where lspci exists)'));
  lines.push(chalk.dim(`note: ${d.note}`));
  return lines.join('\n');
}

export function renderProfile(result: ProfileResult): string {
  const c = result.config;
  return [
    `T=${c.tokens} d=${c.hidden} h=${c.ffn} E=${c.experts} k=${c.topK} ${c.activation} checkpoint=${c.checkpoint}${c.routing === 'balanced' ? ' routing=balanced' : ''}`,
    chalk.dim(`allocator: ${result.allocator}`),
    chalk.dim(wrapText(`note: ${result.note}; TFLOP/s count useful FLOPs (— for a kernel that does none), GB/s a lower-bound traffic estimate (operands read once, outputs written once), both from the work the strategy declares per kernel`, terminalWidth(), '  ')),
    ...result.strategies.map(strategyBlock),
    ...(result.driverCheck ? [driverCheckBlock(result.driverCheck)] : []),
  ].join('\n\n');
}
