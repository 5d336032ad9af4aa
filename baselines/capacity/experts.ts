import { activationGradGrid } from '../../kernels/activation.js';
import { capacityGemms } from './gemm-kernels.js';
import { chunkRowRange, type Tensor } from '../../src/gpu/tensor.js';
import type { LayerTensors, StepContext } from '../../src/strategy/contract.js';
import { CapacityRunnerBase } from './runner.js';
import { routeTokensBackward } from '../../src/strategy/router.js';

/**
 * The batched expert MLP over the padded [E, C, ·] grid, forward and backward, as a capacity
 * framework runs it through autograd: every intermediate is its own tensor (a, b, u and y saved;
 * dU, da, db, d(dispatched) materialised in backward) and each is released once its last
 * consumer has run. Subclasses define how tokens enter and leave the grid. All of them are stored
 * at the layer's dtype, as autograd keeps activations and gradients in the input's dtype.
 */
export abstract class CapacityRunner extends CapacityRunnerBase {
  private readonly gemms = capacityGemms(this.c.activation, this.c.dtype);

  /** Enters the dispatch phase(s); allocates and fills `dispatched` [E,C,d]. */
  protected abstract dispatchForward(step: StepContext, layer: LayerTensors): Promise<void>;
  /** Enters the combine phase; allocates and fills `O` [T,d] from `y`. */
  protected abstract combineForward(step: StepContext, layer: LayerTensors): Promise<void>;
  /** Enters the combine-gradient phase; allocates and fills `dY` (gate-weighted) and `dgPartial`. */
  protected abstract combineBackward(step: StepContext, layer: LayerTensors): Promise<void>;
  /** Enters the dispatch-gradient phase; adds the experts' share of dX from `dDispatched`. */
  protected abstract dispatchBackward(step: StepContext, layer: LayerTensors): Promise<void>;

  private get swiglu(): boolean {
    return this.c.activation === 'swiglu';
  }

  async forward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    return this.orRelease(step, () => this.runForward(step, layer));
  }

  async backward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    return this.orRelease(step, () => this.runBackward(step, layer));
  }

  /** A failed step (out of memory, a refused shape) leaves nothing allocated behind it. */
  private async orRelease(step: StepContext, run: () => Promise<Tensor>): Promise<Tensor> {
    try {
      return await run();
    } catch (error) {
      this.release(step);
      throw error;
    }
  }

  private async runForward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    const { hidden: d, ffn: h } = this.c;
    const swiglu = this.swiglu;
    await this.route(step, layer);
    await this.dispatchForward(step, layer);

    this.enter(step, 'up');
    for (const name of swiglu ? ['a', 'b', 'siluA', 'u'] : ['a', 'u']) this.alloc(step, name);
    await this.expertRows(step, this.gemms.up, layer.W1, h, d, (x) => ({
      dispatched: this.chunk('dispatched', x.ac),
      W1: layer.W1.chunks[x.wc],
      ...(swiglu && { W3: layer.W3!.chunks[x.wc] }),
      A: this.chunk('a', x.ac),
      ...(swiglu && { B: this.chunk('b', x.ac), S: this.chunk('siluA', x.ac) }),
      U: this.chunk('u', x.ac),
    }));

    this.enter(step, 'down');
    this.alloc(step, 'y');
    await this.expertRows(step, this.gemms.down, layer.W2, d, h, (x) => ({ U: this.chunk('u', x.ac), W2: layer.W2.chunks[x.wc], Y: this.chunk('y', x.ac) }));

    await this.combineForward(step, layer);
    this.endPhase(step);
    return this.get('O');
  }

  private async runBackward(step: StepContext, layer: LayerTensors): Promise<Tensor> {
    const c = this.c;
    const { hidden: d, ffn: h } = c;
    const swiglu = this.swiglu;
    await this.combineBackward(step, layer);

    this.enter(step, 'router-grad');
    this.alloc(step, 'routerGrad');
    this.alloc(step, 'dX');
    // pairRows = slots: a kept pair's dg sits at its slot in dgPartial; a dropped pair reads 0.
    await routeTokensBackward(step, layer, (name) => this.chunk(name), { dgParts: 1, names: { pairRows: 'slots', dgPartial: 'dgPartial' } });

    this.enter(step, 'down-grad');
    // With C > 0 every expert's first row chunk stores its weight gradient; with C = 0 no row does.
    if (this.C === 0) for (const chunk of layer.dW2.chunks) step.enc.clear(chunk);
    await this.expertReduce(step, this.gemms.dW2, layer.dW2, h, d, (x) => ({ U: this.chunk('u', x.ac), dY: this.chunk('dY', x.ac), dW2: layer.dW2.chunks[x.wc] }));
    this.alloc(step, 'dU');
    await this.expertRows(step, this.gemms.dU, layer.W2, h, d, (x) => ({ dY: this.chunk('dY', x.ac), W2: layer.W2.chunks[x.wc], dU: this.chunk('dU', x.ac) }));

    this.enter(step, 'act-grad');
    for (const name of swiglu ? ['da', 'db'] : ['da']) this.alloc(step, name);
    const hidden = this.get('dU').layout;
    const source = this.gemms.actGrad;
    const grads = (i: number) => ({ dA: this.chunk('da', i), ...(swiglu && { dB: this.chunk('db', i) }) });
    for (let i = 0; i < hidden.chunkCount; i++) {
      const count = chunkRowRange(hidden, i).count * h;
      if (count === 0) continue;
      const buffers = { dU: this.chunk('dU', i), A: this.chunk('a', i), ...(swiglu && { B: this.chunk('b', i) }), ...grads(i) };
      await step.enc.dispatch({ source, params: { count }, buffers, workgroups: activationGradGrid(count) });
    }

    this.enter(step, 'up-grad');
    if (this.C === 0) for (const g of [layer.dW1, layer.dW3]) if (g) for (const chunk of g.chunks) step.enc.clear(chunk);
    await this.expertReduce(step, this.gemms.dW13, layer.dW1, d, h, (x) => ({
      dispatched: this.chunk('dispatched', x.ac),
      ...grads(x.ac),
      dW1: layer.dW1.chunks[x.wc],
      ...(swiglu && { dW3: layer.dW3!.chunks[x.wc] }),
    }));
    this.alloc(step, 'dDispatched');
    await this.expertRows(step, this.gemms.dDispatched, layer.W1, d, swiglu ? 2 * h : h, (x) => ({
      ...grads(x.ac),
      W1: layer.W1.chunks[x.wc],
      ...(swiglu && { W3: layer.W3!.chunks[x.wc] }),
      dDispatched: this.chunk('dDispatched', x.ac),
    }));

    await this.dispatchBackward(step, layer);
    this.endPhase(step);
    return this.get('dX');
  }
}
