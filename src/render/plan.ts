import type { ChalkInstance } from 'chalk';
import type { FitAdvice } from '../plan/advice.js';
import type { PlanResult, StrategyPlan } from '../plan/model.js';
import type { ValidationResult, ValidationRow } from '../plan/validate.js';
import { formatBytes } from '../units.js';
import { fitTable, terminalWidth, wrapText, type FitColumn } from './fit-table.js';
import { reportChalk } from './style.js';

export interface PlanRenderOptions {
  /** Defaults to colour unless NO_COLOR is set (chalk also drops it for a non-TTY stdout). */
  color?: boolean;
}

/**
 * A table laid out for the terminal when printed: heads and long cells (phases, notes) wrap at
 * their spaces to fit the width; the first column (the strategy or shape) never wraps. Columns
 * named in `dropOrder` go, in that order, when wrapping is not enough, and a line says which.
 */
function table(
  head: string[],
  wraps: (column: number) => boolean = (i) => i > 0,
  dropOrder: readonly string[] = [],
  width = terminalWidth(),
): { push(row: string[]): void; toString(): string } {
  const rows: string[][] = [];
  const columns: FitColumn[] = head.map((h, i) => ({
    head: h,
    // 6: a size ("3.27 MiB") may break before its unit on a narrow terminal.
    ...(wraps(i) && { wrap: true, minWidth: 6 }),
    ...(dropOrder.includes(h) && { dropOrder: dropOrder.indexOf(h) }),
  }));
  return {
    push: (row) => rows.push(row),
    toString: () => {
      const fitted = fitTable(columns, rows, width);
      return fitted.dropped.length ? `${fitted.text}\n(left out to fit ${width} columns: ${fitted.dropped.join(', ')}; --json has them)` : fitted.text;
    },
  };
}

function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function formatPercent(fraction: number): string {
  const text = (100 * fraction).toFixed(1);
  // A tiny negative share rounds to "-0.0"; zero has no sign.
  return `${/^-0\.0$/.test(text) ? '0.0' : text}%`;
}

function settingsLine(r: PlanResult): string {
  const s = r.settings;
  const shape = `T=${s.tokens} d=${s.hidden} h=${s.ffn} E=${s.experts} k=${s.topK} ${s.activation} checkpoint=${s.checkpoint} cf=${s.capacityFactor} skew=${s.skew}${s.routing === 'balanced' ? ' routing=balanced' : ''}`;
  const run = [s.dtype, `${s.layers} layer${s.layers === 1 ? '' : 's'}`, `optimizer ${s.optimizer}`, s.memory === null ? 'no --memory' : `${formatBytes(s.memory)} per GPU`];
  if (s.expertParallel > 1) run.push(`expert parallel ×${s.expertParallel}`);
  return `${s.preset ? `${s.preset}: ` : ''}${shape} · ${run.join(' · ')}`;
}

function fitCell(p: StrategyPlan, ch: ChalkInstance): string {
  if (p.fits === null) return '—';
  return p.fits ? ch.green('yes') : ch.red('no');
}

function largestCell(p: StrategyPlan, ch: ChalkInstance): string {
  if (p.largestTokens === null) return '—';
  if (p.largestTokens === 0) return ch.red('none');
  return ch.bold(String(p.largestTokens)); // T as everywhere else: no thousands separator
}

function memoryTable(r: PlanResult, ch: ChalkInstance): string {
  const L = r.settings.layers;
  const fit = r.settings.memory !== null;
  // Gradients mirror the weights, layer inputs are 0 for one layer, the peak at the largest T is ≈ --memory: they go first.
  const t = table(['strategy', 'weights', 'gradients', 'optimizer', `saved ×${L}`, 'layer inputs', 'transient', 'peak (est.)', ...(fit ? ['fits', 'largest T', 'peak at largest'] : [])], undefined, ['peak at largest', 'layer inputs', 'gradients', 'transient', 'weights']);
  for (const p of r.strategies) {
    const e = p.estimate;
    const fitCells = [fitCell(p, ch), largestCell(p, ch), p.atLargest ? formatBytes(p.atLargest.estimate.total) : '—'];
    t.push([
      p.strategy,
      formatBytes(e.weights),
      formatBytes(e.gradients),
      formatBytes(e.optimizer),
      formatBytes(e.saved),
      formatBytes(e.layerInputs),
      formatBytes(e.transient),
      ch.bold(formatBytes(e.total)),
      ...(fit ? fitCells : []),
    ]);
  }
  return t.toString();
}

