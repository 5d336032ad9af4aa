import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../src/measure/provenance.js';
import { STRATEGIES } from '../src/registry.js';

/** Issue 25 §3.11: docs that match the tool. */
const read = (path: string) => readFileSync(join(packageRoot(), path), 'utf8');

describe('docs that match', () => {
  const pkg = JSON.parse(read('package.json')) as { description: string; scripts: Record<string, string> };
  const design = read('docs/design.md');
  const readme = read('README.md');

  it('the package description (the top-level help) names every dispatch design the tool compares', () => {
    const names: Record<string, string> = { megablocks: 'MegaBlocks', scattermoe: 'ScatterMoE', tutel: 'Tutel', gshard: 'GShard', 'zero-buffer': 'zero-buffer' };
    for (const s of STRATEGIES) if (names[s.id]) expect(pkg.description).toContain(names[s.id]);
  });

  it('design.md documents the dump folders and the driver check as they are, and every report column', () => {
    expect(design).toMatch(/`ref-capacity\/`/);
    expect(design).toMatch(/a real step pauses on the host at the\s+allocator's peak/);
    for (const term of ['mem ×ZB', 'vs zero-buffer', 'Relative', 'MoE part', 'pairs dropped', 'dropped']) expect(design).toContain(`**${term}**`);
  });

  it('the README says how long npm test takes and names the fast subset, which exists', () => {
    expect(readme).toMatch(/about 10 minutes on 2 free cores/);
    expect(readme).toMatch(/`npm run test:quick`/);
    expect(pkg.scripts['test:quick']).toMatch(/^npm run build && vitest run /);
    // Its files exist (a renamed test would silently drop out of the subset).
    for (const path of pkg.scripts['test:quick'].split('vitest run ')[1].split(' ')) expect(existsSync(join(packageRoot(), path)), path).toBe(true);
  });
});
