// Dense f16 GEMM sweep of the subgroup-matrix engine's tile configurations through the project's
// own core (docs/performance.md, session 5). Run on the device machine after `npm run build`:
//   node tools/gemm-bench.mjs [--no-robustness] [--toggles a,b] [--n 8192] [--only name,name]
// Prints one line per variant: TFLOP/s (median of timestamped runs after a warm-up), and the
// largest relative error of 64 sampled outputs against a float64 reference (f16-rounded inputs).
import { KernelContext } from '../dist/kernels/context.js';
import { gemmGrid, gemmSource } from '../dist/kernels/gemm/core.js';
import { denseGemm, denseGemmSpec } from '../dist/kernels/gemm/dense.js';
import { GpuAllocator } from '../dist/src/gpu/allocator.js';
import { openGpu } from '../dist/src/gpu/runtime.js';
import { matrixFragment } from '../dist/kernels/gemm/engine-choice.js';
import { GpuTimer } from '../dist/src/gpu/timer.js';
import { fromHalf, toHalf } from '../dist/src/f16.js';

const args = process.argv.slice(2);
const robustness = !args.includes('--no-robustness');
const extraToggles = args.includes('--toggles') ? args[args.indexOf('--toggles') + 1].split(',') : [];
const N = Number(args[args.indexOf('--n') + 1] || 8192) || 8192;
const only = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : null;

function spec(name, tile, sm, vectors = true) {
  return denseGemmSpec('f16', { name: `bench-${name}`, tile, subgroupMatrix: sm, vectors });
}

const VARIANTS = [
  ['project-dense', null],
  ['scalar-128x128-k32', spec('s', { m: 128, n: 128 }, { k: 32 }, false)],
  ['vec-128x128-k32', spec('v1', { m: 128, n: 128 }, { k: 32 })],
  ['scalar-128x128-k64', spec('s64', { m: 128, n: 128 }, { k: 64 }, false)],
  ['vec8scalar-128x128-k32', spec('v2', { m: 128, n: 128 }, { k: 32, views: false })],
  ['vec-128x128-k64', spec('v3', { m: 128, n: 128 }, { k: 64 })],
  ['vec-128x128-k32-s2', spec('v4', { m: 128, n: 128 }, { k: 32, stages: 2 })],
  ['vec-64x128-k32-s2', spec('v4b', { m: 64, n: 128 }, { k: 32, stages: 2 })],
  ['vec-128x128-k32-g42', spec('v5', { m: 128, n: 128 }, { k: 32, grid: [4, 2] })],
  ['vec-128x256-k32', spec('v6', { m: 128, n: 256 }, { k: 32 })],
  ['vec-128x256-k16-s2', spec('v7', { m: 128, n: 256 }, { k: 16, stages: 2 })],
  ['vec-64x128-k32', spec('v8', { m: 64, n: 128 }, { k: 32 })],
  ['vec-64x128-k64', spec('v9', { m: 64, n: 128 }, { k: 64 })],
  // Diagnostics: no range tests on the staged loads (8192³ has only whole tiles), what the guards cost.
  ['unguarded-128x128-k64', spec('d1', { m: 128, n: 128 }, { k: 64, guards: 'never' })],
  ['always-128x128-k64', spec('e1', { m: 128, n: 128 }, { k: 64, guards: 'always' })],
  ['unguarded-128x256-k32', spec('d2', { m: 128, n: 256 }, { k: 32, guards: 'never' })],
  // Where the time goes (wrong products, errors not meaningful): the multiply and barriers alone,
  // the staging and barriers alone, at the default tile and K.
  ['stage-once-128x128-k64', spec('x1', { m: 128, n: 128 }, { k: 64, diagnostic: 'stage-once' })],
  ['no-multiply-128x128-k64', spec('x2', { m: 128, n: 128 }, { k: 64, diagnostic: 'no-multiply' })],
  ['stage-once-128x256-k32', spec('x3', { m: 128, n: 256 }, { k: 32, diagnostic: 'stage-once' })],
  // Warp specialization: 4 subgroups stage into two buffers while 4 multiply (64×64 each, 16 accumulators).
  ['spec-128x128-k32-p4', spec('p1', { m: 128, n: 128 }, { k: 32, producers: 4 })],
  ['spec-128x128-k16-p4', spec('p2', { m: 128, n: 128 }, { k: 16, producers: 4 })],
  ['spec-64x128-k32-p4', spec('p3', { m: 64, n: 128 }, { k: 32, producers: 4 })],
  // The multiply-adds and barriers alone (fragments loaded once): against stage-once, the fragment loads.
  ['fragments-once-128x128-k64', spec('x4', { m: 128, n: 128 }, { k: 64, diagnostic: 'fragments-once' })],
];

