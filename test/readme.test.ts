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
