import { findPreset, layerConfig, type LayerConfig } from '../config.js';
import { layerKeyParts } from '../layer-fields.js';
import { findStrategy } from '../registry.js';
import type { CaseConfig, CasePass, SweepSpec } from './schema.js';

export type { SweepSpec } from './schema.js';

/*
 * A sweep's cases: the cross product a SweepSpec stands for (`sweepCases`), and each case's key,
 * label and layer.
 */

/**
 * One case of a sweep, each value once: the strategy (`--impl`), the pass it times, and the layer
 * it runs. A dropless strategy's layer has capacity factor 0, the function it computes (capacity =
 * the busiest expert's load); its record and key say it has none (`caseConfig`). `key` is
 * caseKey of that record, kept since every reader matches on it.
 */
export interface SweepCase {
  key: string;
  impl: string;
  pass: CasePass;
  layer: LayerConfig;
}

/**
 * A case as results.json records it (CaseConfig: the layer's fields, flat, beside impl and pass):
 * the one place a case's layer becomes its record, the capacity factor null where the strategy
 * ignores it.
 */
export function caseConfig(c: Omit<SweepCase, 'key'>): CaseConfig {
  return { impl: c.impl, ...c.layer, capacityFactor: findStrategy(c.impl).dropless ? null : c.layer.capacityFactor, pass: c.pass };
}

export interface SweepCases {
  cases: SweepCase[];
  axes: Record<string, (number | string)[]>;
  notes: string[];
}

/**
 * A case's identity, which results files, the gate's baselines and --resume match cases on: the
 * strategy, the layer's parts as the layer-field table orders and writes them (src/layer-fields.ts
 * `key`), and the pass.
 */
export function caseKey(c: CaseConfig): string {
  return [c.impl, ...layerKeyParts(c), c.pass].join('|');
}

/** The same key without the strategy: cases that share it are compared with each other. */
export function configKey(c: CaseConfig): string {
  return caseKey({ ...c, impl: '*', capacityFactor: null });
}

/** A case in progress lines and reports: the strategy, the sizes and the capacity factor. */
export function caseLabel(c: CaseConfig): string {
  return `${c.impl} T=${c.tokens} d=${c.hidden} h=${c.ffn} E=${c.experts} k=${c.topK}${c.capacityFactor === null ? '' : ` cf=${c.capacityFactor}`}`;
}

/**
 * The cross product of the sweep, preset lists first, explicit flags over them. Combinations that
 * cannot exist (k > E) are skipped with a note; dropless strategies ignore the capacity factor
 * (one case instead of one per cf, said once).
 */
export function sweepCases(spec: SweepSpec): SweepCases {
  const preset = findPreset(spec.preset ?? 'quick');
  const tokens = spec.tokens ?? [preset.tokens];
  const hidden = spec.hidden ?? preset.hidden;
  const experts = spec.experts ?? preset.experts;
  const topK = spec.topK ?? preset.topK;
  const notes: string[] = [];
  const cases: SweepCase[] = [];
  const seen = new Set<string>();
  let skippedK = 0;
  let cfIgnored = false;
  for (const T of tokens)
    for (const d of hidden) {
      const ffns = spec.ffn ?? (preset.ffn === 'x4' ? [4 * d] : preset.ffn);
      for (const h of ffns)
        for (const E of experts)
          for (const k of topK) {
            if (k > E) {
              skippedK++;
              continue;
            }
            for (const cf of spec.capacityFactor)
              for (const id of spec.impl) {
                const strategy = findStrategy(id);
                if (strategy.dropless && spec.capacityFactor.length > 1) cfIgnored = true;
                // Validated as the layer it runs.
                const layer = layerConfig({ ...spec, tokens: T, hidden: d, ffn: h, experts: E, topK: k, capacityFactor: strategy.dropless ? 0 : cf });
                const key = caseKey(caseConfig({ impl: id, pass: spec.pass, layer }));
                if (seen.has(key)) continue;
                seen.add(key);
                cases.push({ key, impl: id, pass: spec.pass, layer });
              }
          }
    }
  if (skippedK) notes.push(`skipped ${skippedK} combination(s) with top-k larger than the number of experts`);
  if (cfIgnored) notes.push(`dropless strategies (${spec.impl.filter((s) => findStrategy(s).dropless).join(', ')}) ignore --capacity-factor: one case each instead of one per factor`);
  const axes: Record<string, (number | string)[]> = { tokens, hidden, experts, topK, capacityFactor: spec.capacityFactor };
  if (spec.ffn) axes.ffn = spec.ffn;
  return { cases, axes, notes };
}
