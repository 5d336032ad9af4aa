import { describe, expect, it } from 'vitest';
import { escapeXml, logTicks, niceTicks, renderLineChart } from '../../src/render/svg-chart.js';

const count = (text: string, needle: string) => text.split(needle).length - 1;

describe('ticks', () => {
  it('niceTicks: 1-2-5 steps covering the range', () => {
    expect(niceTicks(0, 5.87)).toEqual([0, 2, 4, 6]);
    expect(niceTicks(0, 4.5)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(niceTicks(0, 18.5)).toEqual([0, 5, 10, 15, 20]);
    expect(niceTicks(0, 0.37)).toEqual([0, 0.1, 0.2, 0.3, 0.4]);
    expect(niceTicks(3, 3)).toEqual([3]);
  });

  it('logTicks: decades, with 2 and 5 over short ranges', () => {
    expect(logTicks(1, 1000)).toEqual([1, 10, 100, 1000]);
    expect(logTicks(2, 60)).toEqual([2, 5, 10, 20, 50]);
  });
});

describe('escapeXml', () => {
  it('escapes markup and breaks URLs', () => {
    expect(escapeXml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    expect(escapeXml('see https://example.com')).toBe('see https:&#47;&#47;example.com');
  });
});

describe('renderLineChart', () => {
  const svg = renderLineChart({
    title: 'Step time',
    xLabel: 'experts',
    yLabel: 'ms',
    xScale: 'log',
    xTicks: [4, 8, 16, 32],
    series: [
      {
        name: 'a',
        color: '#111111',
        points: [
          { x: 4, y: 1, lo: 0.9, hi: 1.2 },
          { x: 8, y: 2, lo: 1.8, hi: 2.3 },
          { x: 16, y: null, oom: true },
          { x: 32, y: 5, lo: 4.5, hi: 5.5 },
        ],
      },
      { name: 'b <&>', color: '#222222', points: [{ x: 4, y: 3 }, { x: 8, y: 4 }, { x: 16, y: 4.5 }, { x: 32, y: null }] },
    ],
    bandLabel: 'p10–p90',
    refLines: [{ y: 6, label: 'ceiling' }],
  });

  it('is one namespace-free <svg> with a title, axes labels and ticks', () => {
    expect(count(svg, '<svg')).toBe(1);
    expect(svg).not.toContain('xmlns');
    expect(svg).toContain('<title>Step time</title>');
    expect(svg).toContain('>experts</text>');
    for (const t of ['4', '8', '16', '32']) expect(svg).toContain(`>${t}</text>`);
  });

  it('breaks lines at missing values and marks out-of-memory points', () => {
    // Series a: one line before the OOM gap; the single point after it is a dot with a band whisker.
    expect(count(svg, '<polyline')).toBe(2);
    expect(count(svg, '<polygon class="band"')).toBe(1);
    expect(count(svg, '<line class="band"')).toBe(1);
    expect(count(svg, '<g class="oom"')).toBe(1);
    expect(svg).toContain('<title>a at 16: out of memory</title>');
    expect(count(svg, 'class="marker marker-circle"')).toBe(6);
    expect(count(svg, 'class="legend-marker marker-circle"')).toBe(2);
  });

  it('sets several out-of-memory marks at one x side by side', () => {
    const two = renderLineChart({
      title: 't',
      xLabel: 'x',
      yLabel: 'y',
      series: ['a', 'b'].map((name, i) => ({ name, color: `#00000${i}`, points: [{ x: 1, y: 1 }, { x: 2, y: null, oom: true }] })),
    });
    const xs = [...two.matchAll(/<g class="oom">.*?<circle cx="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(xs).toHaveLength(2);
    expect(Math.abs(xs[0] - xs[1])).toBeGreaterThanOrEqual(10);
  });

  it('has a legend with every series, the band and the OOM mark, escaped', () => {
    expect(svg).toContain('>a</text>');
    expect(svg).toContain('>b &lt;&amp;&gt;</text>');
    expect(svg).toContain('>p10–p90</text>');
    expect(svg).toContain('>out of memory</text>');
    expect(svg).toContain('>ceiling</text>');
  });

  it('places larger values higher and keeps every coordinate finite', () => {
    const cy = [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)" r="4" fill="#222222"[^>]*class="marker /g)].map((m) => Number(m[2]));
    expect(cy).toHaveLength(3);
    expect(cy[0]).toBeGreaterThan(cy[1]);
    expect(cy[1]).toBeGreaterThan(cy[2]);
    expect(svg).not.toMatch(/NaN|Infinity/);
  });

  it('copes with no data at all', () => {
    const empty = renderLineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [] });
    expect(empty).not.toMatch(/NaN|Infinity/);
    expect(count(empty, '<svg')).toBe(1);
  });
});
