import { join } from 'node:path';
import { currentNames, formatSkew, type DeprecatedNames, type GemmEngine, type LayerConfig } from '../config.js';
import type { GpuContext } from '../gpu/runtime.js';
import { gemmEngineFor } from '../../kernels/gemm/engine-choice.js';
import { toHalf } from '../f16.js';
import { MoELayer, seededInputs } from '../layer.js';
import { requireBindingFits, requireVerifiable } from '../layer-limits.js';
import { writeFileAtomic } from '../fs.js';
import { writeNpy } from '../npy.js';
import { compareTensors, toFloat64, toleranceFor, type ReferenceResult, type Tolerance } from '../reference/index.js';
import { referenceFor, referenceOffThread, routingFor } from '../reference/full.js';
import type { LayerInputs } from '../rng.js';
import { findStrategy } from '../registry.js';
import type { RoutingSummary } from '../strategy/contract.js';
import { finishDump } from './dump-folder.js';

export const VERIFIED_TENSORS = ['O', 'dX', 'dWr', 'dW1', 'dW2', 'dW3'] as const;
export type VerifiedTensor = (typeof VERIFIED_TENSORS)[number];

export interface TensorCheck {
  tensor: VerifiedTensor;
  relError: number;
  maxAbsError: number;
  /** The error over its bound (reference/compare.ts): ≤ 1 passes, for the L2 and the largest-element gate. */
  errorRatio: number;
  maxErrorRatio: number;
  hasNaN: boolean;
  pass: boolean;
}

export interface StrategyVerification {
  strategy: string;
  status: 'pass' | 'fail' | 'unsupported' | 'error';
  message?: string;
  tensors: TensorCheck[];
  /** Tokens whose k-th and (k+1)-th logits nearly tie and that the GPU routed differently: the reference took the GPU's routing for them. */
  nearTieTokens: number;
  droppedPairs: number;
  /** Reference folder of a --dump this strategy was compared with. */
  reference: 'ref' | 'ref-capacity';
  /** GEMMs that could not be built on the requested engine and ran on simt. */
  gemmFallbacks?: string[];
}

export interface VerifyResult {
  config: LayerConfig;
  /** The engine the layer's f16 GEMMs ran on (the router and f32 GEMMs always run simt). */
  gemmEngine: GemmEngine;
  /** Relative tolerance (rtol); the floor is atol·‖√Σ terms²‖ (reference/compare.ts). */
  tolerance: number;
  atol: number;
  strategies: StrategyVerification[];
  pass: boolean;
}

/** `strategies`, the 0.1 name of `impl`, is still accepted (config.ts, DeprecatedNames). */
export interface VerifyOptions extends Pick<DeprecatedNames, 'strategies'> {
  /** Strategies to check (`--impl`). */
  impl?: string[];
  tolerance?: number;
  chunkBytes?: number;
  dumpDir?: string;
  onProgress?: (message: string) => void;
}

export interface GpuRun {
  O: Float32Array;
  grads: Record<Exclude<VerifiedTensor, 'O'>, Float32Array | null>;
  experts: Uint32Array;
  droppedPairs: number;
  gemmFallbacks: string[];
}

/** One training step of `layer` with every result read back (verify's check, and bench's full check). */
export async function stepAndReadBack(layer: MoELayer): Promise<GpuRun & { summary: RoutingSummary }> {
  await layer.forward();
  const routing = await layer.readRouting();
  const summary = await layer.routingSummary();
  await layer.backward();
  const O = await layer.readOutput();
  const g = await layer.readGradients();
  return { O, grads: { dX: g.dX, dWr: g.dWr, dW1: g.dW1, dW2: g.dW2, dW3: g.dW3 }, experts: routing.experts, droppedPairs: summary.droppedPairs, gemmFallbacks: [...layer.kernels.engineFallbacks], summary };
}

async function runOnGpu(gpu: GpuContext, config: LayerConfig, strategy: string, inputs: LayerInputs, chunkBytes?: number): Promise<GpuRun> {
  const layer = await MoELayer.fromConfig(gpu, config, { impl: strategy, chunkBytes });
  try {
    layer.setInputs(inputs);
    const { summary: _summary, ...run } = await stepAndReadBack(layer);
    return run;
  } finally {
    layer.destroy();
  }
}

// routingFor and referenceFor moved to src/reference/full.ts (a worker thread imports them there without the GPU); exported here as before.
export { referenceFor, routingFor };

export type ExpectedTensors = { [K in VerifiedTensor]: { value: ArrayLike<number>; scale: ArrayLike<number> | null } | null };

/** The full reference's tensors with their scales, in the form compareRun takes. */
export function expectedFrom(ref: ReferenceResult): ExpectedTensors {
  const pick = (name: VerifiedTensor) => {
    const value = refTensor(ref, name);
    return value && { value, scale: ref.scale[name] };
  };
  return { O: pick('O'), dX: pick('dX'), dWr: pick('dWr'), dW1: pick('dW1'), dW2: pick('dW2'), dW3: pick('dW3') };
}

