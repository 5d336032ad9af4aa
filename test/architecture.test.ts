import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { REFERENCE_STRATEGY, strategyIds } from '../src/registry.js';

/**
 * The house plan (docs/design.md#code-layout), read from the import graph so that it stays true:
 * every file belongs to one layer, and imports only reach its own layer or the ones below. A
 * strategy is one folder (src/zero-buffer, baselines/<name>) and imports no other strategy.
 */
const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), '..'));

/**
 * Bottom to top. Inside the tool: the layer and the registry, then what measures and checks a
 * layer (measure, verify, the float64 reference), then what runs sweeps and plans (bench, plan,
 * gate, train), then rendering, then the CLI's own helpers; commands and the library's index last.
 */
const LAYERS = ['foundation', 'kernels', 'contract', 'strategy', 'layer', 'measure', 'tool', 'render', 'cli', 'commands'] as const;
type Layer = (typeof LAYERS)[number];

const FOUNDATION_FILES = ['config', 'layer-fields', 'flag-parsers', 'errors', 'f16', 'units', 'arrays', 'rng', 'fill', 'fs', 'npy', 'pid', 'suggest', 'offload', 'offload-worker', 'lock'].map((n) => `src/${n}.ts`);
const LAYER_FILES = ['layer', 'layer-limits', 'registry'].map((n) => `src/${n}.ts`);
const FOLDER_LAYERS: Record<string, Layer> = {
  gpu: 'foundation',
  strategy: 'contract',
  'zero-buffer': 'strategy',
  measure: 'measure',
  verify: 'measure',
  reference: 'measure',
  bench: 'tool',
  plan: 'tool',
  gate: 'tool',
  train: 'tool',
  tune: 'tool',
  render: 'render',
  cli: 'cli',
};

/** The layer of every source file; a file no rule places is an error, so a new folder must be placed. */
export function layerOf(file: string): { layer: Layer; group: string } {
  const [top, second] = file.split('/');
  if (top === 'commands' || file === 'src/index.ts') return { layer: 'commands', group: 'commands' };
  if (top === 'kernels') return { layer: 'kernels', group: top };
  if (top === 'baselines') return { layer: 'strategy', group: `baselines/${second}` };
  if (FOUNDATION_FILES.includes(file)) return { layer: 'foundation', group: 'foundation' };
  if (LAYER_FILES.includes(file)) return { layer: 'layer', group: 'layer' };
  const layer = FOLDER_LAYERS[second];
  if (top !== 'src' || !layer) throw new Error(`${file}: no layer; place it in test/architecture.test.ts and docs/design.md#code-layout`);
  return { layer, group: layer === 'strategy' ? `src/${second}` : layer };
}

type Edge = { from: string; to: string };

/** Imports that go up a layer, or from one strategy into another. */
export function upwardImports(all: readonly Edge[]): string[] {
  return all
    .filter(({ from, to }) => {
      const a = layerOf(from);
      const b = layerOf(to);
      if (LAYERS.indexOf(b.layer) > LAYERS.indexOf(a.layer)) return true;
      return a.layer === 'strategy' && b.layer === 'strategy' && a.group !== b.group;
    })
    .map(({ from, to }) => `${from} (${layerOf(from).layer}) imports ${to} (${layerOf(to).layer})`);
}

/** Files that import each other, directly or round a loop (Tarjan's strongly connected components). */
export function fileCycles(all: readonly Edge[]): string[] {
  const graph = new Map<string, string[]>();
  for (const { from, to } of all) graph.set(from, [...(graph.get(from) ?? []), to]);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(component.sort().join(' ⇄ '));
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

/**
 * A strategy id written as a string outside the strategies, the registry and the code that
 * migrates old results files: the tool would then treat one strategy specially (an `id ===`
 * switch, a colour table keyed by id) and a new strategy would have to touch it.
 */
export function quotedStrategyIds(files: readonly { path: string; text: string }[], ids: readonly string[]): string[] {
  const allowed = (path: string) => path === 'src/registry.ts' || path === 'src/bench/migrate.ts' || layerOf(path).layer === 'strategy';
  // Ids are lower-case words and hyphens, literal in a pattern outside a character class.
  const pattern = new RegExp(`(['"\`])(${ids.join('|')})\\1`, 'g');
  return files.filter((f) => !allowed(f.path)).flatMap((f) => [...f.text.matchAll(pattern)].map((m) => `${f.path}: ${m[0]}`));
}

function sourceFiles(): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(join(ROOT, dir))) {
      const path = `${dir}/${name}`;
      if (statSync(join(ROOT, path)).isDirectory()) walk(path);
      else if (path.endsWith('.ts')) files.push(path);
    }
  };
  for (const top of ['src', 'kernels', 'baselines', 'commands']) walk(top);
  return files;
}

/** Relative imports (static, dynamic and `export … from`), resolved to repository paths. */
export function importsOf(file: string, text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom|\bimport\s*\(?)\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
    found.push(relative(ROOT, normalize(join(ROOT, dirname(file), m[1]))).replace(/\.js$/, '.ts'));
  }
  return found;
}

function edges(): { from: string; to: string }[] {
  return sourceFiles().flatMap((from) => importsOf(from, readFileSync(join(ROOT, from), 'utf8')).map((to) => ({ from, to })));
}

