/**
 * (Over 300 lines on purpose: one train step, forward through L layers and back, reads as one
 * sequence; its pieces that stand alone, Adam and the float64 reference, are in adam.ts and
 * reference.ts.)
 *
 * The model of src/train/model.ts on the GPU: dense layers, residuals, MSE gradient and Adam in
 * kernels/train.ts, each of the L MoE layers a MoELayer with any strategy. The layers share one
 * kernel context, so every buffer of the model comes from one allocator (Adam's m and v under
 * the 'optimizer' tag), and its peak is the peak of the L-layer step (docs/design.md#memory).
 *
 * At dtype f16 (mixed precision) the model's activations, weights and gradients are f16 — the
 * MoE layer's own tensors and x, z, r, y, dY, dZ, W_in, W_out and their gradients — while the
 * optimizer holds an f32 master copy of every f16 weight next to its f32 moments ('optimizer'
 * tag: 12 B per parameter, against 8 B at f32 where the weight is its own master). The router's
 * Wr and dWr stay f32 at any dtype (the layer's choice, so that routing matches f32): Wr is its
 * own master, 8 B. The label y* stays f32: the loss is computed against it in f64 on the host,
 * and its gradient in f32 on the GPU.
 */
import { encodeAdd, encodeGemmNN, encodeGemmNT, encodeGemmTN, encodeMseGrad } from '../../kernels/train.js';
import { UsageError } from '../errors.js';
import type { BufferTag } from '../gpu/allocator.js';
import { readTensor } from '../gpu/readback.js';
import type { GpuContext } from '../gpu/runtime.js';
import { allocateTensor, chunkLayout, freeTensor, uploadTensor, type ChunkLayout, type Tensor } from '../gpu/tensor.js';
import { floatBytes } from '../f16.js';
import { MoELayer, requireDtype } from '../layer.js';
import type { RoutingSummary } from '../strategy/contract.js';
import { stackFigures, type BufferTable } from '../strategy/buffer-table.js';
import { adamState, encodeParamUpdate, type ParamState } from './adam.js';
import { lossScale, MOE_PARAMS, moeConfig, studentWeights, type MoeWeights, type TrainConfig } from './model.js';
import { loadBalancingLoss, TeacherData } from './reference.js';

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
  /** The most bytes live during this step (the allocator's timeline). */
  stepPeakBytes: number;
  /** The same as the strategy's buffer tables predict it from this step's routing (stackFigures, plus the model's own buffers). */
  tablePeakBytes: number;
  /** Token-expert pairs this step routed (T·k per layer, every layer) and how many of them capacity dropped. */
  pairs: number;
  droppedPairs: number;
}

type MoeParam = keyof MoeWeights;

/** Layer 1's parameters keep the one-layer model's names; layer i > 1's are prefixed `layer<i>.`. */
export type ParamName = 'Win' | 'Wout' | MoeParam | `layer${number}.${MoeParam}`;

function paramName(layer: number, name: MoeParam): ParamName {
  return layer === 0 ? name : `layer${layer + 1}.${name}`;
}

export interface TrainerOptions {
  /** Largest chunk of a layer tensor (tests force it smaller) [default: the adapter's binding limit]. */
  chunkBytes?: number;
}

/** The step whose predicted peak was the largest so far: its layers' buffer tables, that peak, and the bytes live when it started. */
export interface PeakStep {
  step: number;
  tables: BufferTable[];
  tablePeakBytes: number;
  baselineBytes: number;
}

function single(t: Tensor) {
  if (t.chunks.length !== 1) throw new UsageError(`train: tensor ${t.name} is split into ${t.chunks.length} chunks; use smaller shapes`);
  return t.chunks[0];
}

function bytesOf(t: Tensor): number {
  return t.chunks.reduce((a, c) => a + c.bytes, 0);
}

/** The dense buffers of the model around its MoE layers. */
type DenseName = 'x' | 'target' | 'Win' | 'Wout' | 'dWin' | 'dWout' | 'r' | 'y' | 'dY' | 'dZ';

