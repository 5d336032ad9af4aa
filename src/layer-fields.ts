import { ACTIVATIONS, CHECKPOINTS, DEFAULT_LAYER, DTYPES, formatSkew, parseSkew, ROUTINGS, type LayerConfig } from './config.js';
import { LAYER_DIMENSION_MAX, parseIntegerFlag, parseNonNegativeFloat } from './flag-parsers.js';

/*
 * The one table of the layer's settings as the command line gives them (docs/design.md#the-layer):
 * each flag, the LayerConfig field it sets, how its text is read, its help, and its place and
 * text in a case's key. The commands' layer flags (src/cli/flags.ts), bench's comma lists, the
 * sweep's defaults and the flag a `--resume` conflict names (src/bench/sweep.ts) and the case key
 * (src/bench/cases.ts) are all read from it, so a new setting is one entry here.
 */

/**
 * The layer as a case's record and key hold it (src/bench/schema.ts CaseConfig): a strategy that
 * ignores the capacity factor (dropless) records none, null.
 */
export type RecordedLayer = Omit<LayerConfig, 'capacityFactor'> & { capacityFactor: number | null };

interface FieldCommon<K extends keyof LayerConfig> {
  flag: string;
  field: K;
  help: string;
  helpValue?: string;
  /**
   * A field bench sweeps as a comma list (`--experts 4,8,16`), each item read as the single flag
   * reads it: the list's help, and where its default comes from: the preset's shape, or the
   * layer's default as a list of one.
   */
  list?: { help: string; helpValue: string; default: 'preset' | 'layer' };
  /** No default of its own: layerConfig works it out from the other fields (normalizeGates from k). */
  derivedDefault?: true;
  /**
   * Its part of a case's key: `at`, its place among the layer's parts (between the strategy and
   * the pass), and `show`, its text, or null for none. The key predates this table and keeps its
   * own order (dtype after checkpoint, not where the usage line has it): results files and the
   * gate's baselines match cases by it, byte for byte. Required, so a new field must say how it
   * enters the key.
   */
  key: { at: number; show: (value: RecordedLayer[K]) => string | null };
}

type Reading<V> =
  /** Text read by a parser that throws a one-line UsageError naming the flag. */
  | { parse: (text: string, flag: string) => V }
  /** One of a fixed set of words. */
  | { options: readonly V[] }
  /** A switch with a --no- form. */
  | { negatable: true };

export type LayerField = { [K in keyof LayerConfig]: FieldCommon<K> & Reading<LayerConfig[K]> }[keyof LayerConfig];

const dimension = (text: string, flag: string) => parseIntegerFlag(text, flag, 1, LAYER_DIMENSION_MAX);
const integers = '<n,n,…>';

