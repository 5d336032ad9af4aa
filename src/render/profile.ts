import chalk from 'chalk';
import Table from 'cli-table3';
import type { ProfileResult, StrategyProfile } from '../profile.js';
import { formatBytes } from '../units.js';

const BLOCKS = '▁▂▃▄▅▆▇█';

/** Live bytes over the step's allocation events, as a one-line chart. */
export function sparkline(values: number[], width = 60): string {
  if (values.length === 0) return '';
  const step = Math.max(1, values.length / width);
  const samples: number[] = [];
  for (let i = 0; i < values.length; i += step) samples.push(Math.max(...values.slice(Math.floor(i), Math.floor(i + step)) || [0]));
  const lo = Math.min(...samples);
  const hi = Math.max(...samples);
  return samples.map((v) => BLOCKS[hi === lo ? BLOCKS.length - 1 : Math.round(((v - lo) / (hi - lo)) * (BLOCKS.length - 1))]).join('');
}

function strategyBlock(s: StrategyProfile): string {
  const kernels = new Table({ head: ['kernel', 'calls', 'ms', '% of kernel time', 'TFLOP/s', 'GB/s (est.)'], style: { head: [], border: [] }, chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' } });
  const num = (v: number | null, digits: number) => (v === null ? '—' : v.toPrecision(digits));
  for (const k of s.kernels) kernels.push([k.kernel, String(k.calls), k.ms.toFixed(3), `${k.percent.toFixed(1)}%`, num(k.tflops, 3), num(k.gbPerS, 3)]);
  const phases = s.phases.map((p) => `${p.label} ${p.ms.toFixed(2)}`).join(', ');
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
    chalk.bold(`${s.strategy}: step ${s.stepMs.toFixed(3)} ms (${s.usefulTflops.toFixed(3)} useful TFLOP/s); phases (ms): ${phases}`),
    kernels.toString(),
    `memory over the step  ${sparkline(live)}  peak ${formatBytes(s.memory.stepPeak)}, activation peak ${formatBytes(s.memory.activationPeak)}` +
      (s.memory.savedForBackward === null ? '' : `, saved for backward ${formatBytes(s.memory.savedForBackward)}`),
    `peak by tag: ${tags}`,
    `largest buffers at the peak: ${buffers}`,
  ].join('\n');
}

export function renderProfile(result: ProfileResult): string {
  const c = result.config;
  return [
    `T=${c.tokens} d=${c.hidden} h=${c.ffn} E=${c.experts} k=${c.topK} ${c.activation} checkpoint=${c.checkpoint}`,
    chalk.dim(`note: ${result.note}; TFLOP/s count useful FLOPs, GB/s a lower-bound traffic estimate (operands read once, outputs written once), both only where the strategy declares its kernels' work`),
    ...result.strategies.map(strategyBlock),
  ].join('\n\n');
}
