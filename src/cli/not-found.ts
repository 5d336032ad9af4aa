import type { Hook } from '@oclif/core';
import { ExitCode } from '../errors.js';
import { nearest } from '../suggest.js';

/**
 * oclif's hook for a command it does not know. Its own message is a boxed "Error: command x not
 * found" on stderr only: a script that asked for --json got nothing to parse. Here it is one line
 * naming the nearest command when the name looks like a typo of one (issue 25) and the commands,
 * as every other usage error (exit 2), and under --json the same error as a JSON document on
 * stdout (BaseCommand's catch writes the same shape).
 */
const commandNotFound: Hook<'command_not_found'> = async function (options) {
  const commands = [...new Set(options.config.commands.filter((c) => !c.hidden).map((c) => c.id))].sort();
  const guess = nearest(options.id, commands);
  const message = `unknown command "${options.id}"${guess ? `; did you mean ${guess}?` : ''}; the commands are ${commands.join(', ')}; see \`${options.config.bin} --help\``;
  process.stderr.write(`moeblaze: ${message}\n`);
  if (options.argv?.includes('--json')) process.stdout.write(`${JSON.stringify({ error: { name: 'UsageError', message, exitCode: ExitCode.usage } }, null, 2)}\n`);
  process.exitCode = ExitCode.usage;
};

export default commandNotFound;
