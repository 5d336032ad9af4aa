import type { BenchCase, BenchResults } from '../bench/schema.js';
import { axisLabel, benchCharts } from './bench-charts.js';
import {
  bytesOrDash,
  ceilingsLine,
  DASH,
  firstLine,
  formatCount,
  formatMs,
  formatPercent,
  formatRatio,
  formatTflops,
  formatVsReference,
  dropFootnote,
  markedLabel,
  groupCases,
  memoryVsReference,
  missedNoiseTarget,
  noiseWarning,
  samplingLine,
  statusTone,
  strategyLabel,
  testbedLine,
  testbedTag,
  timingLine,
} from './bench-format.js';
import { allocatorLine, busyIdleCell, idleNotes, reservedCell } from './bench-gpu-time.js';
import { escapeXml as esc } from './svg-chart.js';
import { memorySection } from './bench-memory.js';

/** Inline only: the report must open offline and from a CI artifact, with nothing fetched. */
const CSS = `
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #fff; --muted: #666; --rule: #ddd; --head: #f4f4f6; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e8ea; --bg: #17171a; --muted: #a0a0a8; --rule: #38383f; --head: #222228; } svg.chart { background: #fff; color: #1d1d1f; border-radius: 6px; } }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); margin: 2rem auto; max-width: 1480px; padding: 0 1.5rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid var(--rule); padding-bottom: .2rem; } h3 { font-size: 1rem; margin: 1.4rem 0 .4rem; }
.sub, .muted, figcaption { color: var(--muted); }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: .4rem 0 1rem; }
th, td { padding: .25rem .45rem; border-bottom: 1px solid var(--rule); text-align: right; white-space: nowrap; }
/* Heads wrap at their spaces, and the cases tables are set tighter, so that their 16 columns fit a 1000 px window; a wider table scrolls in its box, never the page. */
th { white-space: normal; vertical-align: bottom; min-width: 3.5rem; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table.cases { font-size: 11.5px; } table.cases th, table.cases td { padding: .25rem .3rem; } table.cases th { min-width: 2.6rem; } td.wrap { white-space: normal; }
th { background: var(--head); font-weight: 600; } td:first-child, th:first-child, td.msg { text-align: left; }
td.msg { white-space: normal; max-width: 60rem; }
table.kv td { text-align: left; white-space: normal; } table.kv td:first-child { font-weight: 600; }
.ok { color: #1a7f37; font-weight: 600; } .bad { color: #cf222e; font-weight: 600; } .warn { color: #9a6700; font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 600px), 1fr)); gap: 1rem 1.5rem; } figure { margin: 0; min-width: 0; }
svg.chart { width: 100%; height: auto; }
svg.chart { font-family: system-ui, sans-serif; fill: currentColor; } svg.chart text { fill: currentColor; stroke: none; }
code { font-size: .92em; }
.note { border-left: 3px solid #d4a72c; padding: .2rem .7rem; margin: .4rem 0; }
`;

const TONE_CLASS = { good: 'ok', bad: 'bad', warn: 'warn' } as const;

function row(cells: string[], tag: 'td' | 'th' = 'td'): string {
  return `<tr>${cells.map((c) => `<${tag}>${c}</${tag}>`).join('')}</tr>`;
}

/** Column heads; the cells of caseRow follow this order. */
const HEAD = ['strategy', 'median (ms)', 'p10–p90 (ms)', 'noise', 'GPU busy (idle)', 'tokens/s', 'TFLOP/s (GEMM %)', 'step peak', 'act. peak', 'reserved', 'saved', 'L-layer est.', 'mem ×ZB', 'vs zero-buffer', 'dropped'];

function caseRow(results: BenchResults, c: BenchCase, noisy: boolean): string {
  const status = `<span class="${TONE_CLASS[statusTone(c.status)]}">${esc(c.status)}</span>`;
  const name = esc(`${markedLabel(c)}${testbedTag(results, c)}`);
  // No status column: a case that ran shows its time; one that did not, its status and why.
  if (c.status !== 'ok') return `<tr><td>${name}</td><td class="msg" colspan="${HEAD.length - 1}">${status}: ${esc(firstLine(c.message) || DASH)}</td></tr>`;
  const s = c.time?.step;
  const tp = c.throughput;
  const m = c.memory;
  const cells = [
    s ? `${formatMs(s.median)}` : DASH,
    s ? `${formatMs(s.p10)}–${formatMs(s.p90)}` : DASH,
    s ? `${formatPercent(s.noise)}${noisy ? '!' : ''} (n=${s.n})` : DASH,
    busyIdleCell(c),
    tp ? formatCount(tp.tokensPerS) : DASH,
    tp ? `${formatTflops(tp.usefulTflops)} (${formatPercent(tp.gemmFraction, 0)})` : DASH,
    bytesOrDash(m?.stepPeak),
    bytesOrDash(m?.activationPeak),
    reservedCell(c),
    bytesOrDash(m?.savedForBackward),
    bytesOrDash(m?.modelEstimate),
    formatRatio(memoryVsReference(c)),
    formatVsReference(c.relative?.stepTimeVsReference),
    c.routing ? formatPercent(c.routing.droppedPercent / 100) : DASH,
  ];
  // A figure with its qualifier in parentheses may wrap before it, to keep the table in a 1000 px window.
  return `<tr><td>${name}</td>${cells.map((x) => `<td${x.includes(' (') ? ' class="wrap"' : ''}>${esc(x)}</td>`).join('')}</tr>`;
}

