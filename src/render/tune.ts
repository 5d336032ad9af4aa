import chalk from 'chalk';
import type { TuneResult } from '../tune/run.js';
import { fitTable, terminalWidth, wrapText } from './fit-table.js';
import type { TunedTile } from '../gpu/tuning.js';

/** A tuned tile as "128×256 K32 2 stages grid 4×2" (K, stages and grid only where set and not the default). */
export function tunedTileLabel(t: TunedTile): string {
  return `${t.m}×${t.n}${t.k ? ` K${t.k}` : ''}${t.stages === 2 ? ' 2 stages' : ''}${t.grid ? ` grid ${t.grid.join('×')}` : ''}`;
}

/** `moeblaze tune`'s report: each class's shape, one row per candidate (TFLOP/s, the float64 check), the chosen one marked. */
export function renderTune(result: TuneResult, written: string | null, width = terminalWidth()): string {
  const rows = result.candidates.map((c) => {
    const shape = result.shapes[c.class];
    return [
      c.class,
      `${shape.M}×${shape.N}×${shape.K}`,
      tunedTileLabel(c),
      c.tflops === null ? '—' : c.tflops < 0.01 ? c.tflops.toExponential(2) : c.tflops.toFixed(2),
      c.errorRatio === null ? '—' : Number.isFinite(c.errorRatio) ? c.errorRatio.toPrecision(2) : 'NaN/Inf',
      c.chosen ? chalk.green('chosen') : c.status === 'ok' ? '' : c.status === 'wrong' ? chalk.red(`wrong: ${c.message}`) : chalk.dim(`skipped: ${c.message}`),
    ];
  });
  const columns = [{ head: 'class' }, { head: 'M×N×K' }, { head: 'candidate' }, { head: 'TFLOP/s' }, { head: 'error / bound' }, { head: '', wrap: true, minWidth: 16 }];
  const head = `${result.adapter}, ${result.engine}: each class's representative GEMM (docs/design.md#tensor-cores), f16 operands, f32 sums`;
  const missing = (['segment', 'reduce'] as const).filter((c) => !result.table.classes[c]);
  const tail = [
    ...(missing.length ? [chalk.yellow(`no correct candidate for ${missing.join(', ')}: the table leaves ${missing.length > 1 ? 'them' : 'it'} on the built-in tile`)] : []),
    written ? `wrote ${written}: use it with \`moeblaze bench --tuning ${written}\`` : 'no --out: the table is not written (--json prints it)',
  ];
  return [wrapText(head, width, '  '), fitTable(columns, rows, width).text, ...tail.map((t) => wrapText(t, width, '  '))].join('\n');
}