describe('architecture', () => {
  it('reads the imports it checks (the parser is not blind)', () => {
    expect(importsOf('src/a/b.ts', `import { x } from '../c.js';\nexport { y } from './d.js';\nconst z = await import('../../kernels/e.js');`)).toEqual(['src/c.ts', 'src/a/d.ts', 'kernels/e.ts']);
    const all = edges();
    expect(all.length).toBeGreaterThan(300);
    expect(all.some((e) => e.from === 'src/registry.ts' && e.to.startsWith('baselines/'))).toBe(true);
  });

  it('imports only reach the same layer or a lower one, and no strategy imports another', () => {
    expect(upwardImports(edges())).toEqual([]);
  });

  it('only the registry names strategies: the rest of the tool reaches them through the contract', () => {
    const offending = edges()
      .filter(({ from, to }) => layerOf(to).layer === 'strategy' && LAYERS.indexOf(layerOf(from).layer) > LAYERS.indexOf('layer') && from !== 'src/registry.ts')
      .map(({ from, to }) => `${from} imports ${to}`);
    expect(offending).toEqual([]);
    expect(edges().filter(({ from, to }) => layerOf(from).layer === 'layer' && layerOf(to).layer === 'strategy' && from !== 'src/registry.ts')).toEqual([]);
  });

  it('no two files import each other, directly or round a loop', () => {
    expect(fileCycles(edges())).toEqual([]);
  });

  it('no strategy id is quoted outside its folder, the registry and the results migration', () => {
    const files = sourceFiles().map((path) => ({ path, text: readFileSync(join(ROOT, path), 'utf8') }));
    expect(quotedStrategyIds(files, strategyIds())).toEqual([]);
  });

  describe('each check fails on a planted violation', () => {
    it('measure importing render', () => {
      expect(upwardImports([...edges(), { from: 'src/measure/profile.ts', to: 'src/render/profile.ts' }])).toContain('src/measure/profile.ts (measure) imports src/render/profile.ts (render)');
    });
    it('a file cycle', () => {
      expect(fileCycles([...edges(), { from: 'src/bench/sweep.ts', to: 'src/bench/run.ts' }, { from: 'src/bench/run.ts', to: 'src/bench/sweep.ts' }])).toContain('src/bench/run.ts ⇄ src/bench/sweep.ts');
    });
    it('an id switch in the tool', () => {
      const planted = { path: 'src/plan/traffic.ts', text: `if (strategy.id === '${REFERENCE_STRATEGY}') return 0;` };
      expect(quotedStrategyIds([planted], strategyIds())).toEqual([`src/plan/traffic.ts: '${REFERENCE_STRATEGY}'`]);
      expect(quotedStrategyIds([{ ...planted, path: 'src/registry.ts' }], strategyIds())).toEqual([]);
    });
    it('a file in no layer', () => {
      expect(() => layerOf('src/newfolder/x.ts')).toThrow(/no layer/);
    });
  });

  it("docs/design.md's layer map names the layers in this order, each folder and foundation or layer file where this test places it", () => {
    const design = readFileSync(join(ROOT, 'docs/design.md'), 'utf8');
    const section = design.slice(design.indexOf('## Code layout'), design.indexOf('## Conventions'));
    const rows = [...section.matchAll(/^\| (\w+) \| (.*?) \| .* \|$/gm)].filter((m) => m[1] !== 'layer' || m[2].includes('`')).map((m) => ({ layer: m[1], where: m[2] }));
    // The table says "strategies" for the strategy layer.
    expect(rows.map((r) => (r.layer === 'strategies' ? 'strategy' : r.layer))).toEqual([...LAYERS]);
    const where = (layer: Layer) => rows[LAYERS.indexOf(layer)].where;
    const named = (layer: Layer, name: string) => where(layer).includes(`\`${name}\``) || where(layer).includes(`\`src/${name}\``);
    const misplaced = [
      ...FOUNDATION_FILES.filter((f) => f !== 'src/offload-worker.ts').map((f) => f.slice(4, -3)).filter((n) => !named('foundation', n) && !named('foundation', `${n}.ts`)),
      ...LAYER_FILES.map((f) => f.slice(4, -3)).filter((n) => !named('layer', n) && !named('layer', `${n}.ts`)),
      ...Object.entries(FOLDER_LAYERS).filter(([folder, layer]) => !named(layer, `${folder}/`)).map(([folder]) => `src/${folder}/`),
    ];
    expect(misplaced).toEqual([]);
  });

  it('the top-level folders form no cycle, with src split at its layers', () => {
    const node = (file: string) => {
      const { layer } = layerOf(file);
      return file.startsWith('src/') ? `src:${layer}` : file.split('/')[0];
    };
    const graph = new Map<string, Set<string>>();
    for (const { from, to } of edges()) {
      if (node(from) === node(to)) continue;
      if (!graph.has(node(from))) graph.set(node(from), new Set());
      graph.get(node(from))!.add(node(to));
    }
    const visiting = new Set<string>();
    const done = new Set<string>();
    const cycles: string[] = [];
    const visit = (n: string, path: string[]) => {
      if (done.has(n)) return;
      if (visiting.has(n)) return void cycles.push([...path.slice(path.indexOf(n)), n].join(' → '));
      visiting.add(n);
      for (const m of graph.get(n) ?? []) visit(m, [...path, n]);
      visiting.delete(n);
      done.add(n);
    };
    for (const n of graph.keys()) visit(n, []);
    expect(cycles).toEqual([]);
  });
});
