import Table from 'cli-table3';
import { adapterLabel, BYTE_LIMITS, KEY_LIMITS, type DevicesReport } from '../measure/devices.js';
import type { AdapterReport } from '../gpu/runtime.js';
import type { HostReport } from '../measure/host.js';
import { formatBytes } from '../units.js';
import { deviceName } from './bench-format.js';
import { reportChalk } from './style.js';
import { terminalWidth, wrapText } from './fit-table.js';

export interface RenderOptions {
  /** Defaults to colour when stdout is a TTY and NO_COLOR is unset. */
  color?: boolean;
  /** Width to wrap long cells to (the feature list); defaults to the terminal's, at most 100. */
  width?: number;
}

/** The features the layer's kernels use; highlighted so a reader sees at once what this adapter enables. */
const USED_FEATURES = new Set(['timestamp-query', 'shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix']);

/** Subgroup-matrix shapes as "f16→f32 16×16×16"; the row below names the one the matrix engine takes. */
function matrixConfigs(a: AdapterReport, width: number): string {
  if (!a.subgroupMatrixConfigs?.length) return 'none';
  return wrapList(
    a.subgroupMatrixConfigs.map((m) => `${m.componentType}→${m.resultComponentType} ${m.M}×${m.N}×${m.K}`),
    width,
  );
}

/** No rule between rows: the tables are key/value lists. */
const COMPACT = { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' };

/**
 * Greedy word wrap of a comma-separated list; cli-table3's own wrapping needs fixed column widths.
 * An item wider than the column (a 45-character feature name on an 80-column terminal) is broken
 * after its hyphens.
 */
function wrapList(items: string[], width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const item of items.flatMap((i) => hyphenPieces(i, width - 1))) {
    const continued = line.endsWith('-');
    const next = line ? `${line}${continued ? '' : ', '}${item}` : item;
    // The comma that ends a full line counts too.
    if (line && next.length + 1 > width) {
      lines.push(continued ? line : `${line},`);
      line = item;
    } else {
      line = next;
    }
  }
  if (line) lines.push(line);
  return lines.join('\n');
}

/** `item` as pieces of at most `width` characters, each but the last ending in a hyphen. */
function hyphenPieces(item: string, width: number): string[] {
  if (item.length <= width) return [item];
  const pieces: string[] = [];
  let piece = '';
  for (const part of item.split(/(?<=-)/)) {
    if (piece && piece.length + part.length > width) {
      pieces.push(piece);
      piece = '';
    }
    piece += part;
  }
  return [...pieces, piece];
}

function limitValue(name: string, value: number | undefined): string {
  if (value === undefined) return '—';
  return BYTE_LIMITS.has(name) ? `${formatBytes(value)} (${value})` : String(value);
}

function subgroups(a: AdapterReport): string {
  if (a.subgroupMinSize === null || a.subgroupMaxSize === null) return a.features.includes('subgroups') ? 'yes (sizes not reported)' : 'no';
  const sizes = a.subgroupMinSize === a.subgroupMaxSize ? `${a.subgroupMinSize}` : `${a.subgroupMinSize}–${a.subgroupMaxSize}`;
  return a.features.includes('subgroups') ? sizes : `${sizes} (feature "subgroups" absent)`;
}

/**
 * Characters left for a value beside the widest key: a key/value table is │ key │ value │, so
 * two borders, the middle one and a space either side of each cell (7 in all).
 */
function valueWidth(keys: readonly string[], width: number): number {
  return Math.max(20, width - Math.max(...keys.map((k) => k.length)) - 7);
}

const ADAPTER_KEYS = ['vendor', 'architecture', 'device', 'description', 'backend', 'subgroup sizes', 'features (000)', 'subgroup matrices', 'matrix engine', 'Dawn toggles', ...KEY_LIMITS];