/** The one judgement of verify, bench and the sampled check: tensors of a GPU run against expected values. */
export function compareRun(got: { [K in VerifiedTensor]: ArrayLike<number> | null }, want: ExpectedTensors, tolerance: Tolerance): TensorCheck[] {
  const tensors: TensorCheck[] = [];
  for (const name of VERIFIED_TENSORS) {
    const w = want[name];
    const g = got[name];
    if (!w || !g) continue;
    const c = compareTensors(g, w.value, { scale: w.scale, tolerance });
    tensors.push({ tensor: name, relError: c.relError, maxAbsError: c.maxAbsError, errorRatio: c.errorRatio, maxErrorRatio: c.maxErrorRatio, hasNaN: c.hasNaN, pass: c.pass });
  }
  return tensors;
}

/** A GPU run's tensors by name. */
export function runTensors(run: GpuRun): { [K in VerifiedTensor]: Float32Array | null } {
  return { O: run.O, ...run.grads };
}

function refTensor(ref: ReferenceResult, name: VerifiedTensor): Float64Array | null {
  return name === 'O' ? ref.O : ref[name];
}

export async function verifyStrategies(gpu: GpuContext, config: LayerConfig, given: VerifyOptions): Promise<VerifyResult> {
  const options = currentNames(given);
  const impl = options.impl ?? [];
  const tolerance = toleranceFor(config.dtype, options.tolerance);
  // Before any input is generated: a shape that cannot fit fails here with its size and the limit.
  requireVerifiable(config);
  if (impl.some((id) => findStrategy(id).unsupported(config) === null)) requireBindingFits(config, gpu.maxBindingBytes, Math.min(options.chunkBytes ?? gpu.maxBindingBytes, gpu.maxBindingBytes));
  const gemmEngine = gemmEngineFor(gpu, config.dtype);
  const inputs = seededInputs(config);
  const inputs64 = toFloat64(inputs);
  const results: StrategyVerification[] = [];
  const dumped = new Map<string, ReferenceResult>();
  for (const id of impl) {
    const strategy = findStrategy(id);
    const reference = strategy.dropless ? 'ref' : 'ref-capacity';
    const base = { strategy: id, tensors: [], nearTieTokens: 0, droppedPairs: 0, reference } as const;
    const reason = strategy.unsupported(config);
    if (reason) {
      results.push({ ...base, tensors: [], status: 'unsupported', message: reason });
      continue;
    }
    options.onProgress?.(`${id}: running on the GPU`);
    let run: GpuRun;
    try {
      run = await runOnGpu(gpu, config, id, inputs, options.chunkBytes);
    } catch (error) {
      results.push({ ...base, tensors: [], status: 'error', message: (error as Error).message });
      continue;
    }
    options.onProgress?.(`${id}: float64 reference`);
    const { ref, forced } = await referenceOffThread(config, inputs64, !strategy.dropless, run.experts);
    const tensors = compareRun(runTensors(run), expectedFrom(ref), tolerance);
    const pass = tensors.every((t) => t.pass) && run.droppedPairs === ref.routing.dropped;
    const message = run.droppedPairs !== ref.routing.dropped ? `dropped ${run.droppedPairs} pairs, the reference ${ref.routing.dropped}` : undefined;
    results.push({ ...base, tensors, nearTieTokens: forced, droppedPairs: run.droppedPairs, status: pass ? 'pass' : 'fail', ...(message && { message }), ...(run.gemmFallbacks.length && { gemmFallbacks: run.gemmFallbacks }) });
    if (options.dumpDir) {
      await dumpStrategy(options.dumpDir, id, config, run);
      if (!dumped.has(reference)) {
        dumped.set(reference, ref);
        await dumpReference(options.dumpDir, reference, config, ref);
      }
    }
  }
  if (options.dumpDir) await dumpInputs(options.dumpDir, config, inputs, results, dumped);
  return { config, gemmEngine, tolerance: tolerance.rtol, atol: tolerance.atol, strategies: results, pass: results.every((r) => r.status === 'pass' || r.status === 'unsupported') };
}

function shapes(c: LayerConfig) {
  const { tokens: T, hidden: d, ffn: h, experts: E } = c;
  return { O: [T, d], dX: [T, d], dWr: [d, E], dW1: [E, d, h], dW2: [E, h, d], dW3: [E, d, h] } as Record<VerifiedTensor, number[]>;
}

/** GPU data as stored: f32, or f16 narrowed back exactly (the readback widened it). */
function stored(c: LayerConfig, data: Float32Array): Float32Array | Uint16Array {
  return c.dtype === 'f16' ? toHalf(data) : data;
}

