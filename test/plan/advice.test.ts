import { describe, expect, it } from 'vitest';
import { findPreset, layerConfig } from '../../src/config.js';
import { adviseFits } from '../../src/plan/advice.js';
import { planModel, type PlanOptions } from '../../src/plan/model.js';
import { adviceLines, renderPlan } from '../../src/render/plan.js';
import { findStrategy } from '../../src/registry.js';

const GiB = 2 ** 30;
const deepseek = findPreset('deepseek-v3-like-layer');
const config = layerConfig({ tokens: deepseek.tokens, hidden: deepseek.hidden[0], ffn: (deepseek.ffn as number[])[0], experts: deepseek.experts[0], topK: deepseek.topK[0] });
const base: PlanOptions = { config, dtype: 'f32', layers: 1, optimizer: 'none', memory: 80 * GiB, expertParallel: 1, strategies: [findStrategy('zero-buffer')] };

describe('plan advice', () => {
  it('names the change that fits, with its peak: bf16 or two GPUs for DeepSeek-V3-like in 80 GiB', () => {
    const [advice] = adviseFits(base, [findStrategy('zero-buffer')]);
    expect(advice.changes.map((c) => c.flag)).toEqual(['--dtype bf16', '--expert-parallel 2']);
    expect(advice.changes[0].peak).toBeLessThan(80 * GiB);
    const lines = adviceLines([advice], planModel(base));
    expect(lines).toEqual([expect.stringMatching(/^to fit T=4096 in 80\.0 GiB, zero-buffer: --dtype bf16 \(peak [\d.]+ GiB\) or --expert-parallel 2 \(peak [\d.]+ GiB\)$/)]);
  });

  it('never suggests what the flags already say', () => {
    const set = { ...base, dtype: 'bf16' as const, optimizer: 'adam' as const, layers: 4, expertParallel: 2 };
    const flags = adviseFits(set, [findStrategy('zero-buffer')]).flatMap((a) => a.changes.map((c) => c.flag));
    expect(flags.some((f) => /--dtype bf16|--expert-parallel 2$|--layers 4/.test(f))).toBe(false);
    expect(flags.every((f) => /^--(optimizer (sgd|none)|layers [1-3]|expert-parallel \d+)$/.test(f))).toBe(true);
  });

  it('gives nothing for a strategy that fits; T without thousands separators; no empty note column', () => {
    expect(adviseFits({ ...base, memory: 1024 * GiB }, [findStrategy('zero-buffer')])).toEqual([]);
    const text = renderPlan(planModel({ ...base, dtype: 'bf16' }), { color: false });
    expect(text).toMatch(/T=4096 /);
    expect(text).not.toMatch(/4,096/);
    expect(text).not.toMatch(/│ note/);
    // Not a terminal: every table fits 100 columns, saying which columns it left out.
    const tableLines = text.split('\n').filter((l) => /^[┌│└]/.test(l));
    expect(Math.max(...tableLines.map((l) => [...l].length))).toBeLessThanOrEqual(100);
  });
});
