import { removePendingTemps } from '../fs.js';

/*
 * Ctrl-C (SIGINT) or SIGTERM while a command runs: remove the temporary files of writes in
 * flight, say what was kept and how to go on, and exit with the shell's code for the signal
 * (128 + its number). One handler for the process; commands with something to say (bench: the
 * resume command) push a message while they run.
 */

const messages: (() => string)[] = [];
let installed = false;

function handler(code: number): () => void {
  return () => {
    removePendingTemps();
    const message = messages.at(-1);
    process.stderr.write(`\nmoeblaze: ${message ? message() : 'interrupted'}\n`);
    process.exit(code);
  };
}

/** Installs the process's handler once (BaseCommand does, for every command). */
export function installInterruptHandler(): void {
  if (installed) return;
  installed = true;
  process.on('SIGINT', handler(130));
  process.on('SIGTERM', handler(143));
}

/** What to say on an interrupt until the returned function is called. */
export function onInterrupt(message: () => string): () => void {
  installInterruptHandler();
  messages.push(message);
  return () => {
    const i = messages.lastIndexOf(message);
    if (i >= 0) messages.splice(i, 1);
  };
}
