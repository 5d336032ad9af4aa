import { nearest } from '../suggest.js';
import { Command, Errors, type Interfaces } from '@oclif/core';
import { ExitCode, GpuError, MoeblazeError, UsageError } from '../errors.js';
import { diagnoseNoAdapter } from '../gpu/diagnose.js';
import { NO_ADAPTER_HELP, openGpu, type AdapterReport, type GpuContext } from '../gpu/runtime.js';
import { collectProvenance, type Provenance } from '../measure/provenance.js';
import type { AllocatorMode } from '../gpu/allocator.js';
import { gpuSelection, type GpuFlagValues } from './flags.js';
import { installInterruptHandler } from './interrupt.js';

/**
 * Opens the device the flags select, runs `work`, and always destroys the device: dawn.node
 * keeps Node alive while a device is referenced, so a command that forgot would never exit.
 * A device loss during `work` rejects with a GpuError instead of leaving `work` waiting forever.
 */
export async function withGpu<T>(flags: GpuFlagValues, work: (gpu: GpuContext) => Promise<T>): Promise<T> {
  const gpu = await openGpu(gpuSelection(flags));
  // Settles only on a real loss: destroy() below resolves `lost` with null, which must not win the race.
  const lost = gpu.lost.then((message) =>
    message === null ? new Promise<never>(() => {}) : Promise.reject(new GpuError(`the GPU device was lost: ${message}`, 'device')),
  );
  try {
    return await Promise.race([work(gpu), lost]);
  } finally {
    gpu.destroy();
  }
}

// oclif's FlagOutput/ArgOutput, which its public entry points do not export.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type FlagOutput = { [name: string]: any };

interface Failure {
  exitCode: number;
  name: string;
  /** null: nothing to print (an explicit exit). */
  message: string | null;
}

const debug = (): boolean => Boolean(process.env.MOEBLAZE_DEBUG);

/** oclif wraps a flag's parse error as "Parsing --x \n\t<msg>\nSee more help with --help". */
function cleanParseMessage(message: string): string {
  return message
    .replace(/^Parsing --\S+\s*\n\t/, '')
    .replace(/^\s*The following errors? occurred:\s*/, '')
    // oclif prints the parsed value (bytes for a size): the flag's name is what the user typed.
    .replace(/--([\w-]+)=\S+ cannot also be provided when using --([\w-]+)/g, '--$1 cannot be combined with --$2 (it would be ignored)')
    .replace(/\s*See more help with --help\s*$/, '')
    .replace(/\s*\n\s*/g, '; ')
    .trim();
}

/**
 * Flag names as typed, with their dashes ("Missing required flag --current"), and the nearest
 * flag for one that does not exist ("Nonexistent flag: --expert; did you mean --experts?").
 */
export function explainParseError(text: string, flags: readonly string[]): string {
  const out = text.replace(/Missing required flag:?\s+(?!--)([\w-]+)/g, 'Missing required flag --$1');
  return out.replace(/Nonexistent flags?: (--?[\w-]+)/, (match, typed: string) => {
    const guess = nearest(typed.replace(/^-+/, ''), flags);
    return guess ? `${match}; did you mean --${guess}?` : match;
  });
}

/** Maps anything a command can throw to an exit code and one line of text (docs/design.md#exit-codes). */
export function describeFailure(error: unknown): Failure {
  if (error instanceof MoeblazeError) {
    // The no-adapter help is a recipe, with what this machine lacks; every other message fits on one line.
    const headline = NO_ADAPTER_HELP.split('\n')[0];
    const message = error.message.includes(headline)
      ? [error.message, ...diagnoseNoAdapter()].join('\n')
      : error.message.replace(/\s*\n\s*/g, ' ');
    return { exitCode: error.exitCode, name: error.name, message };
  }
  if (error instanceof Errors.ExitError) return { exitCode: error.oclif.exit ?? ExitCode.ok, name: 'ExitError', message: null };
  const oclifExit = (error as { oclif?: { exit?: unknown } } | null)?.oclif?.exit;
  if (error instanceof Error && typeof oclifExit === 'number') {
    return { exitCode: oclifExit, name: error.name, message: cleanParseMessage(error.message) };
  }
  const text = error instanceof Error ? error.message : String(error);
  const detail = debug() && error instanceof Error && error.stack ? `\n${error.stack}` : ' (set MOEBLAZE_DEBUG=1 for the stack trace)';
  return { exitCode: ExitCode.internal, name: error instanceof Error ? error.name : 'Error', message: `internal error: ${text}${detail}` };
}

