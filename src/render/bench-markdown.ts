import { caseLabel } from '../bench/cases.js';
import type { BenchCase, BenchResults } from '../bench/schema.js';
import {
  bytesOrDash,
  ceilingsLine,
  checksLine,
  DASH,
  firstLine,
  formatCount,
  formatMs,
  formatPercent,
  formatRatio,
  formatTflops,
  dropFootnote,
  droppedPairs,
  markedLabel,
  groupCases,
  noiseWarning,
  samplingLine,
  strategyLabel,
  testbedLine,
  testbedTag,
  timingLine,
} from './bench-format.js';
import { allocatorLine, busyIdleCell, idleNotes, reservedCell } from './bench-gpu-time.js';
import { tunedTileLabel } from './tune.js';
import { BREAKDOWN_INTRO, memoryBreakdownMarkdown } from './bench-memory.js';

/** Pipes end a cell and newlines end a row: both would break the table. */
function cell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function table(head: string[], rows: string[][], align?: ('l' | 'r')[]): string {
  const rule = head.map((_, i) => (align?.[i] === 'r' ? '---:' : '---'));
  return [head, rule, ...rows.map((r) => r.map(cell))].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

function code(text: string): string {
  // A backtick inside would end the span early; a doubled delimiter with padding holds it.
  return text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``;
}

/** bench --tuning: the table's hash, adapter and each class's matrix tile (K, stages and grid where set). */
function tuningLine(t: NonNullable<BenchResults['provenance']['tuning']>): string {
  const classes = Object.entries(t.table.classes).map(([c, e]) => `${c} ${tunedTileLabel(e)}`);
  return `table ${code(t.hash)} measured on ${t.table.adapter}: ${classes.join(', ') || 'no class (built-in tiles)'}`;
}

function provenance(r: BenchResults): string {
  const p = r.provenance;
  const rows = [
    ['tool', `${p.tool.name} ${p.tool.version}`],
    ['commit', p.gitCommit ? `${code(p.gitCommit)}${p.gitDirty ? ' with uncommitted changes' : ''}` : '**none recorded**: the code these figures measured cannot be named (no git checkout, no dist/build-info.json)'],
    ['Dawn (webgpu)', p.dawnVersion ?? 'unknown'],
    ['adapter', testbedLine(r)],
    ['Node, platform', `${p.node}, ${p.platform}`],
    ['date', p.time],
    ['command', code(p.commandLine)],
    ['ceilings', ceilingsLine(r)],
    ['timing', `${timingLine(r)}; ${samplingLine(r)}`],
    ['checks', checksLine(r)],
    ['pass, layers', `${r.settings.pass}, L = ${r.settings.layers}${r.settings.memoryLimit ? `, --memory-limit ${bytesOrDash(r.settings.memoryLimit)}` : ''}`],
    ['allocator', allocatorLine(r)],
    ...(p.tuning ? [['tuning', tuningLine(p.tuning)]] : []),
  ];
  return table(['', ''], rows);
}

/**
 * hyperfine's table (Command | Mean ± σ | Min | Max | Relative) adapted to what the sampler
 * reports: the median with its p10–p90 spread and IQR/median, relative to the group's fastest.
 */
function timeTable(results: BenchResults, cases: BenchCase[], noiseTarget: number): string {
  const ok = cases.filter((c) => c.status === 'ok' && c.time);
  // A case that dropped pairs did less work: the fastest is picked among those that dropped none.
  const ranked = ok.some((c) => !droppedPairs(c)) ? ok.filter((c) => !droppedPairs(c)) : ok;
  const fastest = Math.min(...ranked.map((c) => c.time!.step.median));
  const rows = cases.map((c) => {
    const name = code(`${markedLabel(c)}${testbedTag(results, c)}`);
    if (c.status !== 'ok' || !c.time) return [name, `**${c.status}**: ${firstLine(c.message) || DASH}`, DASH, DASH, DASH, DASH, DASH, DASH, DASH];
    const s = c.time.step;
    const relative = s.median / fastest;
    const tp = c.throughput;
    const tflops = tp ? `${formatTflops(tp.usefulTflops)}${tp.gemmFraction == null ? '' : ` (${formatPercent(tp.gemmFraction, 0)})`}` : DASH;
    return [
      name,
      `${formatMs(s.median)} [${formatMs(s.p10)}, ${formatMs(s.p90)}]`,
      // Above the noise target: bold with a mark, as in the terminal and report.html.
      s.noise > noiseTarget ? `**${formatPercent(s.noise)}!**` : formatPercent(s.noise),
      String(s.n),
      busyIdleCell(c, (idle) => `**${idle}!**`),
      c.time.forward && c.time.backward ? `${formatMs(c.time.forward.median)} / ${formatMs(c.time.backward.median)}` : DASH,
      tp ? formatCount(tp.tokensPerS) : DASH,
      tflops,
      relative === 1 && !droppedPairs(c) ? '**1.00**' : relative.toFixed(2),
    ];
  });
  return table(['Case', 'Median [p10, p90] (ms)', 'Noise', 'n', 'GPU busy (idle)', 'Fwd / bwd (ms)', 'Tokens/s', 'TFLOP/s (GEMM %)', 'Relative'], rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r']);
}

function memoryTable(results: BenchResults): string {
  const rows = results.cases.map((c) => {
    const m = c.memory;
    const rel = c.relative;
    return [
      code(`${caseLabel(c.config)}${testbedTag(results, c)}`),
      c.status,
      bytesOrDash(m?.stepPeak),
      bytesOrDash(m?.activationPeak),
      reservedCell(c),
      bytesOrDash(m?.savedForBackward),
      bytesOrDash(m?.modelEstimate),
      rel ? `${formatRatio(rel.stepPeakVsReference)} / ${formatRatio(rel.activationPeakVsReference)} / ${formatRatio(rel.savedVsReference)}` : DASH,
      c.routing ? formatPercent(c.routing.droppedPercent / 100) : DASH,
    ];
  });
  return table(
    ['Case', 'Status', 'Step peak', 'Activation peak', 'Reserved', 'Saved for backward', `L = ${results.settings.layers} estimate`, '× zero-buffer (step / act. / saved)', 'Dropped'],
    rows,
    ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  );
}

/** results.md: provenance, one timing table per config, then every case's memory. */
export function renderBenchMarkdown(results: BenchResults): string {
  const out = ['# moeblaze bench results', '', provenance(results), ''];
  if (!results.complete) out.push(`> **Incomplete sweep**: ${results.cases.length} case(s) so far; continue with \`--resume\`.`, '');
  for (const note of results.notes) out.push(`> Note: ${note}`, '');
  out.push('## Step time', '');
  out.push(`Median of n samples after warm-up, [p10, p90] across them, noise = IQR/median; relative to the fastest case of the config that dropped no pairs.`, '');
  const groups = groupCases(results.cases);
  if (groups.length > 1 && groups.common) out.push(`Every case: ${groups.common}.`, '');
  const noise = noiseWarning(results);
  if (noise) out.push(`> **Warning**: ${noise}`, '');
  for (const group of groups) out.push(`### ${group.short}`, '', timeTable(results, group.cases, results.settings.sampling.noiseTarget), '');
  out.push('GPU busy: the step\'s kernel passes summed; idle: the rest of the step, where the GPU waits for the host (docs/design.md#time).', '');
  for (const note of idleNotes(results)) out.push(`- Idle: ${note}`);
  if (idleNotes(results).length) out.push('');
  const drops = dropFootnote(results.cases, true);
  if (drops) out.push(drops, '');
  out.push('## Memory', '');
  out.push(
    `Step peak: most bytes live during the step; activation peak: step peak minus what is live when it starts; reserved: the most bytes the allocator held, live or pooled for reuse (torch.cuda.max_memory_reserved); saved for backward: what each of L layers holds at once; estimate: L × saved + the backward transient.`,
    '',
    memoryTable(results),
    '',
  );
  const breakdown = memoryBreakdownMarkdown(results);
  if (breakdown) out.push('### Memory at the peak', '', BREAKDOWN_INTRO, '', breakdown, '');
  return out.join('\n');
}
