import { mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jsonDepth, readBenchResults, RESULTS_MAX_BYTES } from '../../src/bench/read.js';
import { benchFixtureJson } from '../helpers/bench-fixture.js';

/* Issue 28, item 16: a hand-edited results file is bounded in depth and size when it is read. */

const fresh = () => mkdtempSync(join(tmpdir(), 'moeblaze-read-'));

describe('readBenchResults bounds what it reads', () => {
  it('a file nested 100,000 levels deep in a field the validator does not open is refused, before it can overflow a writer', async () => {
    const dir = fresh();
    const json = benchFixtureJson();
    const text = JSON.stringify(json).replace('"adapter":{', `"adapter":{"deep":${'['.repeat(100_000)}${']'.repeat(100_000)},`);
    expect(text.length).toBeGreaterThan(200_000);
    writeFileSync(join(dir, 'results.json'), text);
    await expect(readBenchResults(join(dir, 'results.json'), 'current')).rejects.toThrow(/^--current: ".*results\.json" nests 100003 levels deep, more than a results file does \(at most 64\)$/);
    // The same file without the nesting reads.
    writeFileSync(join(dir, 'ok.json'), JSON.stringify(json));
    await expect(readBenchResults(join(dir, 'ok.json'), 'current')).resolves.toMatchObject({ complete: true });
  });

  it('a file larger than any results file is refused by its size, without reading it', async () => {
    const path = join(fresh(), 'huge.json');
    writeFileSync(path, '');
    truncateSync(path, RESULTS_MAX_BYTES + 1);
    await expect(readBenchResults(path, 'baseline')).rejects.toThrow(`--baseline: "${path}" is ${RESULTS_MAX_BYTES + 1} bytes, more than a results file can be (at most ${RESULTS_MAX_BYTES} bytes)`);
  });

  it('jsonDepth skips brackets inside strings and escapes', () => {
    expect(jsonDepth('{"a":[1,{"b":"[[[{\\"]"}]}')).toBe(3);
    expect(jsonDepth('[]')).toBe(1);
    expect(jsonDepth('3')).toBe(0);
  });
});
