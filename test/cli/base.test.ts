import { Errors } from '@oclif/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BaseCommand, describeFailure, withGpu } from '../../src/cli/base.js';
import { gpuFlags, layerConfigFromFlags, layerFlags, sizeFlag } from '../../src/cli/flags.js';
import { parseIntegerFlag, parseNonNegativeFloat } from '../../src/flag-parsers.js';
import { EnvironmentError, GpuError, UsageError } from '../../src/errors.js';
import { NO_ADAPTER_HELP } from '../../src/gpu/runtime.js';
import { packageRoot } from '../../src/measure/provenance.js';

/** A command with every shared flag, to exercise parsing and the error contract in-process. */
class Probe extends BaseCommand {
  static override flags = { ...gpuFlags, ...layerFlags, 'memory-limit': sizeFlag({ description: 'budget' }) };
  async run(): Promise<unknown> {
    const { flags } = await this.parse(Probe);
    return { config: layerConfigFromFlags(flags), memoryLimit: flags['memory-limit'] ?? null, provenance: this.provenance() };
  }
}

async function probe(argv: string[]): Promise<{ result: unknown; exitCode: number | undefined; stderr: string }> {
  const writes: string[] = [];
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    writes.push(String(chunk));
    return true;
  });
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  process.exitCode = undefined;
  try {
    const result = await Probe.run(argv, packageRoot());
    return { result, exitCode: process.exitCode as number | undefined, stderr: writes.join('') };
  } finally {
    spy.mockRestore();
    stdout.mockRestore();
  }
}

afterEach(() => {
  process.exitCode = undefined;
});

describe('shared flags', () => {
  it('parses the layer flags into a validated LayerConfig', async () => {
    const { result, exitCode } = await probe(['--tokens', '256', '--experts', '4', '--top-k', '1', '--capacity-factor', '1.25', '--skew', 'zipf:1.2', '--activation', 'gelu', '--aux-loss', '1e-2', '--seed', '0', '--memory-limit', '512MiB']);
    expect(exitCode).toBeUndefined();
    const { config, memoryLimit, provenance } = result as { config: Record<string, unknown>; memoryLimit: number; provenance: { commandLine: string } };
    expect(config).toMatchObject({ tokens: 256, experts: 4, topK: 1, capacityFactor: 1.25, skew: { kind: 'zipf', s: 1.2 }, activation: 'gelu', auxLoss: 0.01, seed: 0 });
    // Unset --normalize-gates follows k > 1; defaults fill the rest.
    expect(config).toMatchObject({ normalizeGates: false, hidden: 64, checkpoint: 'activations', dtype: 'f32' });
    expect(memoryLimit).toBe(512 * 2 ** 20);
    expect(provenance.commandLine).toBe('moeblaze probe --tokens 256 --experts 4 --top-k 1 --capacity-factor 1.25 --skew zipf:1.2 --activation gelu --aux-loss 1e-2 --seed 0 --memory-limit 512MiB');
  });

  it('--normalize-gates / --no-normalize-gates override the k > 1 rule; a bare size is GiB', async () => {
    expect(((await probe(['--top-k', '1', '--normalize-gates'])).result as { config: { normalizeGates: boolean } }).config.normalizeGates).toBe(true);
    expect(((await probe(['--no-normalize-gates'])).result as { config: { normalizeGates: boolean } }).config.normalizeGates).toBe(false);
    expect(((await probe([])).result as { config: { normalizeGates: boolean } }).config.normalizeGates).toBe(true);
    expect(((await probe(['--memory-limit', '2'])).result as { memoryLimit: number }).memoryLimit).toBe(2 * 2 ** 30);
  });

  it('flags override a base (a preset\'s sizes); flags not given leave it as it is', () => {
    const preset = { tokens: 4096, hidden: 7168, ffn: 2048, experts: 256, topK: 8 };
    expect(layerConfigFromFlags({ experts: 64, 'aux-loss': 0.5 }, preset)).toMatchObject({ ...preset, experts: 64, auxLoss: 0.5 });
    expect(layerConfigFromFlags({}, preset)).toMatchObject(preset);
  });

  it.each([
    [['--tokens', '0'], /^moeblaze: --tokens: "0" is not allowed; use a positive integer/],
    [['--tokens', '1.5'], /--tokens: "1.5"/],
    [['--capacity-factor', '-1'], /--capacity-factor: "-1" is not allowed; use a number ≥ 0/],
    [['--capacity-factor', 'NaN'], /--capacity-factor/],
    [['--skew', 'zipf'], /--skew: "zipf" is unknown/],
    [['--activation', 'relu'], /--activation/],
    [['--seed', '4294967296'], /--seed: "4294967296" is too large; at most 4294967295/],
    [['--memory-limit', '12 bananas'], /--memory-limit: "12 bananas" is not a size/],
    [['--top-k', '9'], /--top-k: 9 is larger than --experts 8/],
    [['--backend', 'glide'], /--backend/],
    [['--nope'], /Nonexistent flag: --nope/],
  ])('%j exits 2 with one line naming the flag', async (argv, pattern) => {
    const { result, exitCode, stderr } = await probe(argv as string[]);
    expect(result).toBeUndefined();
    expect(exitCode).toBe(2);
    expect(stderr).toMatch(pattern);
    expect(stderr.trimEnd().split("\n"), stderr).toHaveLength(1);
  });

  it('parse helpers', () => {
    expect(parseIntegerFlag('+7', 'x', 1)).toBe(7);
    expect(() => parseIntegerFlag('1e3', 'x', 1)).toThrow(UsageError);
    expect(parseNonNegativeFloat('.5', 'cf')).toBe(0.5);
    expect(parseNonNegativeFloat('0', 'cf')).toBe(0);
    expect(() => parseNonNegativeFloat('Infinity', 'cf')).toThrow(/--cf/);
  });
});

