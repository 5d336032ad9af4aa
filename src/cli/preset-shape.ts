import { findPreset, type LayerConfig } from '../config.js';
import { UsageError } from '../errors.js';
import type { LayerFlagValues } from './flags.js';

/**
 * A preset's one shape, for the commands that take one (plan, profile): a preset that sweeps a
 * size (quick's E = 4, 8, 16) needs that size given, and both commands refuse it alike with the
 * values to pick from, rather than one silently taking the first (issue 25).
 */
export function presetShape(name: string | undefined, flags: LayerFlagValues, command: string): Partial<LayerConfig> {
  if (!name) return {};
  const p = findPreset(name);
  const one = (values: number[], flag: string, given: number | undefined): number => {
    if (given !== undefined || values.length === 1) return given ?? values[0];
    throw new UsageError(`--preset ${p.name} sweeps ${flag} over ${values.join(', ')}; ${command} takes one shape: add --${flag} (one of ${values.join(', ')}, or any other)`);
  };
  const hidden = one(p.hidden, 'hidden', flags.hidden);
  return {
    tokens: p.tokens,
    hidden,
    ffn: p.ffn === 'x4' ? 4 * hidden : one(p.ffn, 'ffn', flags.ffn),
    experts: one(p.experts, 'experts', flags.experts),
    topK: one(p.topK, 'top-k', flags['top-k']),
  };
}
