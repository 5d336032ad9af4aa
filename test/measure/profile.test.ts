import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tableFigures } from '../../src/strategy/buffer-table.js';
import { layerConfig } from '../../src/config.js';
import { MIB, type DriverRead } from '../../src/measure/driver-memory.js';
import { chromeTrace, profileStrategies, type DriverProbe } from '../../src/measure/profile.js';
import { packageRoot } from '../../src/measure/provenance.js';
import { phaseSummary, renderProfile, sparkline } from '../../src/render/profile.js';
import { liveByTag, renderProfileHtml } from '../../src/render/profile-html.js';
import { zeroBuffer } from '../../src/zero-buffer/zero-buffer.js';
import { formatBytes } from '../../src/units.js';
import { testGpu } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

describe('profile', () => {
  it('breaks a step into kernels and writes a trace that Perfetto can load', async () => {
    const config = layerConfig({ tokens: 96, hidden: 16, ffn: 32, experts: 4, topK: 2 });
    const result = await profileStrategies(await testGpu(), config, ['zero-buffer']);
    const [zb] = result.strategies;
    // T/E = 24 rows per expert: the combine and dX go through scratch row blocks of T rows, R/T = 2 blocks.
    expect(zb.kernels.map((k) => k.kernel)).toEqual(expect.arrayContaining(['router-logits', 'router-topk', 'expert-up-swiglu', 'expert-dX-swiglu-rows', 'row-reduce']));
    expect(zb.kernels.find((k) => k.kernel === 'expert-dX-swiglu-rows')!.calls).toBe(2);
    expect(zb.kernels.find((k) => k.kernel === 'row-reduce')!.calls).toBe(4);
    expect(zb.kernels.reduce((a, k) => a + k.percent, 0)).toBeCloseTo(100, 6);
    expect(zb.stepMs).toBeGreaterThan(0);
    // Several steps timed, as bench does (issue 25): the median with its spread and count, on screen too.
    expect(zb.stepTime.n).toBeGreaterThanOrEqual(5);
    expect(zb.stepTime.p10).toBeLessThanOrEqual(zb.stepMs);
    expect(zb.stepTime.p90).toBeGreaterThanOrEqual(zb.stepMs);
    expect(renderProfile(result)).toMatch(new RegExp(`median of ${zb.stepTime.n} steps, p10–p90 [\\d.]+–[\\d.]+ ms, IQR/median [\\d.]+%`));
    const up = zb.kernels.find((k) => k.kernel === 'expert-up-swiglu')!;
    // 2·R·d·h·2 useful FLOPs for the dual up-projection, over its measured time.
    expect(up.tflops).toBeCloseTo((2 * 192 * 16 * 32 * 2) / (up.ms * 1e-3) / 1e12, 12);
    expect(up.gbPerS).toBeGreaterThan(0);
    expect(zb.kernels.find((k) => k.kernel === 'routing-scan')!.tflops).toBeNull();
    expect(renderProfile(result)).toMatch(/own compute pass|pass overhead/);
    // Phases by direction, each name once per direction (forward and backward share names).
    const summary = phaseSummary(zb);
    expect(summary).toMatch(/^forward [\d.]+: .+; backward [\d.]+: .+$/);
    for (const half of summary.split('; backward')) {
      const names = half.replace(/^(forward|backward)? ?[\d.]+: /, '').split(', ').map((p) => p.replace(/ [\d.]+( \(\d+ passes\))?$/, ''));
      expect(new Set(names).size, half).toBe(names.length);
    }

    // profile --out: live bytes by tag add up to the allocator's live bytes at every event; the
    // page is self-contained, with the peak marked and a bar per kernel.
    for (const p of liveByTag(zb.memory.timeline)) expect(Object.values(p.byTag).reduce((a, b) => a + (b ?? 0), 0)).toBe(p.live);
    const page = renderProfileHtml(result);
    expect(page).not.toMatch(/<script|https?:\/\//);
    expect(page).toContain('<circle class="peak"');
    expect(page.match(/<polygon class="area"/g)!.length).toBeGreaterThanOrEqual(4);
    expect(page.match(/<rect x="\d+" y="[\d.]+" width="[\d.]+" height="15" fill="#0072B2">/g)).toHaveLength(zb.kernels.length);
    expect(page).toContain(`peak ${formatBytes(zb.memory.stepPeak)}`);

    const trace = JSON.parse(JSON.stringify(chromeTrace(result))) as { traceEvents: Record<string, unknown>[] };
    expect(Array.isArray(trace.traceEvents)).toBe(true);
    const slices = trace.traceEvents.filter((e) => e.ph === 'X');
    expect(slices.length).toBe(zb.slices.length);
    for (const e of slices) {
      expect(typeof e.name).toBe('string');
      expect(e.ts as number).toBeGreaterThanOrEqual(0);
      expect(e.dur as number).toBeGreaterThanOrEqual(0);
      expect(Number.isInteger(e.pid) && Number.isInteger(e.tid)).toBe(true);
    }
    const counters = trace.traceEvents.filter((e) => e.ph === 'C');
    expect(counters.length).toBeGreaterThan(0);
    expect(Math.max(...counters.map((e) => (e.args as { bytes: number }).bytes))).toBe(zb.memory.stepPeak);
    expect(trace.traceEvents.some((e) => e.ph === 'M' && e.name === 'process_name')).toBe(true);
  });

  it('every strategy declares its expert GEMMs\' work, so their kernels compare across strategies', async () => {
    const config = layerConfig({ tokens: 64, hidden: 16, ffn: 32, experts: 4, topK: 2, capacityFactor: 1 });
    const result = await profileStrategies(await testGpu(), config, ['megablocks', 'megablocks-grouped', 'tutel', 'gshard']);
    for (const s of result.strategies) {
      const gemms = s.kernels.filter((k) => /^(mb-(up|down|dW2|dU|dW13|dXp)|capacity-(up|down|dW2|dU|dW13|dDispatched))/.test(k.kernel));
      expect(gemms.length, s.strategy).toBe(6);
      for (const k of gemms) expect(k.tflops, `${s.strategy} ${k.kernel}`).toBeGreaterThan(0);
    }
    const gshard = result.strategies.find((s) => s.strategy === 'gshard')!;
    // The einsums move rows: bytes, no useful FLOPs.
    expect(gshard.kernels.find((k) => k.kernel === 'gshard-dispatch')).toMatchObject({ tflops: null, gbPerS: expect.any(Number) });
  });

  it('draws a sparkline that spans the range', () => {
    expect(sparkline([0, 1, 2, 3, 4, 5, 6, 7])).toBe('▁▂▃▄▅▆▇█');
    expect(sparkline([])).toBe('');
  });

  it('--driver-check: holds the peak buffers and reports both deltas (a scripted driver posing as an H200)', async () => {
    const gpu = await testGpu();
    // Readings in call order: availability, around layer creation, the caching step's pause
    // (against reserved, since before the layer), the fresh step's start and pause, before /
    // during / after the table-sized hold.
    const used = [1000, 1000, 1010, 1080, 1010, 1060, 1010, 1110, 1010];
    const probe: DriverProbe = {
      poll: async (): Promise<DriverRead> => ({ snapshot: { source: 'nvidia-smi', gpus: [{ index: 0, name: 'NVIDIA H200', bus: '00000000:00:06.0', usedMiB: used.shift()!, totalMiB: 143771 }], polls: 2, stable: true }, reason: null }),
    };
    const posing = { ...gpu, adapter: { ...gpu.adapter, vendor: 'nvidia', device: 'nvidia-h200', description: 'NVIDIA: 580.159.04 580.159.4.0' } };
    const config = layerConfig({ tokens: 96, hidden: 16, ffn: 32, experts: 4, topK: 2 });
    const result = await profileStrategies(posing, config, ['zero-buffer'], undefined, { driverCheck: probe });
    expect(used).toEqual([]);
    const check = result.driverCheck!;
    expect(check.skipped).toBeNull();
    const [zb] = check.strategies;
    if (zb.skipped !== null) throw new Error(zb.skipped);
    const figures = tableFigures(zeroBuffer.bufferTable(config, { expertLoads: [], keptPairs: 192, droppedPairs: 0, capacity: null }, { chunkBytes: gpu.maxBindingBytes }));
    expect(zb.allocatorDeltaBytes).toBe(figures.activationPeak);
    expect(zb.peakPhase).toBe(figures.peakPhase);
    expect(zb.driverDeltaBytes).toBe(100 * MIB);
    expect(zb.releasedBytes).toBe(100 * MIB);
    expect(zb.relativeDifference).toBeCloseTo((100 * MIB - figures.activationPeak) / figures.activationPeak, 9);
    expect(zb.withinTolerance).toBe(false);
    expect(zb.persistent).toMatchObject({ allocatorDeltaBytes: figures.baseline, driverDeltaBytes: 10 * MIB, withinTolerance: false });
    expect(zb.notes.join(' ')).toMatch(/under 256 MiB/);
    expect(zb.step).toMatchObject({ allocatorDeltaBytes: figures.activationPeak, driverDeltaBytes: 50 * MIB, atPeak: true, withinTolerance: false });
    // Reserved at the caching step's pause: persistent, live and pooled buffers, all of it since before the layer.
    expect(zb.reserved).toMatchObject({ liveBytes: figures.stepPeak, driverDeltaBytes: 80 * MIB, withinTolerance: false });
    expect(zb.reserved!.reservedBytes).toBeGreaterThanOrEqual(figures.stepPeak);
    expect(zb.reserved!.allocatorDeltaBytes).toBe(zb.reserved!.reservedBytes);
    expect(result.allocator).toBe('caching');
    const text = renderProfile(result);
    expect(zb.gpu).toBe('NVIDIA H200 (index 0, 00000000:00:06.0)');
    expect(zb.notes.join(' ')).not.toMatch(/named like/);
    expect(text).toMatch(/driver cross-check \(nvidia-smi\)/);
    expect(text).toMatch(/allocator \+[\d.]+ KiB, driver \+100 MiB, difference \+\d+\.\d+% \(within 5%: no\)/);
    expect(text).toMatch(/zero-buffer, reserved at the step's peak \(since before the layer\): allocator \+[\d.]+ KiB, driver \+80(\.0)? MiB/);
    expect(text).toMatch(/allocated, the step paused at its peak \(fresh buffers\): allocator \+[\d.]+ KiB, driver \+50(\.0)? MiB/);
    expect(text).toMatch(/table-sized hold \(/);
    expect(text).toMatch(/a real step paused on the host at the allocator's peak/);
  });

  it('--driver-check skips another adapter with the reason, even where a driver answers', async () => {
    const probe: DriverProbe = { poll: async () => ({ snapshot: { source: 'nvidia-smi', gpus: [], polls: 2, stable: true }, reason: null }) };
    const config = layerConfig({ tokens: 32, hidden: 16, ffn: 32, experts: 4, topK: 2 });
    const result = await profileStrategies(await testGpu(), config, ['zero-buffer'], undefined, { driverCheck: probe });
    expect(result.driverCheck).toMatchObject({ skipped: expect.stringMatching(/is not an NVIDIA GPU/), strategies: [] });
    expect(renderProfile(result)).toMatch(/driver cross-check: skipped — the adapter in use/);
  });

  it('`profile --driver-check --json` on lavapipe: skipped with the reason, exit 0', async () => {
    const root = packageRoot();
    const args = ['profile', '--tokens', '32', '--hidden', '16', '--ffn', '32', '--experts', '4', '--top-k', '2', '--impl', 'zero-buffer', '--driver-check', '--json'];
    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [join(root, 'bin/run.js'), ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
      );
    });
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.strategies).toHaveLength(1);
    expect(result.provenance).toMatchObject({ commandLine: `node bin/run.js ${args.join(' ')}`, tool: { name: 'moeblaze' } });
    expect(result.note).not.toMatch(/above/);
    expect(result.driverCheck).toMatchObject({ tolerance: 0.05, strategies: [] });
    expect(result.driverCheck.skipped).toMatch(/no NVIDIA driver reports memory on this machine|is not an NVIDIA GPU/);
  });
});