export class GpuTrainer {
  private readonly data: TeacherData;
  private readonly own: Tensor[] = [];
  private readonly t: Record<DenseName, Tensor>;
  private readonly params: ParamState[] = [];
  private stepIndex = 0;
  private peak: PeakStep | null = null;

  private constructor(
    readonly gpu: GpuContext,
    readonly config: TrainConfig,
    /** The MoE layers in model order, sharing layer 1's kernel context and allocator. */
    readonly layers: MoELayer[],
  ) {
    const c = config;
    const { tokens: T, inputDim: di, hidden: d, outputDim: dout } = c;
    const f = floatBytes(c.dtype);
    const alloc = (name: string, tag: BufferTag, layout: ChunkLayout) => {
      const tensor = allocateTensor(this.allocator, name, tag, layout);
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
    const params: [ParamName, Tensor, Tensor][] = [
      ['Win', this.t.Win, this.t.dWin],
      ['Wout', this.t.Wout, this.t.dWout],
    ];
    for (const [i, layer] of layers.entries()) {
      const lt = layer.gpuTensors().layer;
      const grads = { Wr: lt.dWr, W1: lt.dW1, W2: lt.dW2, W3: lt.dW3 };
      for (const name of MOE_PARAMS) params.push([paramName(i, name), lt[name]!, grads[name]!]);
    }
    for (const [name, w, g] of params) this.params.push(adamState(name, w, g, c.dtype, this.layer.chunkBytes, alloc));
    this.data = new TeacherData(c);
  }

  static async create(gpu: GpuContext, config: TrainConfig, strategy: string, options: TrainerOptions = {}): Promise<GpuTrainer> {
    requireDtype(gpu, config.dtype);
    // The layer adds the load-balancing gradient itself: it must carry the loss scale too.
    const mc = moeConfig(config);
    const layerConfig = { ...mc, auxLoss: mc.auxLoss * lossScale(config) };
    const layers: MoELayer[] = [];
    let trainer: GpuTrainer;
    try {
      for (let i = 0; i < config.layers; i++) {
        const kernels = layers[0]?.kernels;
        layers.push(await MoELayer.fromConfig(gpu, layerConfig, { impl: strategy, ...(options.chunkBytes && { chunkBytes: options.chunkBytes }), ...(kernels && { kernels }) }));
      }
      trainer = new GpuTrainer(gpu, config, layers);
    } catch (error) {
      // Layer 1 owns the shared kernel context: it goes last.
      for (const layer of layers.reverse()) layer.destroy();
      throw error;
    }
    const w = studentWeights(config);
    const initial = [w.Win, w.Wout, ...w.moe.flatMap((m) => MOE_PARAMS.map((name) => m[name]))];
    const enc = trainer.layer.kernels.encoder();
    for (const [i, p] of trainer.params.entries()) {
      // At f16 the weight copy is the initial weight rounded to f16; the master keeps it exactly.
      uploadTensor(gpu.device, p.w, initial[i]);
      if (p.master) uploadTensor(gpu.device, p.master, initial[i]);
      for (const buf of [...p.m.chunks, ...p.v.chunks]) enc.clear(buf);
    }
    enc.flush();
    await trainer.allocator.settle();
    await gpu.device.queue.onSubmittedWorkDone();
    return trainer;
  }

  /** The first MoE layer (the only one of a one-layer model). */
  get layer(): MoELayer {
    return this.layers[0];
  }

  get allocator() {
    return this.layer.allocator;
  }

  private get dtype() {
    return this.config.dtype;
  }

  /** Bytes of the model's own buffers (dense layers and every parameter's Adam state): live from creation to the end. */
  get ownBytes(): number {
    return this.own.reduce((a, t) => a + bytesOf(t), 0);
  }

  /** Bytes of the dense layers' buffers and their Adam state: what the model adds around its MoE layers. */
  get denseBytes(): number {
    const state = this.params.filter((p) => p.name === 'Win' || p.name === 'Wout').flatMap((p) => [p.m, p.v, p.master]);
    return [...Object.values(this.t), ...state].reduce((a, t) => a + (t ? bytesOf(t) : 0), 0);
  }

  /** The step with the largest predicted peak so far (null before the first step). */
  get peakStep(): PeakStep | null {
    return this.peak;
  }

  private encoder(pass: string) {
    const enc = this.layer.kernels.encoder();
    enc.beginPass(pass);
    return enc;
  }

  /**
   * One step: forward through layers 1..L (each one's output added to its input: the next layer's
   * X), loss, backward through L..1 (each one's dX added to its dO: the dO of the layer below),
   * Adam. A layer's outputs are released once its dX is consumed: stackFigures' schedule.
   * Returns the loss of the weights before the update.
   */
  async step(): Promise<TrainStepRecord> {
    const c = this.config;
    const dt = this.dtype;
    const { tokens: T, inputDim: di, hidden: d, outputDim: dout } = c;
    const t = this.t;
    const a = this.allocator;
    // The teacher runs on the host in float64; its time is not the model's.
    const batch = this.data.batch(this.stepIndex);
    const started = performance.now();
    const firstEvent = a.timeline.length;
    const liveAtStart = a.live;
    const device = this.gpu.device;
    uploadTensor(device, t.x, batch.x);
    uploadTensor(device, t.target, batch.target);
    const inputGrads = this.layers.map((layer) => single(layer.gpuTensors().layer.dO));
    let aux = 0;
    let pairs = 0;
    let droppedPairs = 0;
    const tables: BufferTable[] = [];
    await this.forwardPass(async (layer) => {
      const routing = await layer.routingSummary();
      pairs += layer.config.tokens * layer.config.topK;
      droppedPairs += routing.droppedPairs;
      tables.push(layer.strategy.bufferTable(layer.config, routing, { chunkBytes: layer.chunkBytes }));
      if (c.auxLoss > 0) aux += await this.auxLoss(layer, routing);
    });

    let enc = this.encoder('train-head');
    await encodeGemmNN(enc, dt, { A: single(t.r), B: single(t.Wout), C: single(t.y) }, T, dout, d);
    // Every gradient below carries the loss scale S (1 at f32); Adam divides it out.
    const S = lossScale(c);
    await encodeMseGrad(enc, dt, { y: single(t.y), tgt: single(t.target), dY: single(t.dY) }, T * dout, (S * 2) / (T * dout));
    await encodeGemmTN(enc, dt, { A: single(t.r), B: single(t.dY), C: single(t.dWout) }, d, dout, T);
    await encodeGemmNT(enc, dt, { A: single(t.dY), B: single(t.Wout), C: inputGrads.at(-1)! }, T, d, dout);
    enc.flush();
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const layer = this.layers[i];
      await layer.backward();
      enc = this.encoder('train-residual-grad');
      await encodeAdd(enc, dt, { a: inputGrads[i], b: single(this.requireTensor(layer.gpuTensors().inputGrad, 'input gradient')), out: i > 0 ? inputGrads[i - 1] : single(t.dZ) }, T * d);
      enc.flush();
      layer.releaseOutputs();
    }

    enc = this.encoder('train-update');
    await encodeGemmTN(enc, dt, { A: single(t.x), B: single(t.dZ), C: single(t.dWin) }, di, d, T);
    const step = this.stepIndex + 1;
    const hyper = { lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, bc1: 1 - c.beta1 ** step, bc2: 1 - c.beta2 ** step, gradScale: 1 / S };
    for (const p of this.params) await encodeParamUpdate(enc, p, hyper);
    enc.flush();
    await a.settle();

    // y is widened to f32 on readback; the loss is summed in float64.
    const y = await readTensor(a, t.y);
    let sse = 0;
    for (let i = 0; i < y.length; i++) {
      const e = y[i] - batch.target[i];
      sse += e * e;
    }
    const mse = sse / y.length;
    const tablePeakBytes = stackFigures(tables).stepPeak + this.ownBytes;
    if (!this.peak || tablePeakBytes > this.peak.tablePeakBytes) this.peak = { step: this.stepIndex, tables, tablePeakBytes, baselineBytes: liveAtStart };
    const record: TrainStepRecord = {
      step: this.stepIndex,
      loss: mse + aux,
      mse,
      aux,
      ms: performance.now() - started,
      peakBytes: a.peakComposition.bytes,
      stepPeakBytes: a.timeline.slice(firstEvent).reduce((m, e) => Math.max(m, e.live), liveAtStart),
      tablePeakBytes,
      pairs,
      droppedPairs,
    };
    this.stepIndex++;
    return record;
  }

