/** Worker thread of offload() (src/offload.ts): imports a module, calls one export with the arguments, posts the result back. */
import { parentPort, workerData } from 'node:worker_threads';
import { transferables, type OffloadReply } from './offload.js';

const { module, name, args } = workerData as { module: string; name: string; args: unknown[] };

try {
  const fn = (await import(module))[name] as (...a: unknown[]) => unknown;
  const value = await fn(...args);
  parentPort!.postMessage({ value } satisfies OffloadReply, transferables(value));
} catch (error) {
  const e = error as Error & { exitCode?: number };
  parentPort!.postMessage({ error: { name: e?.name ?? 'Error', message: e?.message ?? String(error), exitCode: e?.exitCode, stack: e?.stack } } satisfies OffloadReply);
}
