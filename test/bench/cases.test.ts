import { readdirSync } from 'node:fs';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { caseConfig, caseKey, configKey, sweepCases } from '../../src/bench/cases.js';
import { readBenchResults } from '../../src/bench/read.js';
import type { CaseConfig } from '../../src/bench/schema.js';
import { completeSweep, sweepFromSaved } from '../../src/bench/sweep.js';
import { DEFAULT_LAYER } from '../../src/config.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Every committed results file: the reports' results.json (and the gate's baselines), and the test fixture. */
function committedResults(): string[] {
  const reports = (readdirSync(join(root, 'reports'), { recursive: true }) as string[])
    .filter((path) => path.endsWith('results.json') || (path.startsWith(`baselines${sep}`) && path.endsWith('.json')))
    .map((path) => join('reports', path));
  return [...reports, join('test', 'fixtures', 'bench-results.json')].sort();
}

const config = (over: Partial<CaseConfig> = {}): CaseConfig => ({ impl: 'tutel', ...DEFAULT_LAYER, pass: 'train', ...over });

describe('the case key, derived from the layer-field table', () => {
  it('is the key every committed results file recorded for each of its cases, and the key its saved sweep plans', async () => {
    const files = committedResults();
    expect(files.length).toBeGreaterThanOrEqual(8);
    let cases = 0;
    for (const path of files) {
      // The project's reader: migrated (v1 files too) and validated.
      const results = await readBenchResults(join(root, path), 'baseline');
      for (const c of results.cases) expect(caseKey(c.config), path).toBe(c.key);
      cases += results.cases.length;
      // Files that saved their sweep: planning it again gives the same keys (a shard or a cut-short sweep holds some of them).
      if (!results.settings.sweep) continue;
      const planned = new Set(sweepCases(sweepFromSaved(results.settings.sweep)).cases.map((c) => c.key));
      for (const c of results.cases) expect(planned.has(c.key), `${path}: ${c.key}`).toBe(true);
    }
    expect(cases).toBeGreaterThan(50);
  });

  it('writes each field as the keys always have, a dropless case with cf-, a balanced case with its routing', () => {
    expect(caseKey(config())).toBe('tutel|T512|d64|h128|E8|k2|swiglu|cf1|activations|f32|uniform|norm1|aux0|seed1|train');
    const odd = config({ impl: 'zero-buffer', capacityFactor: null, activation: 'gelu', checkpoint: 'full', dtype: 'f16', skew: { kind: 'zipf', s: 1.2 }, normalizeGates: false, auxLoss: 0.01, seed: 0, pass: 'forward' });
    expect(caseKey(odd)).toBe('zero-buffer|T512|d64|h128|E8|k2|gelu|cf-|full|f16|zipf:1.2|norm0|aux0.01|seed0|forward');
    expect(caseKey(config({ routing: 'balanced', capacityFactor: 0 }))).toBe('tutel|T512|d64|h128|E8|k2|swiglu|cf0|activations|f32|uniform|balanced|norm1|aux0|seed1|train');
    // A v1 config read without migration has no routing: top-k, as its key says.
    const { routing: _routing, ...noRouting } = config();
    expect(caseKey(noRouting as CaseConfig)).toBe(caseKey(config()));
    expect(configKey(config({ capacityFactor: 2 }))).toBe(configKey(config({ impl: 'megablocks', capacityFactor: null })));
  });

  it('holds a case as {impl, pass, layer}: a dropless case runs cf 0 and records none; a capacity case records its own', () => {
    const { cases } = sweepCases(completeSweep({ impl: ['zero-buffer', 'gshard'], tokens: [64], hidden: [16], ffn: [32], experts: [4], topK: [2], capacityFactor: [0.5, 2] }));
    expect(cases.map((c) => [c.impl, c.layer.capacityFactor])).toEqual([['zero-buffer', 0], ['gshard', 0.5], ['gshard', 2]]);
    for (const c of cases) {
      expect(Object.keys(c).sort()).toEqual(['impl', 'key', 'layer', 'pass']);
      expect(c.key).toBe(caseKey(caseConfig(c)));
    }
    expect(caseConfig(cases[0])).toEqual({ impl: 'zero-buffer', ...cases[0].layer, capacityFactor: null, pass: 'train' });
    expect(caseConfig(cases[2]).capacityFactor).toBe(2);
    // The record lists its fields as results files always have: impl, the layer's in LayerConfig's order, pass.
    expect(Object.keys(caseConfig(cases[1]))).toEqual(['impl', ...Object.keys(DEFAULT_LAYER), 'pass']);
  });
});
