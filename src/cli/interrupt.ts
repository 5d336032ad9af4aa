import { removePendingTemps } from '../fs.js';

/**
 * Ctrl-C (SIGINT) or SIGTERM while a long command runs: remove the temporary files of writes in
 * flight, say what was kept and how to go on (`message` is asked at that moment), and exit with
 * the shell's code for a signal (128 + signal number). Returns the function that uninstalls it.
 */
export function onInterrupt(message: () => string): () => void {
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    const handler = () => {
      removePendingTemps();
      process.stderr.write(`\nmoeblaze: ${message()}\n`);
      process.exit(code);
    };
    handlers.set(signal, handler);
    process.once(signal, handler);
  }
  return () => handlers.forEach((handler, signal) => process.off(signal, handler));
}
