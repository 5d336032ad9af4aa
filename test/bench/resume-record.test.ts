import { describe, expect, it } from 'vitest';
import { completeRunSettings, completeSweep, resumeSweep, saveSweep } from '../../src/bench/sweep.js';
import type { BenchResults } from '../../src/bench/schema.js';
import { validateBenchResults } from '../../src/bench/validate.js';
import { results, SWEEP } from '../fixtures/gate/synthetic.js';

/* Issue 28, item 17: every flag that changes how cases run is saved and held to on --resume. */

function saved(run: Parameters<typeof completeRunSettings>[0] = {}): BenchResults {
  const spec = completeSweep({ impl: ['zero-buffer', 'tutel'], experts: [4, 8], tokens: [256], hidden: [32], ffn: [64], topK: [2] });
  const r = results({ cases: SWEEP.slice(0, 1) });
  r.settings = { ...r.settings, ...completeRunSettings(run), sweep: saveSweep(spec) };
  r.complete = false;
  return r;
}

const noRun = { sampling: {} };

describe('--resume holds to how the saved cases ran', () => {
  it('the GPU flags are saved; one that differs is refused, naming both values', () => {
    const r = saved({ gpu: { gemm: 'simt' } });
    expect(r.settings.gpu).toEqual({ gemm: 'simt', nvidiaF16: true, robustness: true });
    expect(resumeSweep(r, 'r.json', {}, noRun).run.gpu).toEqual({ gemm: 'simt', nvidiaF16: true, robustness: true });
    expect(() => resumeSweep(r, 'r.json', {}, { ...noRun, gpu: { robustness: false } })).toThrow(
      /^--resume: these flags contradict the sweep saved in "r\.json": --unsafe-disable-robustness \(the saved sweep has robustness on \(no --unsafe-disable-robustness\)\); resume with --resume alone$/,
    );
    expect(() => resumeSweep(r, 'r.json', {}, { ...noRun, gpu: { gemm: 'auto', nvidiaF16: false } })).toThrow(/--gemm auto \(the saved sweep has --gemm simt\); --no-nvidia-f16 \(the saved sweep has --nvidia-f16\)/);
    expect(() => resumeSweep(r, 'r.json', {}, { ...noRun, gpu: { gemm: 'simt', robustness: true } })).not.toThrow();
  });

  it('--check is saved: full and sampled checks are not mixed in one file', () => {
    const r = saved({ check: 'sampled' });
    expect(resumeSweep(r, 'r.json', {}, noRun).run.check).toBe('sampled');
    expect(() => resumeSweep(r, 'r.json', {}, { ...noRun, check: 'auto' })).toThrow(/--check auto \(the saved sweep has --check sampled\)/);
  });

  it('a file from before these were saved ran with the defaults; a flag that sets one is refused', () => {
    const r = saved();
    delete r.settings.check;
    delete r.settings.gpu;
    const { run } = resumeSweep(r, 'r.json', {}, noRun);
    expect(run.check).toBe('auto');
    expect(run.gpu).toEqual({ gemm: 'auto', nvidiaF16: true, robustness: true });
    expect(() => resumeSweep(r, 'r.json', {}, { ...noRun, check: 'auto' })).toThrow(/--check auto \(this file does not record --check auto\)/);
  });

  it('a saved sweep that cannot be planned is the file\'s fault, not a flag the user gave', () => {
    const r = saved();
    r.settings.sweep!.tokens = [0];
    expect(validateBenchResults(r)).toEqual([]);
    expect(() => resumeSweep(r, 'dir/results.json', {}, noRun)).toThrow(/^--resume: the sweep saved in "dir\/results\.json" is not valid \(--tokens: 0 is not allowed; use a positive integer\); it was edited or written by another version: start the sweep again$/);
  });

  it('the validator checks the saved check and GPU settings', () => {
    const r = saved();
    expect(validateBenchResults(r)).toEqual([]);
    (r.settings as unknown as Record<string, unknown>).check = 'full';
    (r.settings.gpu as unknown as Record<string, unknown>).gemm = 'fast';
    expect(validateBenchResults(r)).toEqual([
      'results.settings.check: expected one of auto, sampled, got "full"',
      'results.settings.gpu.gemm: expected one of auto, simt, subgroup-matrix, subgroup-matrix-emulated, got "fast"',
    ]);
  });
});
