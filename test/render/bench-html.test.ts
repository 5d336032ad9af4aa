import { describe, expect, it } from 'vitest';
import type { BenchCase, BenchResults } from '../../src/bench/schema.js';
import { benchCharts, sweptAxes } from '../../src/render/bench-charts.js';
import { renderBenchHtml } from '../../src/render/bench-html.js';
import { benchFixture } from '../helpers/bench-fixture.js';

const fixture = benchFixture;
const count = (text: string, needle: string | RegExp) => text.split(needle).length - 1;

/** The fixture plus tutel at a second capacity factor: two swept axes. */
function twoAxes(): BenchResults {
  const r = fixture();
  const extra = r.cases
    .filter((c) => c.config.impl === 'tutel')
    .map((c): BenchCase => {
      const copy = structuredClone(c);
      copy.config.capacityFactor = 1.5;
      copy.key = c.key.replace('cf1.25', 'cf1.5');
      if (copy.time) copy.time.step.median *= 1.1;
      return copy;
    });
  r.cases.push(...extra);
  r.settings.axes.capacityFactor = [1.25, 1.5];
  return r;
}

describe('renderBenchHtml', () => {
  const html = renderBenchHtml(fixture());

  it('is one self-contained document: no URL, no script, no external stylesheet', () => {
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<link/i);
    expect(html).not.toMatch(/\bxmlns\b/);
    expect(html).not.toMatch(/\burl\(/);
    expect(html).toContain('<style>');
  });

  it('draws one <svg> per chart: time, TFLOP/s, step and activation peaks, saved and the L-layer estimate against the swept axis', () => {
    expect(sweptAxes(fixture())).toEqual(['experts']);
    expect(count(html, '<svg')).toBe(6);
    expect(count(html, '</svg>')).toBe(6);
    const titles = ['Median step time', 'Useful TFLOP/s', 'Step peak memory', 'Activation peak', 'Saved for backward', 'L-layer estimate'];
    for (const title of titles) expect(html).toContain(`<title>${title} vs experts (E)</title>`);
    // Every chart has a legend entry per strategy, each with its own colour and marker shape.
    expect(count(html, 'class="legend-marker marker-circle"')).toBe(6);
    expect(count(html, 'class="legend-marker marker-square"')).toBe(6);
    for (const strategy of ['zero-buffer', 'tutel', 'megablocks']) expect(html).toContain(`>${strategy}</text>`);
    // Swept values are the ticks.
    for (const e of ['64', '256', '1024']) expect(html).toContain(`>${e}</text>`);
  });

  it('marks the OOM case with a red × in each chart and shades p10–p90 of the time', () => {
    expect(count(html, '<g class="oom"')).toBe(6);
    expect(html).toContain('<title>tutel at 1024: out of memory</title>');
    expect(count(html, '<polygon class="band"')).toBeGreaterThanOrEqual(3);
    expect(html).toContain('GEMM ceiling 18.5');
  });

  it('charts each swept axis with the others held at their first value', () => {
    const r = twoAxes();
    const sets = benchCharts(r);
    expect(sets.map((s) => s.axis)).toEqual(['experts', 'capacityFactor']);
    expect(sets[0].fixed).toEqual({ capacityFactor: 1.25 });
    expect(sets[1].fixed).toEqual({ experts: 64 });
    const out = renderBenchHtml(r);
    expect(count(out, '<svg')).toBe(12);
    // Dropless strategies have no factor: one measured value, drawn as a dashed level, not a line through factors.
    const cfTime = sets[1].svgs[0];
    expect(count(cfTime, /<line class="level" [^>]*stroke="#0072B2"/g)).toBe(1);
    expect(count(cfTime, /<circle [^>]*fill="#0072B2" [^>]*class="marker /g)).toBe(1); // the level's one mark
    expect(cfTime).toContain('zero-buffer (no capacity factor)');
  });

  it('has the case table with every case and provenance', () => {
    expect(count(html, '<table class="cases">')).toBe(3);
    expect(html).toContain('<span class="bad">oom</span>');
    expect(html).toContain('<span class="warn">unsupported</span>');
    // Cases that ran show their time, not an "ok" status: 7 rows of figures.
    expect(count(html, '<span class="ok">ok</span>')).toBe(0);
    expect(count(html, /<tr><td>[^<]+<\/td><td>[\d.]+<\/td><td>[\d.]+–[\d.]+<\/td>/g)).toBe(7);
    expect(html).toContain('planned step peak 3.30 GiB exceeds --memory-limit 3.20 GiB');
    expect(html).toContain('<code>moeblaze bench --experts 64,256,1024');
    expect(html).toContain('12dfb53c4a1e9f0b7d2a6c3e8f5b1d9a0c7e4f21');
  });

  it('escapes text from the results and defangs URLs in it', () => {
    const r = fixture();
    r.notes.push('<img src=x> see https://example.com/a?b=1&c=2');
    r.cases[8].message = 'bad "quote" & <tag> http://x.y';
    const out = renderBenchHtml(r);
    expect(out).not.toMatch(/https?:\/\//);
    expect(out).not.toContain('<img');
    expect(out).toContain('&lt;img src=x&gt;');
    expect(out).toContain('bad &quot;quote&quot; &amp; &lt;tag&gt;');
  });

  it('renders a single configuration (nothing swept) and an empty sweep', () => {
    const one = fixture();
    one.cases = one.cases.filter((c) => c.config.experts === 64);
    one.settings.axes.experts = [64];
    const out = renderBenchHtml(one);
    expect(count(out, '<svg')).toBe(0);
    expect(out).toContain('nothing to chart');
    const empty = { ...fixture(), cases: [] };
    expect(renderBenchHtml(empty)).toContain('No cases.');
  });
});
