import { completedWrites, removePendingTemps } from '../fs.js';

/*
 * Ctrl-C (SIGINT) or SIGTERM while a command runs: remove the temporary files of writes in
 * flight, say what was kept and how to go on, and exit with the shell's code for the signal
 * (128 + its number). One handler for the process; commands with something to say (bench: the
 * resume command) push a message while they run.
 */

const messages: (() => string)[] = [];
let installed = false;

/**
 * Without a command's own message: what was written before the interrupt, so that a baseline
 * replaced a moment before Ctrl-C is not reported as left alone.
 */
export function interruptMessage(written: readonly string[]): string {
  const files = [...new Set([...completedWrites(), ...written])];
  if (files.length === 0) return 'interrupted';
  const shown = files.slice(-3).join(', ');
  return `interrupted after writing ${files.length > 3 ? `${files.length} files (the last: ${shown})` : shown}`;
}

function handler(code: number): () => void {
  return () => {
    const written = removePendingTemps();
    const message = messages.at(-1);
    process.stderr.write(`\nmoeblaze: ${message ? message() : interruptMessage(written)}\n`);
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