  private requireTensor(t: Tensor | null, what: string): Tensor {
    if (!t) throw new Error(`the MoE layer produced no ${what}`);
    return t;
  }

  /** x·W_in into layer 1's X, then each layer's forward and residual (into the next layer's X; after the last, into r). */
  private async forwardPass(afterLayer: (layer: MoELayer) => Promise<void>): Promise<void> {
    const { tokens: T, inputDim: di, hidden: d } = this.config;
    const inputs = this.layers.map((layer) => single(layer.gpuTensors().layer.X));
    let enc = this.encoder('train-input-projection');
    await encodeGemmNN(enc, this.dtype, { A: single(this.t.x), B: single(this.t.Win), C: inputs[0] }, T, d, di);
    enc.flush();
    for (const [i, layer] of this.layers.entries()) {
      await layer.forward();
      await afterLayer(layer);
      enc = this.encoder('train-residual');
      await encodeAdd(enc, this.dtype, { a: inputs[i], b: single(this.requireTensor(layer.gpuTensors().output, 'output')), out: i + 1 < inputs.length ? inputs[i + 1] : single(this.t.r) }, T * d);
      enc.flush();
    }
  }

  /** A layer's load-balancing loss in its last forward, from its input and router weight. */
  private async auxLoss(layer: MoELayer, summary: RoutingSummary): Promise<number> {
    const lt = layer.gpuTensors().layer;
    return loadBalancingLoss(this.config, await readTensor(this.allocator, lt.X), await readTensor(this.allocator, lt.Wr), summary.expertLoads);
  }

