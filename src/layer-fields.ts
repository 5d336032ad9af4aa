import { ACTIVATIONS, CHECKPOINTS, DEFAULT_LAYER, DTYPES, parseSkew, ROUTINGS, type LayerConfig } from './config.js';
import { LAYER_DIMENSION_MAX, parseIntegerFlag, parseNonNegativeFloat } from './flag-parsers.js';

/*
 * The one table of the layer's settings as the command line gives them (docs/design.md#the-layer):
 * each flag, the LayerConfig field it sets, how its text is read and its help. The commands'
 * layer flags (src/cli/flags.ts), bench's comma lists, the sweep's defaults and the flag a
 * `--resume` conflict names (src/bench/sweep.ts) are all read from it, so a new setting is one
 * entry here.
 */

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
  { flag: 'tokens', field: 'tokens', parse: dimension, help: `T, tokens in the batch [default: ${DEFAULT_LAYER.tokens}]`, list: { help: "T values to sweep [default: the preset's]", helpValue: integers, default: 'preset' } },
  { flag: 'hidden', field: 'hidden', parse: dimension, help: `d, hidden size [default: ${DEFAULT_LAYER.hidden}]`, list: { help: "d values [default: the preset's]", helpValue: integers, default: 'preset' } },
  { flag: 'ffn', field: 'ffn', parse: dimension, help: `h, expert FFN size [default: ${DEFAULT_LAYER.ffn}]`, list: { help: "h values [default: the preset's]", helpValue: integers, default: 'preset' } },
  { flag: 'experts', field: 'experts', parse: dimension, help: `E, number of experts [default: ${DEFAULT_LAYER.experts}]`, list: { help: "E values to sweep [default: the preset's]", helpValue: integers, default: 'preset' } },
  { flag: 'top-k', field: 'topK', parse: dimension, help: `k, experts per token [default: ${DEFAULT_LAYER.topK}]`, list: { help: "k values to sweep [default: the preset's]", helpValue: integers, default: 'preset' } },
  { flag: 'activation', field: 'activation', options: ACTIVATIONS, help: `expert MLP: SwiGLU (3 matrices) or a 2-matrix MLP [default: ${DEFAULT_LAYER.activation}]` },
  {
    flag: 'capacity-factor',
    field: 'capacityFactor',
    parse: parseNonNegativeFloat,
    help: `capacity strategies: C = k·⌊cf·⌈T/E⌉⌋; 0 = the busiest expert's load [default: ${DEFAULT_LAYER.capacityFactor}]`,
    helpValue: '<cf>',
    list: { help: `capacity factors for capacity strategies (0 = busiest expert) [default: ${DEFAULT_LAYER.capacityFactor}]`, helpValue: '<x,x,…>', default: 'layer' },
  },
  {
    flag: 'checkpoint',
    field: 'checkpoint',
    options: CHECKPOINTS,
    help: `what the forward keeps for backward: a and b (activations), also u (none), nothing [R,h] (full) [default: ${DEFAULT_LAYER.checkpoint}]`,
  },
  {
    flag: 'skew',
    field: 'skew',
    parse: (text: string) => parseSkew(text),
    help: 'router bias: uniform, or zipf:<s> (β_e = −s·ln(e+1), hot low-numbered experts) [default: uniform]',
    helpValue: 'uniform|zipf:<s>',
  },
  {
    flag: 'routing',
    field: 'routing',
    options: ROUTINGS,
    help: `top-k: each token's k largest logits; balanced: pair t·k+j goes to expert (t·k+j) mod E, so every expert gets T·k/E pairs (the best case; gates stay the softmax probabilities; not with --skew zipf) [default: ${DEFAULT_LAYER.routing}]`,
  },
  { flag: 'normalize-gates', field: 'normalizeGates', negatable: true, derivedDefault: true, help: 'renormalise the k gates to sum to 1 [default: only when k > 1]' },
  { flag: 'dtype', field: 'dtype', options: DTYPES, help: `storage type; f16 needs the adapter's shader-f16 [default: ${DEFAULT_LAYER.dtype}]` },
  { flag: 'aux-loss', field: 'auxLoss', parse: parseNonNegativeFloat, help: `load-balancing loss coefficient α; 0 = off [default: ${DEFAULT_LAYER.auxLoss}]`, helpValue: '<alpha>' },
  { flag: 'seed', field: 'seed', parse: (text: string, flag: string) => parseIntegerFlag(text, flag, 0, 0xffffffff), help: `seed of the input generator [default: ${DEFAULT_LAYER.seed}]` },
] as const satisfies readonly LayerField[];

/** The flag that sets a LayerConfig field, as a user types it (without the dashes). */
export function flagOfField(field: keyof LayerConfig): string {
  return LAYER_FIELDS.find((e) => e.field === field)!.flag;
}
