import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
// Spelled in two parts so that this file does not match its own search.
const OLD_REFERENCE = ['DESIGN', 'md'].join('.');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function anchors(markdown: string): Set<string> {
  const slugs = [...markdown.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
    m[1]
      .toLowerCase()
      .replace(/[^\p{L}\p{N} -]/gu, '')
      .replace(/ /g, '-'),
  );
  return new Set(slugs);
}

describe('docs/design.md', () => {
  const tracked = execFileSync('git', ['ls-files', 'src', 'kernels', 'baselines', 'commands', 'bin', 'test', 'README.md', '.ci'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean);

  it(`is what code, tests and help point to: no ${OLD_REFERENCE} outside docs/`, () => {
    const offenders = tracked.filter((f) => readFileSync(join(root, f), 'utf8').includes(OLD_REFERENCE));
    expect(offenders).toEqual([]);
  });

  it('has every section that code, help and the README link to', () => {
    const known = anchors(readFileSync(join(root, 'docs/design.md'), 'utf8'));
    const links = new Set(tracked.flatMap((f) => [...readFileSync(join(root, f), 'utf8').matchAll(/docs\/design\.md#([a-z0-9-]+)/g)].map((m) => m[1])));
    expect(links.size).toBeGreaterThan(10);
    expect([...links].filter((a) => !known.has(a))).toEqual([]);
  });
});