const gpu = await openGpu({ robustness, extraToggles });
console.log(`adapter: ${gpu.adapter.description ?? ''} ${gpu.adapter.vendor ?? ''} ${gpu.adapter.architecture ?? ''}; robustness ${robustness ? 'on' : 'off'}, toggles ${gpu.toggles.enabled.join(',')}; N=${N}`);
const allocator = new GpuAllocator(gpu.device, { maxBufferBytes: gpu.maxBufferBytes, maxBindingBytes: gpu.maxBindingBytes });
const kernels = new KernelContext(allocator, args.includes('--emulated') ? 'subgroup-matrix-emulated' : 'subgroup-matrix', { fragment: matrixFragment(gpu) });
const timer = new GpuTimer(allocator, 8);
const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
const bufs = ['A', 'B', 'C'].map((n) => allocator.create(`bench:${n}`, 'workspace', N * N * 2, usage));
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
const a = toHalf(new Float32Array(N * N).map(rand));
const b = toHalf(new Float32Array(N * N).map(rand));
gpu.device.queue.writeBuffer(bufs[0].buffer, 0, a);
gpu.device.queue.writeBuffer(bufs[1].buffer, 0, b);
const af = fromHalf(a);
const bf = fromHalf(b);

async function readC() {
  const st = gpu.device.createBuffer({ size: N * N * 2, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const e = gpu.device.createCommandEncoder();
  e.copyBufferToBuffer(bufs[2].buffer, 0, st, 0, N * N * 2);
  gpu.device.queue.submit([e.finish()]);
  await st.mapAsync(GPUMapMode.READ);
  const c = fromHalf(new Uint16Array(st.getMappedRange().slice(0)));
  st.destroy();
  return c;
}

async function once(source) {
  const enc = kernels.encoder(timer.writes);
  await enc.dispatch({ source, params: { M: N, N, K: N }, buffers: { A: bufs[0], B: bufs[1], C: bufs[2] }, workgroups: gemmGrid({ M: N }, N) });
  enc.flush();
  await gpu.device.queue.onSubmittedWorkDone();
  return (await timer.read(enc.passes)).totalMs;
}

const rows = [];
for (const [name, s] of VARIANTS) {
  if (only && !only.includes(name)) continue;
  const source = s ? gemmSource(s) : denseGemm('f16');
  const before = kernels.engineFallbacks.length;
  try {
    gpu.device.queue.writeBuffer(bufs[2].buffer, 0, new Uint16Array(N * N).fill(0x7e00)); // NaN poison
    await once(source);
    const c = await readC();
    let worst = 0;
    for (let s2 = 0; s2 < 64; s2++) {
      const m = Math.floor(Math.abs(rand()) * 2 * N) % N;
      const n = Math.floor(Math.abs(rand()) * 2 * N) % N;
      let ref = 0;
      let scale = 0;
      for (let k = 0; k < N; k++) {
        const p = af[m * N + k] * bf[k * N + n];
        ref += p;
        scale += Math.abs(p);
      }
      const g = c[m * N + n];
      worst = Number.isFinite(g) ? Math.max(worst, Math.abs(g - ref) / (scale / Math.sqrt(N))) : Infinity;
    }
    const t0 = performance.now();
    while (performance.now() - t0 < 1500) await once(source);
    const samples = [];
    for (let i = 0; i < 15; i++) samples.push(await once(source));
    samples.sort((x, y) => x - y);
    const ms = samples[7];
    const fell = kernels.engineFallbacks.length > before ? ' FELL BACK TO SIMT: ' + kernels.engineFallbacks.slice(before).join('; ') : '';
    rows.push(`${name.padEnd(26)} ${((2 * N ** 3) / (ms * 1e-3) / 1e12).toFixed(1).padStart(6)} TFLOP/s  ${ms.toFixed(2)} ms  err ${worst.toExponential(1)}${fell}`);
  } catch (e) {
    rows.push(`${name.padEnd(26)} FAILED: ${String(e.message ?? e).split('\n').slice(0, 3).join(' | ')}`);
  }
  console.log(rows[rows.length - 1]);
}
if (!only || only.includes('simt-f32-4096')) {
  // The SIMT f32 core (the portable default): must not get slower.
  const simt = new KernelContext(allocator, 'simt');
  const n = 4096;
  const f = ['a', 'b', 'c'].map((x) => allocator.create(`simt:${x}`, 'workspace', n * n * 4, usage));
  gpu.device.queue.writeBuffer(f[0].buffer, 0, new Float32Array(n * n).map(rand));
  gpu.device.queue.writeBuffer(f[1].buffer, 0, new Float32Array(n * n).map(rand));
  const run = async () => {
    const enc = simt.encoder(timer.writes);
    await enc.dispatch({ source: denseGemm('f32'), params: { M: n, N: n, K: n }, buffers: { A: f[0], B: f[1], C: f[2] }, workgroups: gemmGrid({ M: n }, n) });
    enc.flush();
    await gpu.device.queue.onSubmittedWorkDone();
    return (await timer.read(enc.passes)).totalMs;
  };
  const t0 = performance.now();
  while (performance.now() - t0 < 1000) await run();
  const s = [];
  for (let i = 0; i < 15; i++) s.push(await run());
  s.sort((x, y) => x - y);
  console.log(`${'simt-f32-4096'.padEnd(26)} ${((2 * n ** 3) / (s[7] * 1e-3) / 1e12).toFixed(1).padStart(6)} TFLOP/s  ${s[7].toFixed(2)} ms`);
}
gpu.destroy();
process.exit(0);
