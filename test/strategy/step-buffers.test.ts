import { describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { chunkLayout } from '../../src/gpu/tensor.js';
import { StepBuffers } from '../../src/strategy/step-buffers.js';
import { spec, type BufferTable } from '../../src/strategy/buffer-table.js';
import { StepContext } from '../../src/strategy/contract.js';
import { testKernels } from '../helpers/gpu.js';

const PHASES = ['one', 'two', 'three'];
const vec = (n: number) => chunkLayout(n, 1, 4, Infinity);

/** a: one..two, b: two..two, c (output): two..three, a again (recomputed): three..three. */
function table(aRows = 10): BufferTable {
  return {
    phases: PHASES,
    forwardEnd: 'two',
    persistent: [],
    step: [
      spec('a', 'activations-saved', vec(aRows), [aRows], 'f32', 'one', 'two'),
      spec('b', 'workspace', vec(20), [20], 'f32', 'two', 'two'),
      spec('c', 'output', vec(30), [30], 'f32', 'two', 'three'),
      spec('a', 'workspace', vec(aRows), [aRows], 'f32', 'three', 'three'),
    ],
  };
}

async function stepContext() {
  const kernels = await testKernels();
  return { kernels, step: new StepContext(kernels, kernels.encoder(), layerConfig({}), Infinity) };
}

describe('StepBuffers', () => {
  it('allocates what the table declares, frees it when its last phase ends, and keeps outputs until release', async () => {
    const { kernels, step } = await stepContext();
    const base = kernels.allocator.live;
    const buffers = new StepBuffers('test');
    buffers.use(table());
    buffers.enter(step, 'one');
    buffers.alloc(step, 'a');
    expect(kernels.allocator.live - base).toBe(40);
    buffers.enter(step, 'two');
    buffers.alloc(step, 'b', 'c');
    expect(buffers.layoutOf('b')).toEqual(vec(20));
    expect(kernels.allocator.live - base).toBe(40 + 80 + 120);
    buffers.enter(step, 'three');
    expect(buffers.has('a')).toBe(false);
    expect(buffers.has('b')).toBe(false);
    expect(kernels.allocator.live - base).toBe(120);
    buffers.alloc(step, 'a'); // the second entry of a, starting in this phase
    buffers.endPhase(step);
    expect(buffers.get('c').tag).toBe('output');
    expect(kernels.allocator.live - base).toBe(120);
    buffers.release(step);
    expect(kernels.allocator.live).toBe(base);
  });

  it('refuses what the table does not say: unknown names, the wrong phase, phases going back, a second live copy', async () => {
    const { kernels, step } = await stepContext();
    const base = kernels.allocator.live;
    const buffers = new StepBuffers('test');
    expect(() => buffers.enter(step, 'one')).toThrow(/no buffer table in use/);
    buffers.use(table());
    expect(() => buffers.enter(step, 'four')).toThrow(/phase four is not in the buffer table/);
    buffers.enter(step, 'one');
    expect(() => buffers.alloc(step, 'nope')).toThrow(/nope is not in the buffer table/);
    expect(() => buffers.alloc(step, 'b')).toThrow(/b is planned from phase two, allocated in one/);
    buffers.alloc(step, 'a');
    expect(() => buffers.alloc(step, 'a')).toThrow(/a is already live/);
    expect(() => buffers.get('b')).toThrow(/b is not live/);
    buffers.enter(step, 'two');
    expect(() => buffers.enter(step, 'one')).toThrow(/phase one comes before two/);
    buffers.release(step);
    expect(kernels.allocator.live).toBe(base);
  });

  it('re-plans mid-step only when the live buffers keep their size', async () => {
    const { step } = await stepContext();
    const buffers = new StepBuffers('test');
    buffers.use(table(10));
    buffers.enter(step, 'one');
    buffers.alloc(step, 'a');
    expect(() => buffers.use(table(12))).toThrow(/changes a, which is live/);
    buffers.use(table(10));
    buffers.enter(step, 'two'); // the order survives a table swapped in mid-step
    expect(() => buffers.enter(step, 'one')).toThrow(/comes before/);
    buffers.release(step);
  });
});