function layerTable(r: PlanResult): string {
  const note = (p: StrategyPlan) => (p.unsupported ? `this tool cannot run it: ${p.unsupported}` : p.unsupportedAtLargest ? `this tool cannot run the largest T: ${p.unsupportedAtLargest}` : '');
  // The note column only when a strategy has something to say.
  const notes = r.strategies.some((p) => note(p) !== '');
  const t = table(['strategy', 'step peak', 'act. peak', 'saved', 'peak phase', 'dropped', 'padding', 'capacity C', ...(notes ? ['note'] : [])], undefined, ['padding', 'capacity C', 'peak phase']);
  for (const p of r.strategies) {
    const m = p.layer;
    t.push([
      p.strategy,
      formatBytes(m.stepPeak),
      formatBytes(m.activationPeak),
      formatBytes(m.savedForBackward),
      m.peakPhase,
      p.dropless ? '—' : formatPercent(p.routing.droppedFraction),
      formatPercent(p.routing.paddingFraction),
      p.routing.capacity === null ? '—' : count(p.routing.capacity),
      ...(notes ? [note(p)] : []),
    ]);
  }
  return t.toString();
}

function parallelTable(r: PlanResult): string {
  const t = table(['strategy', 'rows / all-to-all', 'remote', 'dispatch fwd', 'combine fwd', 'backward (both)', 'per step', 'max received rows'], undefined, ['max received rows', 'remote', 'rows / all-to-all']);
  for (const p of r.strategies) {
    const a = p.allToAll;
    if (!a) continue;
    t.push([
      p.strategy,
      count(a.rowsPerGpu),
      formatPercent(a.remoteFraction),
      formatBytes(a.bytes.dispatchForward),
      formatBytes(a.bytes.combineForward),
      formatBytes(a.bytes.dispatchBackward + a.bytes.combineBackward),
      formatBytes(a.bytes.total),
      `${count(a.maxReceivedRows)} (mean ${count(a.meanReceivedRows)})`,
    ]);
  }
  return t.toString();
}

function trafficTable(r: PlanResult): string {
  const t = table(['strategy', 'forward', 'backward', 'total', 'largest kernel'], undefined, ['forward', 'backward']);
  for (const p of r.strategies) {
    const tr = p.traffic;
    const top = [...tr.kernels].sort((a, b) => b.bytes - a.bytes)[0];
    t.push([p.strategy, formatBytes(tr.forward), formatBytes(tr.backward), formatBytes(tr.total), top ? `${top.kernel}, ${top.phase} (${formatBytes(top.bytes)})` : '—']);
  }
  return t.toString();
}

/**
 * "to fit T=4096 in 80.0 GiB, megablocks, tutel: --dtype bf16 (peak 41.0–42.5 GiB) or …":
 * strategies that the same changes fit are listed together, with the range of their peaks.
 */
export function adviceLines(advice: readonly FitAdvice[], r: PlanResult): string[] {
  const groups = new Map<string, FitAdvice[]>();
  for (const a of advice) {
    const key = a.changes.map((c) => c.flag).join('|');
    groups.set(key, [...(groups.get(key) ?? []), a]);
  }
  const range = (peaks: number[]) => {
    const [lo, hi] = [Math.min(...peaks), Math.max(...peaks)];
    return lo === hi ? formatBytes(lo) : `${formatBytes(lo).replace(/ \S+$/, (u) => (formatBytes(hi).endsWith(u) ? '' : u))}–${formatBytes(hi)}`;
  };
  const where = `T=${r.settings.tokens} in ${formatBytes(r.settings.memory ?? 0)}`;
  return [...groups.values()].map((list) => {
    const names = list.map((a) => a.strategy).join(', ');
    const changes = list[0].changes.map((c, i) => `${c.flag} (peak ${range(list.map((a) => a.changes[i].peak))})`);
    const text = changes.length ? changes.join(' or ') : 'no single change of --dtype, --optimizer, --layers or --expert-parallel is enough; see "largest T" for the micro-batch that fits';
    return `to fit ${where}, ${names}: ${text}`;
  });
}

export function renderPlan(r: PlanResult, options: PlanRenderOptions = {}, advice: readonly FitAdvice[] = []): string {
  const ch = reportChalk(options.color);
  const s = r.settings;
  const width = terminalWidth();
  // Prose wraps at the terminal's width (COLUMNS when piped); tables fit it (issue 25).
  const wrap = (text: string) => wrapText(text, width, '  ');
  const ep = s.expertParallel;
  // Every figure says its scope: with --expert-parallel, per GPU (E/N experts) or one GPU with every expert.
  const scope = ep > 1 ? `, per GPU: ${s.experts / ep} of ${s.experts} experts on each of ${ep} GPUs` : ', one GPU';
  const out = [
    wrap(settingsLine(r)),
    '',
    ch.bold(wrap(`Memory of a ${s.layers}-layer step at T=${s.tokens}${scope} (estimate)`)),
    memoryTable(r, ch),
    ch.bold(wrap(`One layer at T=${s.tokens}, as bench measures it: one GPU with all ${s.experts} experts${ep > 1 ? ', not split across GPUs' : ''} (expected routing)`)),
    layerTable(r),
  ];
  if (ep > 1) out.push(ch.bold(wrap(`All-to-all per GPU per layer and step, ${ep} GPUs (model)`)), parallelTable(r));
  out.push(ch.bold(wrap(`Bytes moved by the kernels of one layer step at T=${s.tokens}, one GPU with every expert (estimate: compulsory traffic)`)), trafficTable(r));
  const none = r.strategies.filter((p) => p.largestTokens === 0);
  if (none.length) {
    const fixed = none[0].estimate.weights + none[0].estimate.gradients + none[0].estimate.optimizer;
    out.push(ch.yellow(wrap(`no micro-batch fits for ${none.map((p) => p.strategy).join(', ')}: weights, gradients and optimizer state alone need about ${formatBytes(fixed)}`)));
  }
  out.push(...adviceLines(advice, r).map((l) => ch.yellow(wrap(l))));
  out.push(ch.dim(['assumptions:', ...r.assumptions.map((a) => wrapText(`  - ${a}`, width, '    '))].join('\n')));
  return out.join('\n');
}

