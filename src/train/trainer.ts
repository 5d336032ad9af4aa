/**
 * The model of src/train/model.ts on the GPU: dense layers, residual, MSE gradient and Adam in
 * kernels/train.ts, the MoE layer through MoELayer with any strategy. Every buffer comes from the
 * layer's allocator (Adam's m and v under the 'optimizer' tag), so its peak covers the model.
 *
 * At dtype f16 (mixed precision) the model's activations, weights and gradients are f16 — the
 * MoE layer's own tensors and x, z, r, y, dY, dZ, W_in, W_out and their gradients — while the
 * optimizer holds an f32 master copy of every f16 weight next to its f32 moments ('optimizer'
 * tag: 12 B per parameter, against 8 B at f32 where the weight is its own master). The router's
 * Wr and dWr stay f32 at any dtype (the layer's choice, so that routing matches f32): Wr is its
 * own master, 8 B. The label y* stays f32: the loss is computed against it in f64 on the host,
 * and its gradient in f32 on the GPU.
 */
import type { StepEncoder } from '../../kernels/program.js';
import { encodeAdam, encodeAdd, encodeGemmNN, encodeGemmNT, encodeGemmTN, encodeMseGrad, type AdamParams } from '../../kernels/train.js';
import { UsageError } from '../errors.js';
import type { BufferTag } from '../gpu/allocator.js';
import { readTensor } from '../gpu/readback.js';
import type { DType } from '../config.js';
import type { GpuContext } from '../gpu/runtime.js';
import { allocateTensor, chunkLayout, chunkRowRange, freeTensor, uploadTensor, type ChunkLayout, type Tensor } from '../gpu/tensor.js';
import { floatBytes } from '../f16.js';
import { MoELayer, requireDtype } from '../layer.js';
import { lossScale, moeConfig, studentWeights, TeacherData, type TrainConfig } from './model.js';

export interface TrainStepRecord {
  step: number;
  /** mse + aux, computed in float64 on the host from the read-back output */
  loss: number;
  mse: number;
  aux: number;
  /** host wall time of the step (upload, kernels, loss readback; not the teacher's data) */
  ms: number;
  /** allocator peak since the model was built */
  peakBytes: number;
}

export type ParamName = 'Win' | 'Wout' | 'Wr' | 'W1' | 'W2' | 'W3';

/** One parameter tensor and what Adam keeps for it. */
interface ParamState {
  name: ParamName;
  /** Storage of w and g. */
  dtype: DType;
  /** The weight the forward reads and its gradient: at the model's dtype, but Wr is f32 at any. */
  w: Tensor;
  g: Tensor;
  /** f32 moments and (below f32 storage) the f32 master weight, flat vectors of w's elements. */
  m: Tensor;
  v: Tensor;
  master: Tensor | null;
}

export interface TrainerOptions {
  /** Largest chunk of a layer tensor (tests force it smaller) [default: the adapter's binding limit]. */
  chunkBytes?: number;
}

function single(t: Tensor) {
  if (t.chunks.length !== 1) throw new UsageError(`train: tensor ${t.name} is split into ${t.chunks.length} chunks; use smaller shapes`);
  return t.chunks[0];
}

/** Element range [begin, end) of each chunk of a row-chunked tensor, in the whole tensor. */
function elementRanges(layout: ChunkLayout): [number, number][] {
  return Array.from({ length: layout.chunkCount }, (_, c) => {
    const { start, count } = chunkRowRange(layout, c);
    return [start * layout.cols, (start + count) * layout.cols];
  });
}

export class GpuTrainer {
  private readonly data: TeacherData;
  private readonly own: Tensor[] = [];
  private readonly t: Record<'x' | 'target' | 'Win' | 'Wout' | 'dWin' | 'dWout' | 'r' | 'y' | 'dY' | 'dZ', Tensor>;
  private readonly params: ParamState[] = [];
  private stepIndex = 0;