describe('error contract', () => {
  it('maps every failure to its exit code and one line', () => {
    expect(describeFailure(new UsageError('--x: bad'))).toMatchObject({ exitCode: 2, message: '--x: bad' });
    expect(describeFailure(new GpuError('GPU error in kernel "k":\n - While validating\n - more', 'k'))).toMatchObject({ exitCode: 1, message: 'GPU error in kernel "k": - While validating - more' });
    expect(describeFailure(new Errors.ExitError(3))).toMatchObject({ exitCode: 3, message: null });
    expect(describeFailure(new Errors.CLIError('oclif usage'))).toMatchObject({ exitCode: 2, message: 'oclif usage' });
    expect(describeFailure(new TypeError('x is undefined'))).toMatchObject({ exitCode: 1, message: expect.stringMatching(/^internal error: x is undefined/) });
  });

  it('keeps the no-adapter help on several lines', () => {
    const failure = describeFailure(new EnvironmentError(NO_ADAPTER_HELP));
    expect(failure.exitCode).toBe(4);
    expect(failure.message).toContain(NO_ADAPTER_HELP);
  });
});

describe('withGpu', () => {
  it('opens the selected device and destroys it when the work ends, even when it throws', async () => {
    let seen: Promise<string | null> | undefined;
    const value = await withGpu({ adapter: 'llvmpipe' }, async (gpu) => {
      seen = gpu.lost;
      return gpu.adapter.description;
    });
    expect(value).toMatch(/llvmpipe/);
    // lost resolves with null only after an intended destroy().
    await expect(seen).resolves.toBeNull();
    let again: Promise<string | null> | undefined;
    await expect(
      withGpu({}, async (gpu) => {
        again = gpu.lost;
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await expect(again).resolves.toBeNull();
  });

  it('refuses an unknown adapter with exit 4', async () => {
    await expect(withGpu({ adapter: 'no-such-gpu' }, async () => 1)).rejects.toMatchObject({ exitCode: 4 });
  });
});