function adapterTable(a: DevicesReport['adapters'][number], index: number, options: Required<RenderOptions>): string {
  const c = reportChalk(options.color);
  const table = new Table({ style: { head: [], border: [] }, chars: COMPACT });
  const w = valueWidth(ADAPTER_KEYS, options.width);
  let features = wrapList(a.features, w);
  // Colour after wrapping: escape codes would count towards the width.
  for (const f of USED_FEATURES) features = features.replace(new RegExp(`(?<![\\w-])${f}(?![\\w-])`), c.green(f));
  table.push(
    { vendor: a.vendor || '—' },
    { architecture: a.architecture || '—' },
    { device: deviceName(a.device) || '—' },
    { description: wrapText(a.description || '—', w) },
    { backend: a.backend + (a.isFallbackAdapter ? c.yellow(' (fallback adapter: software)') : '') },
    { 'subgroup sizes': subgroups(a) },
    { [`features (${a.features.length})`]: features || '—' },
    { 'subgroup matrices': matrixConfigs(a, w) },
    { 'matrix engine': wrapText(a.matrixEngine, w) },
    { 'Dawn toggles': a.toggles ? wrapList([...a.toggles.enabled, ...a.toggles.disabled.map((t) => `no ${t}`)], w) || '—' : '—' },
  );
  for (const name of KEY_LIMITS) table.push({ [name]: limitValue(name, a.limits[name]) });
  // Numbered from 0, as --adapter N takes them.
  return `${c.bold(`Adapter ${a.index ?? index}: ${adapterLabel(a)}`)}\n${table.toString()}`;
}

function hostTable(host: HostReport, options: Required<RenderOptions>): string {
  const c = reportChalk(options.color);
  const table = new Table({ style: { head: [], border: [] }, chars: COMPACT });
  const w = valueWidth(['CPU', 'memory', 'OS', 'GPUs', 'unavailable'], options.width);
  const cores = host.cpu.physicalCores && host.cpu.physicalCores !== host.cpu.cores ? `${host.cpu.cores} cores (${host.cpu.physicalCores} physical)` : `${host.cpu.cores} cores`;
  const gpus = host.gpus.length
    ? host.gpus
        .map((g) => wrapText([`${g.vendor} ${g.model}`, g.driver ? `driver ${g.driver}` : null, g.vramBytes ? `${formatBytes(g.vramBytes)} VRAM` : null].filter(Boolean).join(', '), w))
        .join('\n')
    : c.dim('none found (software adapters have none)');
  table.push(
    { CPU: wrapText(`${host.cpu.model}, ${cores}`, w) },
    { memory: formatBytes(host.memoryBytes) },
    { OS: wrapText(`${host.os.distro} ${host.os.release}${host.os.codename ? ` (${host.os.codename})` : ''}, kernel ${host.os.kernel}, ${host.os.arch}`, w) },
    { GPUs: gpus },
  );
  if (host.unavailable.length) table.push({ unavailable: c.yellow(host.unavailable.map((u) => wrapText(u, w)).join('\n')) });
  return `${c.bold('Host')}\n${table.toString()}`;
}

/** The `devices` report for a terminal: one table per adapter, then the host, then provenance. */
export function renderDevices(report: DevicesReport, options: RenderOptions = {}): string {
  const resolved: Required<RenderOptions> = {
    color: options.color ?? !process.env.NO_COLOR,
    width: options.width ?? terminalWidth(),
  };
  const c = reportChalk(resolved.color);
  const p = report.provenance;
  const footer = c.dim(`${p.tool.name} ${p.tool.version}${p.gitCommit ? ` (${p.gitCommit.slice(0, 12)})` : ''}, Dawn (webgpu) ${p.dawnVersion ?? 'unknown'}, Node ${p.node}, ${p.platform}`);
  return [...report.adapters.map((a, i) => adapterTable(a, i, resolved)), hostTable(report.host, resolved), wrapText(footer, resolved.width)].join('\n\n');
}