  private constructor(
    readonly gpu: GpuContext,
    readonly config: TrainConfig,
    readonly layer: MoELayer,
  ) {
    const c = config;
    const { tokens: T, inputDim: di, hidden: d, outputDim: dout } = c;
    const a = layer.allocator;
    const f = floatBytes(c.dtype);
    const alloc = (name: string, tag: BufferTag, layout: ChunkLayout) => {
      const tensor = allocateTensor(a, name, tag, layout);
      this.own.push(tensor);
      return tensor;
    };
    const stored = (name: string, tag: BufferTag, rows: number, cols: number) => alloc(name, tag, chunkLayout(rows, cols, f, Infinity));
    this.t = {
      x: stored('x', 'input', T, di),
      target: alloc('target', 'input', chunkLayout(T, dout, 4, Infinity)),
      Win: stored('W_in', 'weights', di, d),
      Wout: stored('W_out', 'weights', d, dout),
      dWin: stored('dW_in', 'gradients', di, d),
      dWout: stored('dW_out', 'gradients', d, dout),
      r: stored('r', 'activations-saved', T, d),
      y: stored('y', 'output', T, dout),
      dY: stored('dY', 'workspace', T, dout),
      dZ: stored('dZ', 'workspace', T, d),
    };
    const lt = layer.gpuTensors().layer;
    const params: [ParamName, Tensor, Tensor][] = [
      ['Win', this.t.Win, this.t.dWin],
      ['Wout', this.t.Wout, this.t.dWout],
      ['Wr', lt.Wr, lt.dWr],
      ['W1', lt.W1, lt.dW1],
      ['W2', lt.W2, lt.dW2],
      ['W3', lt.W3!, lt.dW3!],
    ];
    for (const [name, w, g] of params) {
      // Adam is elementwise: its f32 state is a flat vector, chunked on its own (encodeUpdate
      // walks the overlaps with the weight's chunks, which hold whole experts at the dtype).
      const state = chunkLayout(w.layout.rows * w.layout.cols, 1, 4, layer.chunkBytes);
      const m = alloc(`adam.m.${name}`, 'optimizer', state);
      const v = alloc(`adam.v.${name}`, 'optimizer', state);
      // A weight stored at f32 (any weight at f32; the router's Wr at any dtype) is its own master.
      const master = w.layout.elementBytes === 4 ? null : alloc(`master.${name}`, 'optimizer', state);
      this.params.push({ name, dtype: master ? c.dtype : 'f32', w, g, m, v, master });
    }
    this.data = new TeacherData(c);
  }

  static async create(gpu: GpuContext, config: TrainConfig, strategy: string, options: TrainerOptions = {}): Promise<GpuTrainer> {
    requireDtype(gpu, config.dtype);
    // The layer adds the load-balancing gradient itself: it must carry the loss scale too.
    const mc = moeConfig(config);
    const layer = await MoELayer.fromConfig(gpu, { ...mc, auxLoss: mc.auxLoss * lossScale(config) }, { impl: strategy, ...(options.chunkBytes && { chunkBytes: options.chunkBytes }) });
    let trainer: GpuTrainer;
    try {
      trainer = new GpuTrainer(gpu, config, layer);
    } catch (error) {
      layer.destroy();
      throw error;
    }
    const w = studentWeights(config);
    const enc = layer.kernels.encoder();
    for (const p of trainer.params) {
      // At f16 the weight copy is the initial weight rounded to f16; the master keeps it exactly.
      uploadTensor(gpu.device, p.w, w[p.name]);
      if (p.master) uploadTensor(gpu.device, p.master, w[p.name]);
      for (const buf of [...p.m.chunks, ...p.v.chunks]) enc.clear(buf);
    }
    enc.flush();
    await layer.allocator.settle();
    await gpu.device.queue.onSubmittedWorkDone();
    return trainer;
  }

  private get dtype() {
    return this.config.dtype;
  }

  /** One step: forward, loss, backward, Adam. Returns the loss of the weights before the update. */
  async step(): Promise<TrainStepRecord> {
    const c = this.config;
    const dt = this.dtype;
    const { tokens: T, inputDim: di, hidden: d, outputDim: dout } = c;
    const t = this.t;
    // The teacher runs on the host in float64; its time is not the model's.
    const batch = this.data.batch(this.stepIndex);
    const started = performance.now();
    const device = this.gpu.device;
    uploadTensor(device, t.x, batch.x);
    uploadTensor(device, t.target, batch.target);
    const lt = this.layer.gpuTensors().layer;
    const X = single(lt.X);
    const dO = single(lt.dO);

    let enc = this.layer.kernels.encoder();
    enc.beginPass('train-input-projection');
    await encodeGemmNN(enc, dt, single(t.x), single(t.Win), X, T, d, di);
    enc.flush();
    await this.layer.forward();

    let aux = 0;
    if (c.auxLoss > 0) aux = await this.auxLoss();

    const O = single(this.requireTensor(this.layer.gpuTensors().output, 'output'));
    enc = this.layer.kernels.encoder();
    enc.beginPass('train-head');
    await encodeAdd(enc, dt, X, O, single(t.r), T * d);
    await encodeGemmNN(enc, dt, single(t.r), single(t.Wout), single(t.y), T, dout, d);
    // Every gradient below carries the loss scale S (1 at f32); Adam divides it out.
    const S = lossScale(c);
    await encodeMseGrad(enc, dt, single(t.y), single(t.target), single(t.dY), T * dout, (S * 2) / (T * dout));
    await encodeGemmTN(enc, dt, single(t.r), single(t.dY), single(t.dWout), d, dout, T);
    await encodeGemmNT(enc, dt, single(t.dY), single(t.Wout), dO, T, d, dout);
    enc.flush();
    await this.layer.backward();

    const dX = single(this.requireTensor(this.layer.gpuTensors().inputGrad, 'input gradient'));
    enc = this.layer.kernels.encoder();
    enc.beginPass('train-update');
    await encodeAdd(enc, dt, dO, dX, single(t.dZ), T * d);
    await encodeGemmTN(enc, dt, single(t.x), single(t.dZ), single(t.dWin), di, d, T);
    const step = this.stepIndex + 1;
    const hyper = { lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, bc1: 1 - c.beta1 ** step, bc2: 1 - c.beta2 ** step, gradScale: 1 / S };
    for (const p of this.params) await this.encodeUpdate(enc, p, hyper);
    enc.flush();
    await this.layer.allocator.settle();

    // y is widened to f32 on readback; the loss is summed in float64.
    const y = await readTensor(this.layer.allocator, t.y);
    let sse = 0;
    for (let i = 0; i < y.length; i++) {
      const e = y[i] - batch.target[i];
      sse += e * e;
    }
    const mse = sse / y.length;
    const record: TrainStepRecord = {
      step: this.stepIndex,
      loss: mse + aux,
      mse,
      aux,
      ms: performance.now() - started,
      peakBytes: this.layer.allocator.peakComposition.bytes,
    };
    this.stepIndex++;
    return record;
  }

