/**
 * The model of src/train/model.ts on the GPU: dense layers, residual, MSE gradient and Adam in
 * kernels/train.ts, the MoE layer through MoELayer with any strategy. Every buffer comes from the
 * layer's allocator (Adam's m and v under the 'optimizer' tag), so its peak covers the model.
 */
import { encodeAdam, encodeAdd, encodeGemmNN, encodeGemmNT, encodeGemmTN, encodeMseGrad } from '../../kernels/train.js';
import { UsageError } from '../errors.js';
import type { BufferTag } from '../gpu/allocator.js';
import { readTensor } from '../gpu/readback.js';
import type { GpuContext } from '../gpu/runtime.js';
import { allocateTensor, chunkLayout, freeTensor, uploadTensor, type Tensor } from '../gpu/tensor.js';
import { MoELayer } from '../layer.js';
import { moeConfig, studentWeights, TeacherData, type TrainConfig } from './model.js';

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

type ParamName = 'Win' | 'Wout' | 'Wr' | 'W1' | 'W2' | 'W3';

function single(t: Tensor) {
  if (t.chunks.length !== 1) throw new UsageError(`train: tensor ${t.name} is split into ${t.chunks.length} chunks; use smaller shapes`);
  return t.chunks[0];
}

export class GpuTrainer {
  private readonly data: TeacherData;
  private readonly own: Tensor[] = [];
  private readonly t: Record<'x' | 'target' | 'Win' | 'Wout' | 'dWin' | 'dWout' | 'r' | 'y' | 'dY' | 'dZ', Tensor>;
  private readonly adam: { p: Tensor; g: Tensor; m: Tensor; v: Tensor; name: ParamName }[] = [];
  private stepIndex = 0;

  private constructor(
    readonly gpu: GpuContext,
    readonly config: TrainConfig,
    readonly layer: MoELayer,
  ) {
    const c = config;
    const { tokens: T, inputDim: di, hidden: d, outputDim: dout } = c;
    const a = layer.allocator;
    const whole = (rows: number, cols: number) => chunkLayout(rows, cols, 4, Infinity);
    const alloc = (name: string, tag: BufferTag, rows: number, cols: number) => {
      const tensor = allocateTensor(a, name, tag, whole(rows, cols));
      this.own.push(tensor);
      return tensor;
    };
    this.t = {
      x: alloc('x', 'input', T, di),
      target: alloc('target', 'input', T, dout),
      Win: alloc('W_in', 'weights', di, d),
      Wout: alloc('W_out', 'weights', d, dout),
      dWin: alloc('dW_in', 'gradients', di, d),
      dWout: alloc('dW_out', 'gradients', d, dout),
      r: alloc('r', 'activations-saved', T, d),
      y: alloc('y', 'output', T, dout),
      dY: alloc('dY', 'workspace', T, dout),
      dZ: alloc('dZ', 'workspace', T, d),
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
    for (const [name, p, g] of params) {
      const m = allocateTensor(a, `adam.m.${name}`, 'optimizer', p.layout);
      const v = allocateTensor(a, `adam.v.${name}`, 'optimizer', p.layout);
      this.own.push(m, v);
      this.adam.push({ p, g, m, v, name });
    }
    this.data = new TeacherData(c);
  }

  static async create(gpu: GpuContext, config: TrainConfig, strategy: string): Promise<GpuTrainer> {
    const mc = moeConfig(config);
    const layer = await MoELayer.create(gpu, {
      tokens: mc.tokens,
      hidden: mc.hidden,
      ffn: mc.ffn,
      numExperts: mc.experts,
      topK: mc.topK,
      dispatch: strategy,
      capacityFactor: mc.capacityFactor,
      auxLossCoef: mc.auxLossCoef,
      seed: mc.seed,
    });
    let trainer: GpuTrainer;
    try {
      trainer = new GpuTrainer(gpu, config, layer);
    } catch (error) {
      layer.destroy();
      throw error;
    }
    const w = studentWeights(config);
    layer.setInputs({ Wr: w.Wr, W1: w.W1, W2: w.W2, W3: w.W3 });
    uploadTensor(gpu.device, trainer.t.Win, w.Win);
    uploadTensor(gpu.device, trainer.t.Wout, w.Wout);
    const enc = layer.kernels.encoder();
    for (const s of trainer.adam) for (const buf of [...s.m.chunks, ...s.v.chunks]) enc.clear(buf);
    enc.flush();
    await layer.allocator.settle();
    await gpu.device.queue.onSubmittedWorkDone();
    return trainer;
  }

  /** One step: forward, loss, backward, Adam. Returns the loss of the weights before the update. */
  async step(): Promise<TrainStepRecord> {
    const c = this.config;
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
    await encodeGemmNN(enc, single(t.x), single(t.Win), X, T, d, di);
    enc.flush();
    await this.layer.forward();

    let aux = 0;
    if (c.auxLoss > 0) aux = await this.auxLoss();

    const O = single(this.requireTensor(this.layer.gpuTensors().output, 'output'));
    enc = this.layer.kernels.encoder();
    enc.beginPass('train-head');
    await encodeAdd(enc, X, O, single(t.r), T * d);
    await encodeGemmNN(enc, single(t.r), single(t.Wout), single(t.y), T, dout, d);
    await encodeMseGrad(enc, single(t.y), single(t.target), single(t.dY), T * dout, 2 / (T * dout));
    await encodeGemmTN(enc, single(t.r), single(t.dY), single(t.dWout), d, dout, T);
    await encodeGemmNT(enc, single(t.dY), single(t.Wout), dO, T, d, dout);
    enc.flush();
    await this.layer.backward();

    const dX = single(this.requireTensor(this.layer.gpuTensors().inputGrad, 'input gradient'));
    enc = this.layer.kernels.encoder();
    enc.beginPass('train-update');
    await encodeAdd(enc, dO, dX, single(t.dZ), T * d);
    await encodeGemmTN(enc, single(t.x), single(t.dZ), single(t.dWin), di, d, T);
    const step = this.stepIndex + 1;
    const hyper = { lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, bc1: 1 - c.beta1 ** step, bc2: 1 - c.beta2 ** step };
    for (const s of this.adam) {
      for (let k = 0; k < s.p.chunks.length; k++) {
        const count = s.p.chunks[k].bytes / 4;
        await encodeAdam(enc, s.p.chunks[k], s.g.chunks[k], s.m.chunks[k], s.v.chunks[k], count, hyper);
      }
    }
    enc.flush();
    await this.layer.allocator.settle();

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
    await encodeGemmNN(enc, single(this.t.x), single(this.t.Win), single(this.layer.gpuTensors().layer.X), c.tokens, c.hidden, c.inputDim);
    enc.flush();
    await this.layer.forward();
    return (await this.layer.routingSummary()).expertLoads;
  }

  /** Current weights, read back (tests). */
  async readWeights(): Promise<Record<ParamName, Float32Array>> {
    const out = {} as Record<ParamName, Float32Array>;
    for (const s of this.adam) out[s.name] = await readTensor(this.layer.allocator, s.p);
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
