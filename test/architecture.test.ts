import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The house plan (docs/design.md#code-layout), read from the import graph so that it stays true:
 * every file belongs to one layer, and imports only reach its own layer or the ones below. A
 * strategy is one folder (src/zero-buffer, baselines/<name>) and imports no other strategy.
 */
const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), '..'));

const LAYERS = ['foundation', 'kernels', 'contract', 'strategy', 'app', 'commands'] as const;
type Layer = (typeof LAYERS)[number];

const FOUNDATION_FILES = ['config', 'errors', 'f16', 'units', 'arrays', 'rng', 'fill', 'fs', 'npy', 'pid'].map((n) => `src/${n}.ts`);

function layerOf(file: string): { layer: Layer; group: string } {
  const [top, second] = file.split('/');
  if (top === 'commands') return { layer: 'commands', group: top };
  if (top === 'kernels') return { layer: 'kernels', group: top };
  if (top === 'baselines') return { layer: 'strategy', group: `baselines/${second}` };
  if (FOUNDATION_FILES.includes(file) || second === 'gpu') return { layer: 'foundation', group: 'foundation' };
  if (second === 'strategy') return { layer: 'contract', group: 'src/strategy' };
  if (second === 'zero-buffer') return { layer: 'strategy', group: 'src/zero-buffer' };
  return { layer: 'app', group: 'app' };
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
    const offending = edges()
      .filter(({ from, to }) => {
        const a = layerOf(from);
        const b = layerOf(to);
        if (LAYERS.indexOf(b.layer) > LAYERS.indexOf(a.layer)) return true;
        return a.layer === 'strategy' && b.layer === 'strategy' && a.group !== b.group;
      })
      .map(({ from, to }) => `${from} (${layerOf(from).layer}) imports ${to} (${layerOf(to).layer})`);
    expect(offending).toEqual([]);
  });

  it('only the registry names strategies: the rest of the tool reaches them through the contract', () => {
    const offending = edges()
      .filter(({ from, to }) => layerOf(to).layer === 'strategy' && ['app', 'commands'].includes(layerOf(from).layer) && from !== 'src/registry.ts')
      .map(({ from, to }) => `${from} imports ${to}`);
    expect(offending).toEqual([]);
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
