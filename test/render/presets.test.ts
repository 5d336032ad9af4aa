import { describe, expect, it } from 'vitest';
import { PRESETS } from '../../src/config.js';
import { visibleWidth } from '../../src/render/fit-table.js';
import { renderPresets } from '../../src/render/presets.js';

describe('bench --list-presets', () => {
  it('shows every preset with its sizes, within the width', () => {
    const text = renderPresets(PRESETS, 100);
    for (const p of PRESETS) expect(text).toContain(p.name);
    expect(text).toMatch(/│ moeblaze-conf4\s+│ 2048\s+│ 8192\s+│ 16\s+│ 2\s+│ 32768\s+│/);
    expect(text).toMatch(/│ megablocks-xs\s+│ 512\s+│ 4d\s+│ 64\s+│ 1\s+│ 65536\s+│/);
    expect(Math.max(...text.split('\n').filter((l) => l.includes('│')).map(visibleWidth))).toBeLessThanOrEqual(100);
  });
});
