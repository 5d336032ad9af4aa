import { Flags, type Interfaces } from '@oclif/core';
import { parseIntegerFlag, parseNonNegativeFloat } from '../flag-parsers.js';
import { UsageError } from '../errors.js';
import { parseBytes } from '../units.js';
import { DEFAULT_GATE_OPTIONS, type GateOptions } from '../gate/compare.js';

/** "10%" or "0.1" → 0.1; a threshold of 0 would call every wobble a change, 1000% none. */
export function parseThreshold(text: string, flag = 'threshold'): number {
  const trimmed = text.trim();
  const percent = trimmed.endsWith('%');
  const value = parseNonNegativeFloat(percent ? trimmed.slice(0, -1) : trimmed, flag) / (percent ? 100 : 1);
  if (!(value > 0 && value <= 10)) throw new UsageError(`--${flag}: "${text}" is not allowed; use a fraction or a percentage above 0, e.g. 10% or 0.1`);
  return value;
}

/** Bytes, as every size flag (B, KiB, MiB, GiB; a bare number is GiB), with 0 allowed: exact. */
export function parseTolerance(text: string, flag = 'memory-tolerance'): number {
  if (/^\s*0+(\.0*)?\s*(b|kib|mib|gib|tib)?\s*$/i.test(text)) return 0;
  return parseBytes(text, flag);
}

export const BASELINE_DESCRIPTION = 'moeblaze.bench results file (v2, or v1) to compare with (the committed baseline)';

/**
 * The verdict's flags, shared by `moeblaze gate` and `bench --baseline` (which adds --baseline
 * itself, optional there, and retriesFlag).
 */
export const gateFlags = {
  threshold: Flags.custom<number>({
    parse: async (input, _ctx, opts) => parseThreshold(input, opts.name),
    description: 'a median must be worse by more than this (and the runs must separate) to count [default: 10%]',
    helpValue: '<pct>',
    helpGroup: 'GATE',
  })(),
  'memory-tolerance': Flags.custom<number>({
    parse: async (input, _ctx, opts) => parseTolerance(input, opts.name),
    description: 'bytes a step or activation peak may grow before it is MEM+ (B, KiB, MiB, GiB; a bare number is GiB) [default: 0]',
    helpValue: '<size>',
    helpGroup: 'GATE',
  })(),
  strict: Flags.boolean({ description: 'INCOMPARABLE (another testbed, a case that no longer runs) fails too', helpGroup: 'GATE' }),
  'advisory-speed': Flags.boolean({ description: 'print speed verdicts but fail on memory only', helpGroup: 'GATE' }),
  'absolute-speed': Flags.boolean({
    description: 'absolute step times fail the gate too (by default they are shown with each run\'s machine load but never fail: two runs drift apart beyond either run\'s spread, idle machine or not)',
    helpGroup: 'GATE',
  }),
  'update-baseline': Flags.boolean({ description: 'after the verdict, replace the baseline file with the current results (atomically, through a symlink; says so on stderr); refused when the gate fails', helpGroup: 'GATE' }),
  force: Flags.boolean({
    description: 'with --update-baseline: write the baseline even from a run that fails the gate or has cases failing their correctness check',
    dependsOn: ['update-baseline'],
    helpGroup: 'GATE',
  }),
};

/** Only where the gate runs the benchmark itself (bench --baseline). */
export const retriesFlag = Flags.custom<number>({
  parse: async (input, _ctx, opts) => parseIntegerFlag(input, opts.name, 0, 20),
  description: 're-measure ambiguous or noisy cases up to this many times before the verdict [default: 2]',
  helpGroup: 'GATE',
});

export type GateFlagValues = Partial<Interfaces.InferredFlags<typeof gateFlags>>;

export function gateOptionsFromFlags(flags: GateFlagValues, noiseTarget: number | null = null): GateOptions {
  return {
    ...DEFAULT_GATE_OPTIONS,
    threshold: flags.threshold ?? DEFAULT_GATE_OPTIONS.threshold,
    memoryTolerance: flags['memory-tolerance'] ?? DEFAULT_GATE_OPTIONS.memoryTolerance,
    strict: flags.strict ?? false,
    advisorySpeed: flags['advisory-speed'] ?? false,
    absoluteSpeed: flags['absolute-speed'] ?? false,
    noiseTarget,
  };
}

export const DEFAULT_RETRIES = 2;

/**
 * The verdict's flags as `bench` takes them: each needs --baseline there (without one there is no
 * verdict, and a --strict that changes nothing would be accepted silently).
 */
export const benchGateFlags: typeof gateFlags = {
  threshold: { ...gateFlags.threshold, dependsOn: ['baseline'] },
  'memory-tolerance': { ...gateFlags['memory-tolerance'], dependsOn: ['baseline'] },
  strict: { ...gateFlags.strict, dependsOn: ['baseline'] },
  'advisory-speed': { ...gateFlags['advisory-speed'], dependsOn: ['baseline'] },
  'absolute-speed': { ...gateFlags['absolute-speed'], dependsOn: ['baseline'] },
  force: { ...gateFlags.force, dependsOn: ['baseline', 'update-baseline'] },
  'update-baseline': { ...gateFlags['update-baseline'], dependsOn: ['baseline'] },
};
