import { afterEach, describe, expect, it, vi } from 'vitest';
import { createProgress, formatDuration, type ProgressStream } from '../../src/render/progress.js';

function fakeStream(isTTY: boolean, columns = 80): ProgressStream & { text: () => string } {
  const chunks: string[] = [];
  return { isTTY, columns, write: (c: string) => (chunks.push(c), true), text: () => chunks.join('') };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('createProgress', () => {
  it('prints one line per case with an ETA when the stream is not a terminal', () => {
    const stream = fakeStream(false);
    let t = 0;
    const p = createProgress(4, { stream, now: () => t });
    p.tick('zero-buffer E=64');
    t = 10_000;
    p.tick('tutel E=64');
    t = 20_000;
    p.tick('megablocks E=64');
    t = 31_000;
    p.tick('zero-buffer E=256');
    t = 40_000;
    p.done();
    expect(stream.text().split('\n')).toEqual([
      '[1/4] zero-buffer E=64',
      '[2/4] tutel E=64 (10s so far, ETA 30s)',
      '[3/4] megablocks E=64 (20s so far, ETA 20s)',
      '[4/4] zero-buffer E=256 (31s so far, ETA 10s)',
      '4 of 4 case(s) in 40s',
      '',
    ]);
    expect(stream.text()).not.toContain('\r');
  });

  it('redraws one bar in place on a terminal, cut to its width, and clears it at the end', () => {
    const stream = fakeStream(true, 60);
    let t = 0;
    const p = createProgress(2, { stream, now: () => t, intervalMs: 0 });
    p.tick('a very long label '.repeat(10));
    t = 5000;
    p.tick('second');
    p.done();
    const draws = stream.text().split('\r\x1b[2K').filter(Boolean);
    expect(draws[0]).toMatch(/^\[1\/2\] ░{20} 0s {2}a very long/);
    expect(draws[0].length).toBeLessThanOrEqual(60);
    expect(draws[0].endsWith('…')).toBe(true);
    expect(draws[1]).toMatch(/^\[2\/2\] █{10}░{10} 5s, ETA 5s {2}second$/);
    expect(draws[2]).toBe('2 of 2 case(s) in 5s\n');
  });

  it('writes to stderr by default and never to stdout', () => {
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const p = createProgress(1, { enabled: false });
    p.tick('case');
    p.done();
    expect(out).not.toHaveBeenCalled();
    expect(err).toHaveBeenCalled();
  });

  it('is silent when nothing ran, and done() is idempotent', () => {
    const stream = fakeStream(false);
    const p = createProgress(3, { stream });
    p.done();
    p.done();
    p.tick('late');
    expect(stream.text()).toBe('');
  });

  it('keeps the clock of a long case running on a terminal, without holding the process', () => {
    vi.useFakeTimers();
    try {
      const stream = fakeStream(true);
      let t = 0;
      const p = createProgress(2, { stream, now: () => t, intervalMs: 1000 });
      p.tick('slow');
      t = 3000;
      vi.advanceTimersByTime(3000);
      expect(stream.text()).toContain(' 3s  slow');
      p.done();
      const before = stream.text();
      vi.advanceTimersByTime(5000);
      expect(stream.text()).toBe(before);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('formatDuration', () => {
  it('reads like a clock', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(59_400)).toBe('59s');
    expect(formatDuration(185_000)).toBe('3m05s');
    expect(formatDuration(3_720_000)).toBe('1h02m');
  });
});
