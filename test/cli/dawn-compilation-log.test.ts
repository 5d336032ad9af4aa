import { describe, expect, it } from 'vitest';
import { createCompilationLogFilter } from '../../src/cli/dawn-stderr.js';

/** What Dawn printed on stdout on the H200 before a profile's --json (the subgroup-matrix kernels' warnings). */
const DAWN_LOG = `warning:
Compilation log for [ShaderModule "expert-up-swiglu"]:

20 warning(s) generated while compiling the shader:
:237:16 warning: use of deprecated builtin
    let a0_0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&As, 0u, false, 40u);
               ^^^^^^^^^^^^^^^^^^

:238:16 warning: use of deprecated builtin
    subgroupMatrixStore(&Cs, 0u, f0, false, 128u);
    ^^^^^^^^^^^^^^^^^^^

Reached the WGSL compilation log warning limit. To see all the compilation logs, query them directly on the ShaderModule objects.warning:
`;

function filtered(text: string, chunk = 7): string {
  let out = '';
  const f = createCompilationLogFilter((t) => (out += t));
  for (let i = 0; i < text.length; i += chunk) f.push(text.slice(i, i + chunk));
  f.end();
  return out;
}

describe("Dawn's compilation logs on stdout", () => {
  it('are dropped whole, in any chunking, and --json stays valid', () => {
    const json = JSON.stringify({ a: 1, nested: { b: [1, 2] }, note: 'warning: kept inside JSON' }, null, 2);
    for (const chunk of [1, 7, 4096]) {
      const out = filtered(`${DAWN_LOG}${DAWN_LOG}${json}\n`, chunk);
      expect(JSON.parse(out)).toEqual(JSON.parse(json));
    }
  });

  it('leave every other line alone, indented table lines included', () => {
    const text = 'T=8 d=4\n┌──┐\n  indented line\n\nlast';
    expect(filtered(text)).toBe(text);
    expect(filtered(`${DAWN_LOG}plain\n  indented after a block\n`)).toBe('plain\n  indented after a block\n');
  });
});
