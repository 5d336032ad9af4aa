import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/measure/provenance.js';
import { loadHistogram, progressLine, renderTrainHtml, renderTrainSummary } from '../../src/render/train.js';
import type { TrainResult } from '../../src/train/run.js';
import { trainConfig, TRAIN_LAYERS_MAX } from '../../src/train/model.js';

const root = packageRoot();

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(root, 'bin/run.js'), ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'moeblaze-train-'));

beforeAll(() => {
  if (!existsSync(join(root, 'dist/commands/train.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does it first)');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('train rendering', () => {
  const step = (i: number, loss: number) => ({ step: i, loss, mse: loss, aux: 0, ms: 10, peakBytes: 4096, stepPeakBytes: 4096, tablePeakBytes: 4096, pairs: 64, droppedPairs: 0 });
  const result: TrainResult = {
    config: trainConfig({ steps: 3 }),
    lossScale: 1,
    runs: [
      { strategy: 'zero-buffer', steps: [step(0, 2), step(1, 1), step(2, 0.5)], firstLoss: 2, finalLoss: 0.5, reduction: 4, tokensPerSecond: 1234, peakBytes: 4096, peakByTag: { optimizer: 1024 }, expertLoads: [3, 1, 0, 4], expertLoadsByLayer: [[3, 1, 0, 4]], wallSeconds: 1 },
    ],
  };

  it('progress line shows step, loss, tokens/s and peak memory', () => {
    const line = progressLine({ strategy: 'zero-buffer', record: step(1, 0.25), tokensPerSecond: 1500, total: 10 });
    expect(line).toBe('zero-buffer  step  2/10  loss 0.2500  1.5k tokens/s  peak 4.00 KiB');
  });

  it('histogram has one bar per expert, scaled to the busiest', () => {
    const rows = loadHistogram([3, 1, 0, 4], 8);
    expect(rows).toHaveLength(4);
    expect(rows[3]).toContain('████████ 4 (50.0%)');
    expect(rows[2]).toContain(' 0 (0.0%)');
  });

  it('summary and self-contained HTML with an inline SVG loss curve', () => {
    expect(renderTrainSummary(result)).toContain('zero-buffer: loss 2.000 → 0.5000 (÷4.0');
    const html = renderTrainHtml(result);
    expect(html).toContain('<svg');
    expect(html).toContain('<polyline');
    expect(html).not.toMatch(/<script|src="http/);
  });

  it('the summary and the HTML name the dtype; at f16 the f32 optimizer copies and the loss scale', () => {
    expect(renderTrainSummary(result)).toContain('d_out=8 L=1, f32 storage, 3 steps');
    const half: TrainResult = { ...result, config: trainConfig({ steps: 3, dtype: 'f16' }), lossScale: 128 };
    const line = 'f16 storage (f32 master weights and Adam state, loss scale 128)';
    expect(renderTrainSummary(half).replace(/\s+/g, ' ')).toContain(line); // the summary wraps at the terminal's width
    expect(renderTrainHtml(half)).toContain(line);
  });
});

describe('moeblaze train', () => {
  it('--json --out: JSON on stdout, train.json and train.html written, progress on stderr', async () => {
    const run = await cli(['train', '--steps', '4', '--impl', 'zero-buffer', '--impl', 'megablocks-grouped', '--tokens', '64', '--json', '--out', dir]);
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.runs.map((r: { strategy: string }) => r.strategy)).toEqual(['zero-buffer', 'megablocks-grouped']);
    expect(out.runs[0].steps).toHaveLength(4);
    expect(run.stderr).toMatch(/step 4\/4 {2}loss \d/);
    const saved = JSON.parse(readFileSync(join(dir, 'train.json'), 'utf8'));
    expect(saved.runs[0].steps[0].loss).toBe(out.runs[0].steps[0].loss);
    expect(readFileSync(join(dir, 'train.html'), 'utf8')).toContain('<svg');
  });

  it('--dtype f16: mixed precision; the dtype and loss scale in the JSON and train.json', async () => {
    const out16 = join(dir, 'f16');
    const run = await cli(['train', '--dtype', 'f16', '--steps', '3', '--tokens', '64', '--json', '--out', out16]);
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.config.dtype).toBe('f16');
    expect(out.lossScale).toBe(64);
    expect(out.runs[0].steps).toHaveLength(3);
    expect(out.runs[0].peakByTag.optimizer).toBeGreaterThan(0);
    const saved = JSON.parse(readFileSync(join(out16, 'train.json'), 'utf8'));
    expect(saved.config.dtype).toBe('f16');
    expect(readFileSync(join(out16, 'train.html'), 'utf8')).toContain('f16 storage (f32 master weights and Adam state, loss scale 64)');
  });

  it('--layers: a positive integer up to TRAIN_LAYERS_MAX, else a one-line usage error (exit 2) before any GPU work', async () => {
    for (const value of ['0', '2.5', String(TRAIN_LAYERS_MAX + 1)]) {
      const run = await cli(['train', '--layers', value, '--adapter', 'no-such-adapter']);
      // The adapter does not exist: a GPU lookup would exit 4, so exit 2 says the flag was refused first.
      expect(run.code, `--layers ${value}: ${run.stderr}`).toBe(2);
      const lines = run.stderr.trim().split('\n');
      expect(lines, run.stderr).toHaveLength(1);
      expect(lines[0]).toContain('--layers');
      expect(lines[0]).toContain(value === String(TRAIN_LAYERS_MAX + 1) ? `at most ${TRAIN_LAYERS_MAX}` : 'positive integer');
    }
    expect(() => trainConfig({ layers: 0 })).toThrow(/--layers: 0 is not allowed; use a positive integer \(at most 1024\)/);
  });

  it('--layers 2 --json: the measured peak of the 2-layer step, its buffer-table prediction, bench\'s and plan\'s estimates', async () => {
    const run = await cli(['train', '--layers', '2', '--steps', '2', '--tokens', '64', '--impl', 'megablocks-grouped', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.config.layers).toBe(2);
    const [r] = out.runs;
    expect(r.memory.layers).toBe(2);
    expect(r.memory.stepPeak).toBe(r.peakBytes);
    expect(r.memory.tablePeak).toBe(r.memory.stepPeak);
    for (const key of ['benchEstimate', 'planEstimate', 'activationPeak', 'moePeak']) expect(r.memory[key], key).toBeGreaterThan(0);
    expect(r.expertLoadsByLayer).toHaveLength(2);
    const text = await cli(['train', '--layers', '2', '--steps', '1', '--tokens', '64']);
    expect(text.stdout).toMatch(/2-layer step: peak [\d.]+ KiB, as the buffer tables predict \(layer 2 of 2, phase [\w-]+\)/);
    expect(text.stdout).toMatch(/activation peak .* vs bench's estimate .*: \+[\d.]+ KiB \(\+[\d.]+%\)/);
    expect(text.stdout).toMatch(/MoE part .* vs plan's estimate \(Adam\) .*: \+/);
  });

  it('a bad value is a usage error (exit 2) before any GPU work', async () => {
    const run = await cli(['train', '--lr', '0']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--lr');
    const k = await cli(['train', '--top-k', '5', '--experts', '4']);
    expect(k.code).toBe(2);
    const d = await cli(['train', '--dtype', 'f64']);
    expect(d.code).toBe(2);
    expect(d.stderr).toContain('--dtype');
  });
});
