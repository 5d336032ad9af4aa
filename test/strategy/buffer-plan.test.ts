import { describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { chunkLayout } from '../../src/gpu/tensor.js';
import { BufferPlan } from '../../src/strategy/buffer-plan.js';
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

describe('BufferPlan', () => {
  it('allocates what the table declares, frees it when its last phase ends, and keeps outputs until release', async () => {
    const { kernels, step } = await stepContext();
    const base = kernels.allocator.live;
    const plan = new BufferPlan('test');
    plan.use(table());
    plan.enter(step, 'one');
    plan.alloc(step, 'a');
    expect(kernels.allocator.live - base).toBe(40);
    plan.enter(step, 'two');
    plan.alloc(step, 'b', 'c');
    expect(plan.layoutOf('b')).toEqual(vec(20));
    expect(kernels.allocator.live - base).toBe(40 + 80 + 120);
    plan.enter(step, 'three');
    expect(plan.has('a')).toBe(false);
    expect(plan.has('b')).toBe(false);
    expect(kernels.allocator.live - base).toBe(120);
    plan.alloc(step, 'a'); // the second entry of a, starting in this phase
    plan.endPhase(step);
    expect(plan.get('c').tag).toBe('output');
    expect(kernels.allocator.live - base).toBe(120);
    plan.release(step);
    expect(kernels.allocator.live).toBe(base);
  });

  it('refuses what the table does not say: unknown names, the wrong phase, phases going back, a second live copy', async () => {
    const { kernels, step } = await stepContext();
    const base = kernels.allocator.live;
    const plan = new BufferPlan('test');
    expect(() => plan.enter(step, 'one')).toThrow(/no buffer table in use/);
    plan.use(table());
    expect(() => plan.enter(step, 'four')).toThrow(/phase four is not in the buffer table/);
    plan.enter(step, 'one');
    expect(() => plan.alloc(step, 'nope')).toThrow(/nope is not in the buffer table/);
    expect(() => plan.alloc(step, 'b')).toThrow(/b is planned from phase two, allocated in one/);
    plan.alloc(step, 'a');
    expect(() => plan.alloc(step, 'a')).toThrow(/a is already live/);
    expect(() => plan.get('b')).toThrow(/b is not live/);
    plan.enter(step, 'two');
    expect(() => plan.enter(step, 'one')).toThrow(/phase one comes before two/);
    plan.release(step);
    expect(kernels.allocator.live).toBe(base);
  });

  it('re-plans mid-step only when the live buffers keep their size', async () => {
    const { step } = await stepContext();
    const plan = new BufferPlan('test');
    plan.use(table(10));
    plan.enter(step, 'one');
    plan.alloc(step, 'a');
    expect(() => plan.use(table(12))).toThrow(/changes a, which is live/);
    plan.use(table(10));
    plan.enter(step, 'two'); // the order survives a re-plan mid-step
    expect(() => plan.enter(step, 'one')).toThrow(/comes before/);
    plan.release(step);
  });
});
