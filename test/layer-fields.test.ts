import { describe, expect, it } from 'vitest';
import { DEFAULT_LAYER, type LayerConfig } from '../src/config.js';
import { LAYER_FIELDS, LAYER_FIELDS_IN_KEY_ORDER, type LayerField } from '../src/layer-fields.js';
import { layerConfigFromFlags, layerFlags, sweepListFlags } from '../src/cli/flags.js';
import { completeSweep, givenSweep, saveSweep } from '../src/bench/sweep.js';
import { UsageError } from '../src/errors.js';

describe('the layer-field table', () => {
  it('has one entry per LayerConfig field, each with its own flag', () => {
    expect(LAYER_FIELDS.map((e) => e.field).sort()).toEqual(Object.keys(DEFAULT_LAYER).sort());
    expect(new Set(LAYER_FIELDS.map((e) => e.flag)).size).toBe(LAYER_FIELDS.length);
    expect(Object.keys(layerFlags)).toEqual(LAYER_FIELDS.map((e) => e.flag));
  });

  it('maps every flag to its field, and a flag not given leaves the base value', () => {
    const flags = { tokens: 96, 'top-k': 3, 'capacity-factor': 0.5, 'normalize-gates': false, 'aux-loss': 0.01, dtype: 'f16', seed: 7 } as const;
    const config = layerConfigFromFlags(flags, { experts: 6 });
    expect(config).toMatchObject({ tokens: 96, topK: 3, capacityFactor: 0.5, normalizeGates: false, auxLoss: 0.01, dtype: 'f16', seed: 7, experts: 6, hidden: DEFAULT_LAYER.hidden });
  });

  it("bench's list flags read each item as the single flag reads it", async () => {
    type Parses = Record<string, { parse: (t: string, c: unknown, o: unknown) => Promise<unknown> }>;
    const single = async (flag: string, text: string) => (layerFlags as unknown as Parses)[flag].parse(text, {}, { name: flag });
    const list = async (flag: string, text: string) => (sweepListFlags as unknown as Parses)[flag].parse(text, {}, { name: flag });
    expect(Object.keys(sweepListFlags)).toEqual(['tokens', 'hidden', 'ffn', 'experts', 'top-k', 'capacity-factor']);
    expect(await list('experts', '4, 8,16')).toEqual([4, 8, 16]);
    expect(await list('capacity-factor', '0,1.25')).toEqual([0, 1.25]);
    for (const [flag, bad] of [['tokens', '0'], ['top-k', 'x'], ['capacity-factor', '-1']]) {
      const a = await single(flag, bad).catch((e: Error) => e);
      const b = await list(flag, `1,${bad}`).catch((e: Error) => e);
      expect(a).toBeInstanceOf(UsageError);
      expect(b).toBeInstanceOf(UsageError);
      expect((b as Error).message).toBe((a as Error).message);
    }
  });

  it('gives the sweep its fields by the same table, with the defaults the flags name', () => {
    const flags = { experts: [4, 8], 'top-k': [2], 'capacity-factor': [1, 1.5], 'aux-loss': 0.1, 'normalize-gates': true, impl: undefined, preset: 'quick', pass: 'forward' };
    const given = givenSweep(flags);
    expect(given).toMatchObject({ experts: [4, 8], topK: [2], capacityFactor: [1, 1.5], auxLoss: 0.1, normalizeGates: true, preset: 'quick', pass: 'forward' });
    const spec = completeSweep({});
    // Sizes come from the preset; the capacity factor is a list of the layer's default; normalizeGates stays k's rule.
    expect(spec.tokens).toBeUndefined();
    expect(spec.capacityFactor).toEqual([DEFAULT_LAYER.capacityFactor]);
    expect(spec.normalizeGates).toBeUndefined();
    const fixed: (keyof LayerConfig)[] = ['activation', 'checkpoint', 'dtype', 'skew', 'routing', 'auxLoss', 'seed'];
    for (const field of fixed) expect(spec[field as keyof typeof spec]).toEqual(DEFAULT_LAYER[field]);
    expect(spec.pass).toBe('train');
  });

  it('gives every field one place in the case key: the places are 0..n−1, each once', () => {
    expect(LAYER_FIELDS.map((e) => e.key.at).sort((a, b) => a - b)).toEqual(LAYER_FIELDS.map((_, i) => i));
    // The key's order is not the usage line's: dtype comes after checkpoint, as in every results file.
    expect(LAYER_FIELDS_IN_KEY_ORDER.map((e) => e.field)).toEqual(['tokens', 'hidden', 'ffn', 'experts', 'topK', 'activation', 'capacityFactor', 'checkpoint', 'dtype', 'skew', 'routing', 'normalizeGates', 'auxLoss', 'seed']);
    // A field without its key part is not an entry of the table (checked by `npm run typecheck`).
    // @ts-expect-error key is required
    const keyless: LayerField = { flag: 'seed', field: 'seed', parse: Number, help: 'seed' };
    expect('key' in keyless).toBe(false);
  });

  it('saves a sweep with its listed fields, then its fixed ones, in the key order (dtype after checkpoint)', () => {
    const saved = saveSweep(completeSweep({ experts: [4], tokens: [64] }));
    expect(Object.keys(saved)).toEqual(['impl', 'preset', 'tokens', 'hidden', 'ffn', 'experts', 'topK', 'capacityFactor', 'activation', 'checkpoint', 'dtype', 'skew', 'routing', 'normalizeGates', 'auxLoss', 'seed', 'pass']);
  });
});