/** In the order the commands' usage lines show them. */
export const LAYER_FIELDS = [
  { flag: 'tokens', field: 'tokens', parse: dimension, help: `T, tokens in the batch [default: ${DEFAULT_LAYER.tokens}]`, list: { help: "T values to sweep [default: the preset's]", helpValue: integers, default: 'preset' }, key: { at: 0, show: (T) => `T${T}` } },
  { flag: 'hidden', field: 'hidden', parse: dimension, help: `d, hidden size [default: ${DEFAULT_LAYER.hidden}]`, list: { help: "d values [default: the preset's]", helpValue: integers, default: 'preset' }, key: { at: 1, show: (d) => `d${d}` } },
  { flag: 'ffn', field: 'ffn', parse: dimension, help: `h, expert FFN size [default: ${DEFAULT_LAYER.ffn}]`, list: { help: "h values [default: the preset's]", helpValue: integers, default: 'preset' }, key: { at: 2, show: (h) => `h${h}` } },
  { flag: 'experts', field: 'experts', parse: dimension, help: `E, number of experts [default: ${DEFAULT_LAYER.experts}]`, list: { help: "E values to sweep [default: the preset's]", helpValue: integers, default: 'preset' }, key: { at: 3, show: (E) => `E${E}` } },
  { flag: 'top-k', field: 'topK', parse: dimension, help: `k, experts per token [default: ${DEFAULT_LAYER.topK}]`, list: { help: "k values to sweep [default: the preset's]", helpValue: integers, default: 'preset' }, key: { at: 4, show: (k) => `k${k}` } },
  { flag: 'activation', field: 'activation', options: ACTIVATIONS, help: `expert MLP: SwiGLU (3 matrices) or a 2-matrix MLP [default: ${DEFAULT_LAYER.activation}]`, key: { at: 5, show: (a) => a } },
  {
    flag: 'capacity-factor',
    field: 'capacityFactor',
    parse: parseNonNegativeFloat,
    help: `capacity strategies: C = k·⌊cf·⌈T/E⌉⌋; 0 = the busiest expert's load [default: ${DEFAULT_LAYER.capacityFactor}]`,
    helpValue: '<cf>',
    list: { help: `capacity factors for capacity strategies (0 = busiest expert) [default: ${DEFAULT_LAYER.capacityFactor}]`, helpValue: '<x,x,…>', default: 'layer' },
    key: { at: 6, show: (cf) => `cf${cf ?? '-'}` },
  },
  {
    flag: 'checkpoint',
    field: 'checkpoint',
    options: CHECKPOINTS,
    help: `what the forward keeps for backward: a and b (activations), also u (none), nothing [R,h] (full) [default: ${DEFAULT_LAYER.checkpoint}]`,
    key: { at: 7, show: (c) => c },
  },
  {
    flag: 'skew',
    field: 'skew',
    parse: (text: string) => parseSkew(text),
    help: 'router bias: uniform, or zipf:<s> (β_e = −s·ln(e+1), hot low-numbered experts) [default: uniform]',
    helpValue: 'uniform|zipf:<s>',
    key: { at: 9, show: formatSkew },
  },
  {
    flag: 'routing',
    field: 'routing',
    options: ROUTINGS,
    help: `top-k: each token's k largest logits; balanced: pair t·k+j goes to expert (t·k+j) mod E, so every expert gets T·k/E pairs (the best case; gates stay the softmax probabilities; not with --skew zipf) [default: ${DEFAULT_LAYER.routing}]`,
    // Only balanced cases say so: top-k keys stay those of files written before --routing.
    key: { at: 10, show: (r) => (r === 'balanced' ? r : null) },
  },
  { flag: 'normalize-gates', field: 'normalizeGates', negatable: true, derivedDefault: true, help: 'renormalise the k gates to sum to 1 [default: only when k > 1]', key: { at: 11, show: (n) => `norm${n ? 1 : 0}` } },
  { flag: 'dtype', field: 'dtype', options: DTYPES, help: `storage type; f16 needs the adapter's shader-f16 [default: ${DEFAULT_LAYER.dtype}]`, key: { at: 8, show: (t) => t } },
  { flag: 'aux-loss', field: 'auxLoss', parse: parseNonNegativeFloat, help: `load-balancing loss coefficient α; 0 = off [default: ${DEFAULT_LAYER.auxLoss}]`, helpValue: '<alpha>', key: { at: 12, show: (a) => `aux${a}` } },
  { flag: 'seed', field: 'seed', parse: (text: string, flag: string) => parseIntegerFlag(text, flag, 0, 0xffffffff), help: `seed of the input generator [default: ${DEFAULT_LAYER.seed}]`, key: { at: 13, show: (s) => `seed${s}` } },
] as const satisfies readonly LayerField[];

/** The flag that sets a LayerConfig field, as a user types it (without the dashes). */
export function flagOfField(field: keyof LayerConfig): string {
  return LAYER_FIELDS.find((e) => e.field === field)!.flag;
}

/** The table in the case key's order (`key.at`), which is also the order a saved sweep lists its fields in. */
export const LAYER_FIELDS_IN_KEY_ORDER = [...LAYER_FIELDS].sort((a, b) => a.key.at - b.key.at);

/** The layer's parts of a case key, in the key's order, each as its entry shows it (none where it shows null). */
export function layerKeyParts(layer: RecordedLayer): string[] {
  const parts = LAYER_FIELDS_IN_KEY_ORDER.map((e) => (e.key.show as (value: unknown) => string | null)(layer[e.field]));
  return parts.filter((part): part is string => part !== null);
}
