import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');

describe('README', () => {
  it('the library example runs as written against the built package', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const match = /<!-- readme-example[^>]*-->\s*```js\n([\s\S]*?)```/.exec(readme);
    expect(match, 'README has a marked example').not.toBeNull();
    const entry = pathToFileURL(join(root, 'dist/src/index.js')).href;
    const script = match![1].replace("from 'moeblaze'", `from '${entry}'`);
    const file = join(mkdtempSync(join(tmpdir(), 'moeblaze-readme-')), 'example.mjs');
    writeFileSync(file, script);
    const out = execFileSync(process.execPath, [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    expect(out).toMatch(/activation peak/);
    expect(out).toMatch(/dW1\[0\] = -?\d/);
    expect(out).toMatch(/matches the float64 reference/);
  });
});

describe('README facts', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');

  it('lists every preset with the sizes src/config.ts gives it', async () => {
    const { PRESETS } = await import('../src/config.js');
    const { presetSizes } = await import('../src/render/presets.js');
    const rows = new Map([...readme.matchAll(/^\| `([\w.-]+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| (\d+) \|/gm)].map((m) => [m[1], m.slice(2, 7).map((x) => x.trim())]));
    for (const p of PRESETS) {
      const s = presetSizes(p);
      expect(rows.get(p.name), p.name).toEqual([s.d, s.h, s.E, s.k, s.T]);
    }
  });

  it("states train's defaults as the code has them", async () => {
    const { DEFAULT_TRAIN } = await import('../src/train/model.js');
    const stated = /the defaults: seed (\d+), (\d+) steps/.exec(readme);
    expect(stated, 'README states the train defaults').not.toBeNull();
    expect([Number(stated![1]), Number(stated![2])]).toEqual([DEFAULT_TRAIN.seed, DEFAULT_TRAIN.steps]);
  });

  it('runs the CLI as `npx moeblaze` in every command example', () => {
    const blocks = [...readme.matchAll(/```(?:sh|yaml)\n([\s\S]*?)```/g)].map((m) => m[1]);
    const invocations = blocks.flatMap((b) => b.split('\n')).filter((l) => /\b(moeblaze|bin\/run\.js) (bench|gate|plan|train|verify|profile|devices)\b/.test(l));
    expect(invocations.length).toBeGreaterThan(3);
    for (const line of invocations) expect(line).toMatch(/npx moeblaze (bench|gate|plan|train|verify|profile|devices)/);
  });
});

describe('library option names', () => {
  it('accepts the CLI vocabulary and the deprecated 0.1 names alike', async () => {
    const { layerConfig } = await import('../src/config.js');
    expect(layerConfig({ auxLoss: 0.01 }).auxLoss).toBe(0.01);
    expect(layerConfig({ auxLossCoef: 0.01 }).auxLoss).toBe(0.01);
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const example = /<!-- readme-example[^>]*-->\s*```js\n([\s\S]*?)```/.exec(readme)![1];
    // The example uses the new names only; the deprecated ones are named in the prose.
    expect(example).not.toMatch(/numExperts|dispatch:|strategies:|auxLossCoef/);
    expect(readme).toMatch(/`numExperts` and `dispatch` \(`MoELayer\.create`\), `auxLossCoef` and `strategies`\s+\(`verifyStrategies`\) still work as deprecated aliases/);
  });
});
