import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ExitCode, MoeblazeError, UsageError } from './errors.js';

/*
 * Long host computations (plan's Monte-Carlo routing and fit search, the float64 reference) run
 * on a worker thread: a signal handler (src/cli/interrupt.ts) runs on the main thread's event
 * loop, which a synchronous loop of minutes would hold, so Ctrl-C and SIGTERM would wait for it
 * (issue 28: 12 minutes, 22 s). With the work on a worker, the main thread only awaits a message
 * and answers a signal at once; process.exit ends the worker with it.
 */

const WORKER = new URL('./offload-worker.js', import.meta.url);

/** The compiled worker is next to this module; it is absent when the TypeScript source runs (tests), and the work then runs inline. */
export function canOffload(): boolean {
  return existsSync(fileURLToPath(WORKER));
}

/** What the worker sends back. */
export type OffloadReply = { value: unknown } | { error: { name: string; message: string; exitCode?: number; stack?: string } };

/** The error the worker caught, rebuilt with its class's exit code (a UsageError stays exit 2). */
function rebuild(e: { name: string; message: string; exitCode?: number; stack?: string }): Error {
  let error: Error;
  if (e.name === 'UsageError') error = new UsageError(e.message);
  else if (e.exitCode !== undefined) {
    error = new MoeblazeError(e.message, e.exitCode as ExitCode);
    error.name = e.name;
  } else {
    error = new Error(e.message);
    error.name = e.name;
  }
  if (e.stack) error.stack = e.stack;
  return error;
}

/**
 * `fn(...args)` on a worker thread, where the compiled worker exists; inline otherwise. The worker
 * imports `module` and calls its export `name`, which must be `fn`; arguments and result are
 * copied (structured clone), so they must be plain data: ids, not Strategy objects.
 */
export async function offload<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, module: URL, name: string, args: A): Promise<R> {
  if (!canOffload()) return fn(...args);
  const worker = new Worker(WORKER, { workerData: { module: module.href, name, args } });
  try {
    const reply = await new Promise<OffloadReply>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the worker computing ${name} exited with code ${code} before answering`)));
    });
    if ('error' in reply) throw rebuild(reply.error);
    return reply.value as R;
  } finally {
    await worker.terminate();
  }
}

/** The ArrayBuffers of the typed arrays in `value` (a few levels down), to move rather than copy them back. */
export function transferables(value: unknown, depth = 4): ArrayBuffer[] {
  const found = new Set<ArrayBuffer>();
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (ArrayBuffer.isView(v)) {
      if (v.buffer instanceof ArrayBuffer) found.add(v.buffer);
    } else if (v && typeof v === 'object' && d < depth) for (const x of Object.values(v)) stack.push([x, d + 1]);
  }
  return [...found];
}

