import Table from 'cli-table3';

/** One column of a terminal table and how it may give way when the terminal is narrow. */
export interface FitColumn {
  head: string;
  /** May wrap onto several lines, down to `minWidth` characters (notes, long labels). */
  wrap?: boolean;
  minWidth?: number;
  /** May be left out when wrapping is not enough; lower numbers go first. */
  dropOrder?: number;
}

export interface FittedTable {
  text: string;
  /** Heads of the columns left out to fit the width (empty when everything fits). */
  dropped: string[];
  /** Width of the widest line of `text`. */
  width: number;
}

/** No rule between rows: the compact look every moeblaze table uses. */
export const COMPACT_CHARS = { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' };

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;

/** Printed width of a possibly coloured, possibly multi-line string (the widest line). */
export function visibleWidth(text: string): number {
  return Math.max(0, ...text.replace(ANSI, '').split('\n').map((line) => [...line].length));
}

/**
 * Width for terminal tables and prose: the terminal's; when stdout is not a terminal (logs,
 * pipes), the COLUMNS variable where it is set (as `ls` and git honour it), else 100.
 */
export function terminalWidth(stream: { columns?: number; isTTY?: boolean } = process.stdout, env: NodeJS.ProcessEnv = process.env): number {
  if (stream.isTTY && stream.columns) return stream.columns;
  const columns = Number(env.COLUMNS);
  return Number.isInteger(columns) && columns >= 20 ? columns : 100;
}

const longestWord = (text: string) => Math.max(1, ...text.replace(ANSI, '').split(/\s+/).map((w) => [...w].length));

/**
 * Hands `spare` characters back to squeezed columns: first whole heads of the columns that do
 * not wrap, then the wrapping columns in proportion to what each still lacks.
 */
function share(widths: number[], natural: readonly number[], shown: readonly number[], spare: number, columns: readonly FitColumn[]): void {
  for (const i of shown.filter((j) => !columns[j].wrap)) {
    const extra = Math.min(natural[i] - widths[i], Math.max(0, spare));
    widths[i] += extra;
    spare -= extra;
  }
  const wrapping = shown.filter((j) => columns[j].wrap);
  const lacking = wrapping.reduce((sum, j) => sum + natural[j] - widths[j], 0);
  if (spare <= 0 || lacking <= 0) return;
  const budget = Math.min(spare, lacking);
  for (const j of wrapping) widths[j] += Math.floor(((natural[j] - widths[j]) * budget) / lacking);
}

/**
 * Lays out a table within `width` characters. In order, until it fits: heads wrap at their
 * spaces, `wrap` columns wrap down to their minimum, then `dropOrder` columns are left out.
 * Nothing is truncated: a cell is shown whole (words are never cut) or its column is named in
 * `dropped`; a table that cannot fit even so comes out wider than `width`.
 */
export function fitTable(columns: readonly FitColumn[], rows: readonly (readonly string[])[], width: number): FittedTable {
  const cellWidth = (i: number) => Math.max(0, ...rows.map((r) => visibleWidth(r[i] ?? '')));
  const natural = columns.map((c, i) => Math.max(visibleWidth(c.head), cellWidth(i)) + 2);
  // A wrapping column narrows to its minimum, but never below its longest word: words are not cut.
  const longestCellWord = (i: number) => Math.max(1, ...rows.map((r) => longestWord(r[i] ?? '')));
  const narrow = columns.map((c, i) => {
    const cells = c.wrap ? Math.max(Math.min(cellWidth(i), c.minWidth ?? 12), longestCellWord(i)) : cellWidth(i);
    return Math.max(longestWord(c.head), cells, 1) + 2;
  });
  let shown = columns.map((_, i) => i);
  const total = (widths: number[]) => shown.reduce((sum, i) => sum + widths[i], 0) + shown.length + 1;
  const widths = [...natural];
  if (total(widths) > width) {
    for (const i of shown) widths[i] = narrow[i];
    share(widths, natural, shown, width - total(widths), columns);
  }
  const droppable = shown.filter((i) => columns[i].dropOrder !== undefined).sort((a, b) => columns[a].dropOrder! - columns[b].dropOrder!);
  const dropped: string[] = [];
  while (total(widths) > width && droppable.length) {
    const i = droppable.shift()!;
    shown = shown.filter((j) => j !== i);
    dropped.push(columns[i].head);
    for (const j of shown) widths[j] = narrow[j];
    share(widths, natural, shown, width - total(widths), columns);
  }
  const fits = widths.every((w, i) => w === natural[i]);
  const table = new Table({
    head: shown.map((i) => columns[i].head),
    style: { head: [], border: [] },
    chars: COMPACT_CHARS,
    ...(fits ? {} : { colWidths: shown.map((i) => widths[i]), wordWrap: true, wrapOnWordBoundary: true }),
  });
  for (const row of rows) table.push(shown.map((i) => row[i] ?? ''));
  const text = table.toString();
  return { text, dropped, width: visibleWidth(text) };
}

/** Greedy word wrap of plain prose to `width` (continuation lines start with `indent`). */
export function wrapText(text: string, width: number, indent = ''): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const next = line ? `${line} ${word}` : word;
    if (line && visibleWidth(next) > width) {
      lines.push(line);
      line = indent + word;
    } else {
      line = next;
    }
  }
  if (line) lines.push(line);
  return lines.join('\n');
}
