import type { Preset } from '../config.js';
import { fitTable, terminalWidth } from './fit-table.js';

/** A preset's sizes as the table columns show them: lists comma-separated, "4d" for h = 4·d. */
export function presetSizes(p: Preset): { d: string; h: string; E: string; k: string; T: string } {
  return {
    d: p.hidden.join(', '),
    h: p.ffn === 'x4' ? '4d' : p.ffn.join(', '),
    E: p.experts.join(', '),
    k: p.topK.join(', '),
    T: String(p.tokens),
  };
}

/** `bench --list-presets`: one row per preset, its sizes and what it stands for. */
export function renderPresets(presets: readonly Preset[], width = terminalWidth()): string {
  const rows = presets.map((p) => {
    const s = presetSizes(p);
    return [p.name, s.d, s.h, s.E, s.k, s.T, p.description];
  });
  // Lists wrap at their commas before the description has to.
  const list = { wrap: true, minWidth: 5 };
  const columns = [{ head: 'preset' }, { head: 'd', ...list }, { head: 'h' }, { head: 'E', ...list }, { head: 'k', ...list }, { head: 'T' }, { head: 'what it is', wrap: true, minWidth: 20 }];
  return [
    fitTable(columns, rows, width).text,
    'A list sweeps every value; with a list of d, "4d" means h = 4·d. --tokens overrides T; size flags override the rest.',
  ].join('\n');
}
