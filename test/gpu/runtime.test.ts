import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuError } from '../../src/errors.js';
import { adapterIndex, enumerateAdapters, openGpu, withGpuErrors, type GpuContext } from '../../src/gpu/runtime.js';
import { randomArray } from '../helpers/gpu.js';

const AXPB = /* wgsl */ `
struct Params { a: f32, b: f32, n: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < params.n) { y[id.x] = params.a * x[id.x] + params.b; }
}`;

let gpu: GpuContext;

beforeAll(async () => {
  gpu = await openGpu();
});

afterAll(() => gpu?.destroy());

async function axpb(device: GPUDevice, x: Float32Array, a: number, b: number): Promise<Float32Array> {
  const n = x.length;
  const params = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const paramData = new ArrayBuffer(16);
  new Float32Array(paramData, 0, 2).set([a, b]);
  new Uint32Array(paramData, 8, 1)[0] = n;
  device.queue.writeBuffer(params, 0, paramData);
  const xs = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(xs, 0, x as Float32Array<ArrayBuffer>);
  const ys = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const staging = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: AXPB }), entryPoint: 'main' } });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [params, xs, ys].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(n / 64));
  pass.end();
  encoder.copyBufferToBuffer(ys, 0, staging, 0, n * 4);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  for (const buffer of [params, xs, ys, staging]) buffer.destroy();
  return out;
}

describe('GPU runtime', () => {
  it('opens a device with the adapter report and its maximum limits', () => {
    expect(gpu.adapter.description.length).toBeGreaterThan(0);
    expect(gpu.adapter.features).toContain('timestamp-query');
    expect(gpu.hasTimestamps).toBe(true);
    expect(gpu.maxBindingBytes).toBe(gpu.adapter.limits.maxStorageBufferBindingSize);
    expect(gpu.maxBufferBytes).toBe(gpu.adapter.limits.maxBufferSize);
  });

  it('runs a WGSL kernel whose result matches the CPU, with a tail that is not a multiple of the workgroup', async () => {
    const n = 5003;
    const x = randomArray(n, 7);
    const [a, b] = [1.75, -0.5];
    const y = await withGpuErrors(gpu.device, 'axpb', () => axpb(gpu.device, x, a, b));
    expect(y.length).toBe(n);
    let worst = 0;
    // f32 fma vs f32 multiply-then-add differ by at most one rounding.
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(y[i] - Math.fround(Math.fround(a * x[i]) + b)));
    expect(worst).toBeLessThanOrEqual(2 ** -22);
    expect(y[n - 1]).not.toBe(0);
  });

  it('turns an invalid dispatch into a GpuError that names the kernel', async () => {
    const { device } = gpu;
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: AXPB }), entryPoint: 'main' } });
    const buffers = [16, 64, 64].map((size, i) => device.createBuffer({ size, usage: i === 0 ? GPUBufferUsage.UNIFORM : GPUBufferUsage.STORAGE }));
    const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) });
    const run = withGpuErrors(device, 'too-many-workgroups', () => {
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      // The one error: one workgroup more than the limit allows.
      pass.dispatchWorkgroups(device.limits.maxComputeWorkgroupsPerDimension + 1);
      pass.end();
      device.queue.submit([encoder.finish()]);
    });
    await expect(run).rejects.toBeInstanceOf(GpuError);
    await expect(run).rejects.toMatchObject({ kernel: 'too-many-workgroups', exitCode: 1 });
    await expect(run).rejects.toThrow(/too-many-workgroups/);
    for (const buffer of buffers) buffer.destroy();
    // The device survives a validation error: the next kernel still runs.
    const y = await withGpuErrors(device, 'axpb', () => axpb(device, new Float32Array([1, 2, 3]), 2, 1));
    expect([...y]).toEqual([3, 5, 7]);
  });

  it('enumerates the adapters, llvmpipe among them with timestamp-query', async () => {
    const adapters = await enumerateAdapters();
    const llvmpipe = adapters.find((a) => /llvmpipe/i.test(`${a.description} ${a.device}`));
    expect(llvmpipe, `adapters: ${adapters.map((a) => a.description).join(', ')}`).toBeDefined();
    expect(llvmpipe!.features).toContain('timestamp-query');
    expect(llvmpipe!.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(llvmpipe!.backend).toBe('vulkan');
  });

  it('refuses an adapter name that matches nothing with the exit-4 error naming what it found', async () => {
    await expect(openGpu({ adapter: 'no-such-gpu' })).rejects.toMatchObject({ exitCode: 4, message: expect.stringMatching(/no-such-gpu.*llvmpipe.*or a number 0–/s) });
  });

  it('--adapter N opens adapter N as `devices` numbers them (issue 32); a number past the last is a name', async () => {
    expect(adapterIndex('0', 4)).toBe(0);
    expect(adapterIndex(' 3 ', 4)).toBe(3);
    for (const name of ['4', '4090', '-1', '1.0', 'a1', '']) expect(adapterIndex(name, 4), name).toBeNull();
    const adapters = await enumerateAdapters();
    expect(adapters.map((a) => a.index)).toEqual(adapters.map((_, i) => i));
    const last = adapters.length - 1;
    const opened = await openGpu({ adapter: String(last) });
    try {
      expect(opened.adapter.index).toBe(last);
      expect(opened.adapter.description).toBe(adapters[last].description);
    } finally {
      opened.destroy();
    }
    // Past the last adapter, a number is matched as a name ("1" is in llvmpipe's "LLVM 15.0.6").
    const absent = String(97531 + adapters.length);
    expect(adapters.some((a) => `${a.vendor} ${a.architecture} ${a.device} ${a.description}`.includes(absent))).toBe(false);
    await expect(openGpu({ adapter: absent })).rejects.toMatchObject({ exitCode: 4, message: expect.stringContaining(`no adapter matches "${absent}"`) });
    const elsewhere = adapters[last].backend === 'vulkan' ? 'metal' : 'vulkan';
    await expect(openGpu({ adapter: String(last), backend: elsewhere })).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(new RegExp(`^--adapter ${last} is .* not on --backend ${elsewhere}`)) });
  });
});