  /** Each layer's expert loads under the model's current weights on the next batch (a forward pass only). */
  async expertLoads(): Promise<number[][]> {
    uploadTensor(this.gpu.device, this.t.x, this.data.batch(this.stepIndex).x);
    const loads: number[][] = [];
    await this.forwardPass(async (layer) => {
      loads.push((await layer.routingSummary()).expertLoads);
    });
    return loads;
  }

  /**
   * Current weights, read back (tests): the optimizer's parameters ('master', f32; at f32 the
   * weights themselves) or the copies the forward reads ('stored', widened from f16 at f16).
   */
  async readWeights(which: 'master' | 'stored' = 'master'): Promise<Record<ParamName, Float32Array>> {
    const out = {} as Record<ParamName, Float32Array>;
    for (const p of this.params) out[p.name as ParamName] = await readTensor(this.allocator, which === 'master' && p.master ? p.master : p.w);
    return out;
  }

  /** Gradients of the last step as stored (tests); they carry the loss scale lossScale(config). */
  async readGradients(): Promise<Record<ParamName, Float32Array>> {
    const out = {} as Record<ParamName, Float32Array>;
    for (const p of this.params) out[p.name as ParamName] = await readTensor(this.allocator, p.g);
    return out;
  }

  get memoryByTag() {
    return this.allocator.peakComposition.byTag;
  }

  destroy(): void {
    for (const t of this.own) freeTensor(this.allocator, t);
    // Layer 1 owns the shared kernel context: it goes last.
    for (const layer of [...this.layers].reverse()) layer.destroy();
  }
}