/**
 * What oclif accepts silently but a user cannot mean: an empty value, `--x --no-x` (the last one won), the same
 * value twice in a repeatable flag (`--impl a --impl a` ran a twice), a single-valued flag given
 * twice with different values (the last one won). Each is a UsageError naming the flags.
 */
export function rejectContradictions(
  definitions: Record<string, { type?: string; allowNo?: boolean; multiple?: boolean }>,
  raw: readonly { type: string; flag?: string; input: string }[],
  values: FlagOutput,
): void {
  const given = new Map<string, string[]>();
  for (const token of raw) if (token.type === 'flag' && token.flag) given.set(token.flag, [...(given.get(token.flag) ?? []), token.input]);
  for (const [name, inputs] of given) {
    const definition = definitions[name];
    if (!definition) continue;
    // An empty value is never meant: `--baseline ""` would otherwise read as "no baseline" and skip the gate.
    if (definition.type !== 'boolean' && inputs.some((i) => i.trim() === '')) throw new UsageError(`--${name}: the value is empty; give one`);
    if (definition.type === 'boolean') {
      const negated = inputs.some((i) => i.startsWith(`--no-${name}`));
      if (definition.allowNo && negated && inputs.some((i) => !i.startsWith(`--no-${name}`))) throw new UsageError(`--${name} and --no-${name} contradict each other; give one`);
      continue;
    }
    if (definition.multiple) {
      const list = (values[name] ?? []) as unknown[];
      const twice = list.find((v, i) => list.indexOf(v) !== i);
      if (twice !== undefined) throw new UsageError(`--${name} ${String(twice)} is given twice; give each value once`);
    } else if (new Set(inputs).size > 1) {
      throw new UsageError(`--${name} is given ${inputs.length} times (${inputs.join(', ')}); give it once`);
    }
  }
}

/**
 * Base of every moeblaze command. It owns the error contract: typed errors print one line
 * `moeblaze: <message>` on stderr and exit with their code, flag errors exit 2, anything else 1;
 * under --json stdout carries only JSON (the result, or {error}).
 */
export abstract class BaseCommand extends Command {
  static override enableJsonFlag = true;

  /** Every command removes its half-written files on Ctrl-C (src/cli/interrupt.ts). */
  override async init(): Promise<void> {
    installInterruptHandler();
    await super.init();
  }

  /** Every parse failure is a usage error (exit 2); oclif exits 1 for some of them (a custom flag's plain Error). */
  protected override async parse<F extends FlagOutput, B extends FlagOutput, A extends FlagOutput>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    let parsed: Interfaces.ParserOutput<F, B, A>;
    try {
      parsed = await super.parse(options, argv);
    } catch (error) {
      // Parsing was attempted; without this oclif warns "did not parse its arguments" outside production.
      this.parsed = true;
      if (error instanceof Errors.ExitError) throw error;
      const text = explainParseError(cleanParseMessage(error instanceof Error ? error.message : String(error)), Object.keys(options?.flags ?? {}));
      throw new UsageError(`${text}; see \`${this.config.bin} ${this.commandName()} --help\``);
    }
    rejectContradictions(options?.flags ?? {}, parsed.raw, parsed.flags);
    return parsed;
  }

  /**
   * Sets process.exitCode and returns instead of rethrowing: oclif would drop the code under
   * --json (seen with @oclif/core 4: `this.error(msg, {exit: 3})` exits 1 there) and print a stack-laden box otherwise.
   */
  protected override async catch(error: Interfaces.CommandError): Promise<void> {
    const failure = describeFailure(error);
    process.exitCode = failure.exitCode;
    if (failure.message === null) return;
    process.stderr.write(`moeblaze: ${failure.message}\n`);
    if (this.jsonEnabled()) this.logJson({ error: { name: failure.name, message: failure.message, exitCode: failure.exitCode } });
  }

  /** Progress for humans on stderr, so that stdout stays one clean JSON document under --json. */
  protected progress(message: string): void {
    process.stderr.write(`${message}\n`);
  }

  /** The command as typed, e.g. "devices" (topic separator is a space). */
  protected commandName(): string {
    return (this.id ?? '').split(':').join(' ');
  }

  /** `allocator`: the --allocator a command that runs steps used (provenance records it). */
  protected provenance(adapter?: AdapterReport | null, allocator?: AllocatorMode): Provenance {
    return collectProvenance([...this.commandName().split(' ').filter(Boolean), ...this.argv], adapter, allocator);
  }

  /** See withGpu(): opens the adapter the --adapter/--backend flags pick and destroys it at the end. */
  protected withGpu<T>(flags: GpuFlagValues, work: (gpu: GpuContext) => Promise<T>): Promise<T> {
    return withGpu(flags, work);
  }
}
