import { Flags } from '@oclif/core';

/**
 * `--verbose`, taken by every command: longer tables (every gate row) and the messages Dawn
 * prints on stderr, which are otherwise filtered (bin/run.js drops its "artificially reduced"
 * limit warnings, harmless on every adapter seen so far).
 */
export const verboseFlag = Flags.boolean({
  description: "show everything: every row of verdict tables, and Dawn's own warnings on stderr",
});
