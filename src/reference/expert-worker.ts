/** Worker thread of runExpertTasks (expert-task.ts): one expert's sampled reference per message. */
import { parentPort } from 'node:worker_threads';
import { runExpertTask, type ExpertTask } from './expert-task.js';

parentPort?.on('message', (task: ExpertTask) => {
  const r = runExpertTask(task);
  const buffers = [r.o.v, r.o.s, r.dx.v, r.dx.s, r.dg, r.dW1.v, r.dW1.s, r.dW2.v, r.dW2.s, ...(r.dW3 ? [r.dW3.v, r.dW3.s] : [])].map((a) => a.buffer as ArrayBuffer);
  parentPort!.postMessage(r, buffers);
});
