import { findPreset, formatSkew, layerConfig, type LayerConfig } from '../config.js';
import { findStrategy } from '../registry.js';
import type { CaseConfig, SweepSpec } from './schema.js';

export type { SweepSpec } from './schema.js';

/*
 * A sweep's cases: the cross product a SweepSpec stands for (`sweepCases`), and each case's key,
 * label and layer.
 */

/** One case of a sweep: its config as results.json records it, and the key built from all of it. */
export interface SweepCase {
  key: string;
  config: CaseConfig;
}

/**
 * The layer a case runs: the one place a case's capacity factor becomes the layer's. A dropless
 * case has none (null in its config and its key) and computes the cf = 0 function, whose
 * capacity is the busiest expert's load.
 */
export function caseLayer(config: CaseConfig): LayerConfig {
  const { impl: _impl, pass: _pass, capacityFactor, ...layer } = config;
  return { ...layer, capacityFactor: capacityFactor ?? 0 };
}

export interface SweepCases {
  cases: SweepCase[];
  axes: Record<string, (number | string)[]>;
  notes: string[];
}

export function caseKey(c: CaseConfig): string {
  return [
    c.impl,
    `T${c.tokens}`,
    `d${c.hidden}`,
    `h${c.ffn}`,
    `E${c.experts}`,
    `k${c.topK}`,
    c.activation,
    `cf${c.capacityFactor ?? '-'}`,
    c.checkpoint,
    c.dtype,
    formatSkew(c.skew),
    // Only balanced cases say so: top-k keys stay those of files written before --routing.
    ...(c.routing === 'balanced' ? ['balanced'] : []),
    `norm${c.normalizeGates ? 1 : 0}`,
    `aux${c.auxLoss}`,
    `seed${c.seed}`,
    c.pass,
  ].join('|');
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
                const capacityFactor = strategy.dropless ? null : cf;
                // Validated as the layer it runs.
                const layer = layerConfig({ ...spec, tokens: T, hidden: d, ffn: h, experts: E, topK: k, capacityFactor: capacityFactor ?? 0 });
                const config: CaseConfig = { impl: id, ...layer, capacityFactor, pass: spec.pass };
                const key = caseKey(config);
                if (seen.has(key)) continue;
                seen.add(key);
                cases.push({ key, config });
              }
          }
    }
  if (skippedK) notes.push(`skipped ${skippedK} combination(s) with top-k larger than the number of experts`);
  if (cfIgnored) notes.push(`dropless strategies (${spec.impl.filter((s) => findStrategy(s).dropless).join(', ')}) ignore --capacity-factor: one case each instead of one per factor`);
  const axes: Record<string, (number | string)[]> = { tokens, hidden, experts, topK, capacityFactor: spec.capacityFactor };
  if (spec.ffn) axes.ffn = spec.ffn;
  return { cases, axes, notes };
}