function validationCell(row: ValidationRow, ch: ChalkInstance): string[] {
  if (row.status !== 'ok' || !row.measured || !row.realised || !row.expected) {
    // An unsupported row's reason is listed once per strategy and dtype under the table.
    if (row.status === 'unsupported') return ['—', '—', '—', '—', ch.yellow('not run (unsupported)')];
    return ['—', '—', '—', '—', ch.red(`${row.status}: ${row.message ?? ''}`)];
  }
  const error = row.expectedError ?? 0;
  const errorText = Number.isFinite(error) ? `${(100 * error).toFixed(2)}%` : '∞';
  return [
    // Reserved (live or pooled) beside the allocated peak, in parentheses: not a table figure, not compared.
    `${formatBytes(row.measured.stepPeak)}${row.reservedPeak === undefined ? '' : ` (${formatBytes(row.reservedPeak)})`}`,
    row.exact ? ch.green('= to the byte') : ch.red(`${row.realised.stepPeak - row.measured.stepPeak} B off`),
    formatBytes(row.expected.stepPeak),
    row.checked ? (error <= 0.02 ? ch.green(errorText) : ch.red(errorText)) : ch.dim(`${errorText} (not claimed)`),
    row.pass ? ch.green('pass') : ch.red('FAIL'),
  ];
}

/** One line per strategy and dtype it could not run, with the strategy's reason. */
function unsupportedLines(v: ValidationResult): string[] {
  const reasons = new Map<string, { rows: number; message: string }>();
  for (const row of v.rows.filter((r) => r.status === 'unsupported')) {
    const key = `${row.strategy} at ${row.dtype}`;
    const seen = reasons.get(key);
    reasons.set(key, { rows: (seen?.rows ?? 0) + 1, message: seen?.message ?? row.message ?? '' });
  }
  return [...reasons].map(([key, r]) => `not run: ${key}, ${r.rows} row${r.rows === 1 ? '' : 's'} (${r.message})`);
}

/** `plan --validate`: model (realised routing) vs allocator, and model (expected routing) vs allocator. */
export function renderValidation(v: ValidationResult, options: PlanRenderOptions = {}): string {
  const ch = reportChalk(options.color);
  // Only the shape and the error ("0.31% (not claimed)") wrap: verdict cells ("= to the byte") stay on one line, as scripts grep them.
  // The dtype ends the shape's label, so it takes no column of its own.
  const t = table(['shape, dtype', 'strategy', 'allocator peak (reserved)', 'model, realised routing', 'model, expected', 'expected error', 'result'], (i) => i === 0 || i === 2 || i === 5);
  // Rows come shape by shape, dtype by dtype: label each group once, at its top.
  let lastGroup = '';
  for (const row of v.rows) {
    const group = `${row.shape} ${row.dtype}`;
    t.push([group === lastGroup ? '' : group, row.strategy, ...validationCell(row, ch)]);
    lastGroup = group;
  }
  const failed = v.rows.filter((r) => !r.pass);
  const ran = v.rows.filter((r) => r.status === 'ok').length;
  const verdict = v.pass
    ? ch.green(`PASS: on the ${ran} rows that ran (${v.dtypes.join(' and ')}), the model equals the allocator to the byte given the realised routing, and is within ${100 * v.tolerance}% given expected routing where claimed`)
    : ch.red(`FAIL: ${failed.map((r) => `${r.strategy} ${r.dtype} (${r.shape})`).join('; ')}`);
  const lines = [t.toString(), verdict, ...unsupportedLines(v).map((l) => ch.yellow(l)), ...v.skipped.map((l) => ch.yellow(l))];
  lines.push(ch.dim(`adapter: ${v.adapter}; figures compared: baseline, step peak, activation peak, saved for backward (expected error: the largest relative error of the last three); claimed where routing is uniform with ≥ 64 pairs per expert, except capacity strategies at cf = 0; reserved (live or pooled, the most the allocator held in the step) is shown, not compared`));
  return lines.join('\n');
}