const storedDescr = (c: LayerConfig) => (c.dtype === 'f16' ? '<f2' : '<f4');

async function dumpStrategy(dir: string, id: string, c: LayerConfig, run: GpuRun) {
  const s = shapes(c);
  await writeNpy(join(dir, id, 'O.npy'), stored(c, run.O), s.O);
  for (const [name, data] of Object.entries(run.grads)) if (data) await writeNpy(join(dir, id, `${name}.npy`), stored(c, data), s[name as VerifiedTensor]);
}

async function dumpReference(dir: string, folder: string, c: LayerConfig, ref: ReferenceResult) {
  const s = shapes(c);
  for (const name of VERIFIED_TENSORS) {
    const data = refTensor(ref, name);
    if (data) await writeNpy(join(dir, folder, `${name}.npy`), data, s[name]);
  }
  const { tokens: T, topK: k } = c;
  await writeNpy(join(dir, folder, 'experts.npy'), Int32Array.from(ref.routing.experts), [T, k]);
  await writeNpy(join(dir, folder, 'gates.npy'), Float64Array.from(ref.routing.gates), [T, k]);
  await writeNpy(join(dir, folder, 'kept.npy'), Uint8Array.from(ref.routing.kept), [T, k]);
}

/** Inputs, the first reference's routing at the top, and the manifest (written last: its presence means the dump is whole). */
async function dumpInputs(dir: string, c: LayerConfig, inputs: LayerInputs, results: StrategyVerification[], refs: Map<string, ReferenceResult>) {
  const { tokens: T, hidden: d, ffn: h, experts: E, topK: k } = c;
  const files: Record<string, { shape: number[]; dtype: string; layout: string }> = {};
  const put = async (path: string, data: Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array, shape: number[], dtype: string) => {
    await writeNpy(join(dir, path), data, shape);
    files[path] = { shape, dtype, layout: 'C order, little-endian' };
  };
  const f = storedDescr(c);
  await put('X.npy', stored(c, inputs.X), [T, d], f);
  await put('dO.npy', stored(c, inputs.dO), [T, d], f);
  await put('Wr.npy', stored(c, inputs.Wr), [d, E], f);
  await put('W1.npy', stored(c, inputs.W1), [E, d, h], f);
  if (inputs.W3) await put('W3.npy', stored(c, inputs.W3), [E, d, h], f);
  await put('W2.npy', stored(c, inputs.W2), [E, h, d], f);
  const top = refs.get('ref') ?? refs.get('ref-capacity');
  if (top) {
    await put('experts.npy', Int32Array.from(top.routing.experts), [T, k], '<i4');
    await put('gates.npy', Float64Array.from(top.routing.gates), [T, k], '<f8');
    await put('kept.npy', Uint8Array.from(top.routing.kept), [T, k], '|u1');
  }
  const s = shapes(c);
  for (const r of results) {
    if (r.status === 'unsupported' || r.status === 'error') continue;
    for (const t of r.tensors) files[`${r.strategy}/${t.tensor}.npy`] = { shape: s[t.tensor], dtype: f, layout: 'C order, little-endian' };
  }
  for (const folder of refs.keys()) for (const t of VERIFIED_TENSORS) if (t !== 'dW3' || c.activation === 'swiglu') files[`${folder}/${t}.npy`] = { shape: s[t], dtype: '<f8', layout: 'C order, little-endian' };
  // dumpReference writes each reference's routing beside its tensors: listed too, so that the manifest names every file.
  for (const folder of refs.keys()) {
    files[`${folder}/experts.npy`] = { shape: [T, k], dtype: '<i4', layout: 'C order, little-endian' };
    files[`${folder}/gates.npy`] = { shape: [T, k], dtype: '<f8', layout: 'C order, little-endian' };
    files[`${folder}/kept.npy`] = { shape: [T, k], dtype: '|u1', layout: 'C order, little-endian' };
  }
  const manifest = {
    format: 'moeblaze.verify-dump/v1',
    config: {
      tokens: T,
      hidden: d,
      ffn: h,
      experts: E,
      topK: k,
      activation: c.activation,
      capacityFactor: c.capacityFactor,
      normalizeGates: c.normalizeGates,
      checkpoint: c.checkpoint,
      dtype: c.dtype,
      skew: formatSkew(c.skew),
      routing: c.routing,
      seed: c.seed,
      auxLoss: c.auxLoss,
    },
    generator: 'src/rng.ts: seeded with --seed; draws X, dO, Wr, W1, W3, W2 in that order; X, dO ~ N(0,1), weights ~ N(0, 1/fan_in)',
    strategies: results.map((r) => ({ id: r.strategy, status: r.status, reference: r.reference })),
    routing: 'experts/gates/kept at the top are the reference routing (dropless when a dropless strategy ran)',
    files,
  };
  await writeFileAtomic(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  finishDump(dir);
}
