/**
 * One expert's share of the sampled float64 reference, as a self-contained task (plain typed
 * arrays in, plain typed arrays out) so that experts run in parallel on worker threads: at
 * moeblaze-conf4 the work is ~15 GMAC, a minute on one core, seconds on a GPU host's cores.
 * The same function runs inline where no worker is available (tests run the TypeScript source).
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { LayerConfig } from '../config.js';
import { fillExpertWeights, type FilledWeights } from '../fill.js';
import { expertPairs, scaled, unitStep, type ExpertWeights, type Scaled } from './terms.js';

/** An expert whose weights the GPU fill of `seed` made (src/fill.ts): the worker regenerates them, nothing is read back. */
export interface ExpertFill {
  fillSeed: number;
  expert: number;
}

/** Rows of n (token, expert) pairs: x and dO [n·d], gates [n]. */
export interface PairRows {
  x: Float64Array;
  dO: Float64Array;
  g: Float64Array;
}

export interface ExpertTask {
  config: LayerConfig;
  weights: ExpertWeights | ExpertFill;
  /** The sampled pairs routed to this expert: their O and dX rows are wanted. */
  sampled: PairRows;
  /** Every kept pair of the expert, for the columns of the sampled hidden units. */
  all: PairRows;
  units: number[];
}

export interface ExpertResult {
  /** [n·d] per sampled pair: g·y and the expert part of dx, with scales; dg [n] */
  o: Scaled;
  dx: Scaled;
  dg: Float64Array;
  /** [u·d] per sampled unit j: dW1[:,j], dW3[:,j], dW2[j,:] with scales */
  dW1: Scaled;
  dW3: Scaled | null;
  dW2: Scaled;
}

/** The last regenerated expert's weights, refilled by the next one (one set per thread). */
let refilled: FilledWeights | undefined;

export function runExpertTask(given: ExpertTask): ExpertResult {
  const c = given.config;
  const d = c.hidden;
  const w = given.weights;
  if ('fillSeed' in w) refilled = fillExpertWeights(w.fillSeed, w.expert, d, c.ffn, c.activation === 'swiglu', refilled);
  const task = { ...given, weights: 'fillSeed' in w ? refilled! : w };
  const n = task.sampled.g.length;
  const row = (m: Scaled, r: number): Scaled => ({ v: m.v.subarray(r * d, r * d + d), s: m.s.subarray(r * d, r * d + d) });
  const rows = (p: PairRows, r: number) => ({ x: p.x.subarray(r * d, r * d + d), dO: p.dO.subarray(r * d, r * d + d), g: p.g[r] });
  const out: ExpertResult = { o: scaled(n * d), dx: scaled(n * d), dg: new Float64Array(n), dW1: scaled(task.units.length * d), dW3: task.weights.W3 ? scaled(task.units.length * d) : null, dW2: scaled(task.units.length * d) };
  const jobs = Array.from({ length: n }, (_, r) => ({ ...rows(task.sampled, r), o: row(out.o, r), dx: row(out.dx, r) }));
  expertPairs(c, task.weights, jobs, null, out.dg);
  task.units.forEach((j, u) => unitColumns(c, task, j, row(out.dW1, u), out.dW3 && row(out.dW3, u), row(out.dW2, u)));
  return out;
}

/** dW1[:,j], dW3[:,j], dW2[j,:] over every kept pair of the expert. */
function unitColumns(c: LayerConfig, task: ExpertTask & { weights: ExpertWeights }, j: number, dW1: Scaled, dW3: Scaled | null, dW2: Scaled): void {
  const { hidden: d, ffn: h } = c;
  const w = task.weights;
  const w1 = Float64Array.from({ length: d }, (_, i) => w.W1[i * h + j]);
  const w3 = w.W3 ? Float64Array.from({ length: d }, (_, i) => w.W3![i * h + j]) : null;
  const w2 = w.W2.subarray(j * d, j * d + d);
  const unit = { u: 0, da: 0, db: 0 };
  const { x: X, dO: DO, g: gates } = task.all;
  for (let p = 0; p < gates.length; p++) {
    const at = p * d;
    let a = 0;
    let b = 0;
    let G = 0;
    for (let i = 0; i < d; i++) {
      a += X[at + i] * w1[i];
      if (w3) b += X[at + i] * w3[i];
      G += DO[at + i] * w2[i];
    }
    const g = gates[p];
    unitStep(c, a, b, G, g, unit);
    const gu = g * unit.u;
    for (let i = 0; i < d; i++) {
      const xi = X[at + i];
      dW1.v[i] += xi * unit.da;
      dW1.s[i] += (xi * unit.da) ** 2;
      if (dW3) {
        dW3.v[i] += xi * unit.db;
        dW3.s[i] += (xi * unit.db) ** 2;
      }
      dW2.v[i] += gu * DO[at + i];
      dW2.s[i] += (gu * DO[at + i]) ** 2;
    }
  }
}

/**
 * The cores but one, up to 16: a worker holds one expert's weights in float64 (~350 MB at
 * DeepSeek-V3-like sizes), and regenerating them (src/fill.ts) is most of its work there.
 */
export function defaultThreads(): number {
  return Math.min(16, availableParallelism() - 1);
}

/** The compiled worker next to this module; absent when the TypeScript source runs (tests). */
const WORKER = new URL('./expert-worker.js', import.meta.url);

/**
 * Runs tasks on up to (cores − 1) worker threads, at least one, at most that many in flight (each
 * holds one expert's weights), or inline without a compiled worker (or with threads 0). `next`
 * yields tasks lazily, since making one reads that expert's weights from the GPU. One worker on a
 * 2-core machine adds no speed, but keeps the main thread free to answer Ctrl-C (issue 28).
 */
export async function runExpertTasks(count: number, next: (i: number) => Promise<ExpertTask | null>, done: (i: number, r: ExpertResult) => void, threads = Math.max(1, defaultThreads())): Promise<void> {
  if (threads < 1 || !existsSync(fileURLToPath(WORKER))) {
    for (let i = 0; i < count; i++) {
      const task = await next(i);
      if (task) done(i, runExpertTask(task));
    }
    return;
  }
  const workers = Array.from({ length: threads }, () => new Worker(WORKER));
  try {
    let started = 0;
    const lane = async (worker: Worker) => {
      while (started < count) {
        const i = started++;
        const task = await next(i);
        if (!task) continue;
        const result = await new Promise<ExpertResult>((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
          const w = 'fillSeed' in task.weights ? { W1: null, W2: null, W3: null } : task.weights;
          const moved = [w.W1, w.W2, w.W3, task.all.x, task.all.dO, task.sampled.x, task.sampled.dO].filter((a): a is Float64Array => a !== null);
          worker.postMessage(task, moved.map((a) => a.buffer as ArrayBuffer));
        });
        worker.removeAllListeners('error');
        done(i, result);
      }
    };
    await Promise.all(workers.map(lane));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