  /** Adam over one parameter: a dispatch per overlap of a weight chunk with a state chunk. */
  private async encodeUpdate(enc: StepEncoder, p: ParamState, hyper: AdamParams): Promise<void> {
    const weightRanges = elementRanges(p.w.layout);
    const stateRanges = elementRanges(p.m.layout);
    for (const [k, [w0, w1]] of weightRanges.entries()) {
      for (const [s, [s0, s1]] of stateRanges.entries()) {
        const lo = Math.max(w0, s0);
        const hi = Math.min(w1, s1);
        if (hi <= lo) continue;
        const buffers = { w: p.w.chunks[k], g: p.g.chunks[k], m: p.m.chunks[s], v: p.v.chunks[s], ...(p.master && { master: p.master.chunks[s] }) };
        await encodeAdam(enc, p.dtype, buffers, hi - lo, lo - w0, lo - s0, hyper);
      }
    }
  }

  private requireTensor(t: Tensor | null, what: string): Tensor {
    if (!t) throw new Error(`the MoE layer produced no ${what}`);
    return t;
  }

  /** α·E·Σ_e f_e·P̄_e of the last forward, from its routing and the router's probabilities. */
  private async auxLoss(): Promise<number> {
    const c = this.config;
    const { tokens: T, hidden: d, experts: E, topK: k } = c;
    const summary = await this.layer.routingSummary();
    const lt = this.layer.gpuTensors().layer;
    const z = await readTensor(this.layer.allocator, lt.X);
    const Wr = await readTensor(this.layer.allocator, lt.Wr);
    const pMean = new Float64Array(E);
    const logits = new Float64Array(E);
    for (let t = 0; t < T; t++) {
      let max = -Infinity;
      for (let e = 0; e < E; e++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += z[t * d + i] * Wr[i * E + e];
        logits[e] = s;
        max = Math.max(max, s);
      }
      let sum = 0;
      for (let e = 0; e < E; e++) sum += (logits[e] = Math.exp(logits[e] - max));
      for (let e = 0; e < E; e++) pMean[e] += logits[e] / sum / T;
    }
    let aux = 0;
    for (let e = 0; e < E; e++) aux += c.auxLoss * E * (summary.expertLoads[e] / (T * k)) * pMean[e];
    return aux;
  }

  /** Expert loads of the model's current weights on the next batch (a forward pass only). */
  async expertLoads(): Promise<number[]> {
    const c = this.config;
    const batch = this.data.batch(this.stepIndex);
    uploadTensor(this.gpu.device, this.t.x, batch.x);
    const enc = this.layer.kernels.encoder();
    await encodeGemmNN(enc, this.dtype, single(this.t.x), single(this.t.Win), single(this.layer.gpuTensors().layer.X), c.tokens, c.hidden, c.inputDim);
    enc.flush();
    await this.layer.forward();
    return (await this.layer.routingSummary()).expertLoads;
  }

  /**
   * Current weights, read back (tests): the optimizer's parameters ('master', f32; at f32 the
   * weights themselves) or the copies the forward reads ('stored', widened from f16 at f16).
   */
  async readWeights(which: 'master' | 'stored' = 'master'): Promise<Record<ParamName, Float32Array>> {
    const out = {} as Record<ParamName, Float32Array>;
    for (const p of this.params) out[p.name] = await readTensor(this.layer.allocator, which === 'master' && p.master ? p.master : p.w);
    return out;
  }

  /** Gradients of the last step as stored (tests); they carry the loss scale lossScale(config). */
  async readGradients(): Promise<Record<ParamName, Float32Array>> {
    const out = {} as Record<ParamName, Float32Array>;
    for (const p of this.params) out[p.name] = await readTensor(this.layer.allocator, p.g);
    return out;
  }

  get memoryByTag() {
    return this.layer.allocator.peakComposition.byTag;
  }

  destroy(): void {
    for (const t of this.own) freeTensor(this.layer.allocator, t);
    this.layer.destroy();
  }
}