function caseTables(results: BenchResults): string {
  const head = row(HEAD.map((h) => esc(h === 'L-layer est.' ? `L=${results.settings.layers} est.` : h)), 'th');
  const all = groupCases(results.cases);
  const common = all.length > 1 && all.common ? `<p class="muted">${esc(`Every case: ${all.common}.`)}</p>\n` : '';
  const groups = all.map((g) => `<h3>${esc(g.short)}</h3>\n<div class="table-wrap"><table class="cases">\n<thead>${head}</thead>\n<tbody>\n${g.cases.map((c) => caseRow(results, c, missedNoiseTarget(c, results))).join('\n')}\n</tbody>\n</table></div>`);
  return groups.length ? common + groups.join('\n') : '<p class="muted">No cases.</p>';
}

function provenanceTable(results: BenchResults): string {
  const p = results.provenance;
  const rows: [string, string][] = [
    ['tool', `${p.tool.name} ${p.tool.version}`],
    ['commit', p.gitCommit ? `${p.gitCommit}${p.gitDirty ? ' with uncommitted changes' : ''}` : 'none recorded: the code these figures measured cannot be named'],
    ['command', p.commandLine],
    ['Dawn (webgpu)', p.dawnVersion ?? 'unknown'],
    ['Node, platform', `${p.node}, ${p.platform}`],
    ['adapter', testbedLine(results)],
    ['fingerprint', results.testbed.fingerprint],
    ['date', p.time],
    ['ceilings', ceilingsLine(results)],
    ['timing', `${timingLine(results)}; ${samplingLine(results)}`],
    ['pass, layers', `${results.settings.pass}, L = ${results.settings.layers}${results.settings.memoryLimit ? `, --memory-limit ${bytesOrDash(results.settings.memoryLimit)}` : ''}`],
    ['allocator', allocatorLine(results)],
    ...idleNotes(results).map((note): [string, string] => ['idle', note]),
  ];
  return `<table class="kv">${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${k === 'command' || k === 'commit' ? `<code>${esc(v)}</code>` : esc(v)}</td></tr>`).join('')}</table>`;
}

function chartsSection(results: BenchResults): string {
  const sets = benchCharts(results);
  if (!sets.length) return '<p class="muted">Every axis has a single value: nothing to chart against; see the table.</p>';
  return sets
    .map((set) => {
      const fixed = Object.entries(set.fixed).map(([a, v]) => `${axisLabel(a)} = ${v}`);
      const caption = `One line per strategy${fixed.length ? `; ${fixed.join(', ')}` : ''}. Shaded: p10–p90 of the step time; ×: out of memory; dashed level: a dropless strategy, which has no capacity factor. L-layer estimate: L = ${results.settings.layers}.`;
      const figures = set.svgs.map((svg) => `<figure>\n${svg}\n</figure>`).join('\n');
      return `<h3>Against ${esc(axisLabel(set.axis))}</h3>\n<p class="muted">${esc(caption)}</p>\n<div class="charts">\n${figures}\n</div>`;
    })
    .join('\n');
}

/**
 * report.html: one self-contained file (inline CSS, inline SVG, no script, no URL), so it can be
 * attached to a CI run or mailed and still open offline exactly as written.
 */
export function renderBenchHtml(results: BenchResults): string {
  const t = results.testbed;
  const title = `moeblaze bench: ${t.description || t.device} (${t.backend})`;
  const notes = [
    ...(results.complete ? [] : [`Incomplete sweep: ${results.cases.length} case(s) so far; continue with --resume.`]),
    ...results.notes.map((n) => `Note: ${n}`),
  ];
  const noise = noiseWarning(results);
  if (noise) notes.push(`Warning: ${noise}`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${esc(title)}</h1>
<p class="sub">${esc(`${results.cases.length} cases, ${results.provenance.time}; ${results.settings.pass === 'train' ? 'forward + backward' : 'forward only'}`)}</p>
${notes.map((n) => `<p class="note">${esc(n)}</p>`).join('\n')}
<h2>Charts</h2>
${chartsSection(results)}
<h2>Cases</h2>
<p class="muted">${esc('mem ×ZB: activation peak over zero-buffer\'s; vs zero-buffer: this step time against zero-buffer\'s of the same config; noise: IQR/median, ! above the noise target; est.: L × saved for backward + backward transient. Definitions: docs/design.md, section Report columns.')}</p>
${caseTables(results)}
${(() => { const f = dropFootnote(results.cases, true); return f ? `<p class="note">${esc(f)}</p>` : ''; })()}
${memorySection(results)}
<h2>Provenance</h2>
${provenanceTable(results)}
</body>
</html>
`;
}
