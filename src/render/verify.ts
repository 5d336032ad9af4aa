import chalk from 'chalk';
import { formatSkew } from '../config.js';
import { MAX_FACTOR } from '../reference/compare.js';
import type { VerifyResult } from '../verify/verify.js';
import { fitTable, terminalWidth, wrapText } from './fit-table.js';

/** error / bound: ≤ 1 passes. */
function ratio(value: number): string {
  return Number.isFinite(value) ? value.toPrecision(2) : 'NaN/Inf';
}

function exp(value: number): string {
  if (!Number.isFinite(value)) return 'NaN/Inf';
  return value === 0 ? '0' : value.toExponential(2);
}

/** The verify report: one row per strategy and tensor, then a verdict line. */
export function renderVerify(result: VerifyResult, width = terminalWidth()): string {
  const c = result.config;
  const head = `T=${c.tokens} d=${c.hidden} h=${c.ffn} E=${c.experts} k=${c.topK} ${c.activation} checkpoint=${c.checkpoint} cf=${c.capacityFactor} skew=${formatSkew(c.skew)} routing=${c.routing} normalize=${c.normalizeGates} seed=${c.seed} dtype=${c.dtype} gemm=${result.gemmEngine}`;
  // Per-strategy notes sit in their own column on the strategy's first row: a spanning row
  // would break the compact borders (cli-table3 draws stray ┬┴ there).
  const rows: string[][] = [];
  for (const s of result.strategies) {
    if (s.status === 'unsupported' || s.status === 'error') {
      const firstLine = (s.message ?? '').split('\n')[0];
      rows.push([s.strategy, '—', '—', '—', '—', s.status === 'error' ? chalk.red('error') : chalk.yellow('unsupported'), firstLine]);
      continue;
    }
    const notes = [`near-tie tokens: ${s.nearTieTokens}`];
    if (s.droppedPairs) notes.push(`dropped pairs: ${s.droppedPairs}`);
    if (s.message) notes.push(chalk.red(s.message));
    if (s.gemmFallbacks?.length) notes.push(chalk.yellow(`${s.gemmFallbacks.length} GEMM(s) fell back to simt`));
    s.tensors.forEach((t, i) => {
      rows.push([
        i === 0 ? s.strategy : '',
        t.tensor,
        exp(t.relError),
        exp(t.maxAbsError),
        ratio(Math.max(t.errorRatio, t.maxErrorRatio)),
        t.pass ? chalk.green('pass') : chalk.red(t.hasNaN ? 'FAIL (NaN)' : 'FAIL'),
        i === 0 ? chalk.dim(notes.join('; ')) : '',
      ]);
    });
  }
  const columns = [{ head: 'strategy' }, { head: 'tensor' }, { head: 'rel. error' }, { head: 'max |error|' }, { head: 'error / bound' }, { head: 'result' }, { head: 'note', wrap: true, minWidth: 16 }];
  const table = fitTable(columns, rows, width);
  // The bound of reference/compare.ts, as the README's verify section states it.
  const bound = `‖error‖ ≤ ${formatTolerance(result.tolerance)}·‖ref‖ + ${result.atol.toExponential(1)}·‖√Σ terms²‖, largest element ≤ ${MAX_FACTOR}× its share`;
  const verdict = result.pass
    ? chalk.green(`PASS: every tensor within its bound (${bound})`)
    : chalk.red(`FAIL: ${result.strategies.filter((s) => s.status === 'fail' || s.status === 'error').map((s) => s.strategy).join(', ')} outside the bound (${bound})`);
  return [wrapText(head, width, '  '), table.text, wrapText(verdict, width, '  ')].join('\n');
}

/** 1e-4 as given; f16's derived 2·2⁻¹¹ = 9.77e-4 with the digits it has. */
function formatTolerance(value: number): string {
  const short = value.toExponential(0);
  return Number(short) === value ? short : value.toExponential(2);
}

