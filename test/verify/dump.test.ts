import { existsSync, mkdtempSync, readdirSync, readFileSync, type Dirent } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { npyBytes } from '../../src/npy.js';
import { prepareDumpFolder } from '../../src/verify/dump-folder.js';
import { verifyStrategies } from '../../src/verify/verify.js';
import { testGpu } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

/** Parses a .npy v1 header: {descr, shape} and where the data starts. */
function npyHeader(bytes: Buffer): { descr: string; shape: number[]; dataOffset: number } {
  expect([...bytes.subarray(0, 6)]).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
  const length = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + length).toString('latin1');
  expect((10 + length) % 64).toBe(0);
  const descr = /'descr': '([^']+)'/.exec(header)![1];
  const shape = /'shape': \(([^)]*)\)/.exec(header)![1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  return { descr, shape, dataOffset: 10 + length };
}

/** Every file below `dir` but the manifest, as relative paths. */
function filesIn(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((e) => e.isFile() && e.name !== 'manifest.json')
    .map((e) => relative(dir, join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)))
    .sort();
}

describe('verify --dump', () => {
  it('writes inputs, routing, each strategy and the references in the documented layout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moeblaze-dump-'));
    const config = layerConfig({ tokens: 20, hidden: 6, ffn: 10, experts: 4, topK: 2, seed: 3 });
    const result = await verifyStrategies(await testGpu(), config, { strategies: ['zero-buffer', 'tutel'], dumpDir: dir });
    expect(result.pass).toBe(true);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    expect(manifest.config).toMatchObject({ tokens: 20, hidden: 6, ffn: 10, experts: 4, topK: 2, activation: 'swiglu', checkpoint: 'activations', dtype: 'f32', skew: 'uniform', seed: 3 });
    expect(manifest.strategies.map((s: { id: string }) => s.id)).toEqual(['zero-buffer', 'tutel']);
    const expect3 = (path: string, descr: string, shape: number[]) => {
      const h = npyHeader(readFileSync(join(dir, path)));
      expect({ path, descr: h.descr, shape: h.shape }).toEqual({ path, descr, shape });
      expect(manifest.files[path]?.shape ?? shape).toEqual(shape);
    };
    expect3('X.npy', '<f4', [20, 6]);
    expect3('dO.npy', '<f4', [20, 6]);
    expect3('Wr.npy', '<f4', [6, 4]);
    expect3('W1.npy', '<f4', [4, 6, 10]);
    expect3('W3.npy', '<f4', [4, 6, 10]);
    expect3('W2.npy', '<f4', [4, 10, 6]);
    expect3('experts.npy', '<i4', [20, 2]);
    expect3('gates.npy', '<f8', [20, 2]);
    expect3('kept.npy', '|u1', [20, 2]);
    for (const s of ['zero-buffer', 'tutel']) {
      expect3(`${s}/O.npy`, '<f4', [20, 6]);
      expect3(`${s}/dW1.npy`, '<f4', [4, 6, 10]);
      expect3(`${s}/dW3.npy`, '<f4', [4, 6, 10]);
    }
    for (const r of ['ref', 'ref-capacity']) {
      expect3(`${r}/dX.npy`, '<f8', [20, 6]);
      expect3(`${r}/dWr.npy`, '<f8', [6, 4]);
    }
    // The GPU's O really is what the file holds.
    const o = readFileSync(join(dir, 'zero-buffer/O.npy'));
    const { dataOffset } = npyHeader(o);
    const values = new Float32Array(o.buffer.slice(o.byteOffset + dataOffset, o.byteOffset + o.length));
    expect(values.length).toBe(120);
    expect(values.some((v) => v !== 0)).toBe(true);
    expect(existsSync(join(dir, 'manifest.json.tmp-' + process.pid))).toBe(false);
    // The manifest names every file of the folder, and nothing else.
    const listed = (m: { files: Record<string, unknown> }) => Object.keys(m.files).sort();
    expect(filesIn(dir)).toEqual(listed(manifest));

    // A second dump into the same folder (what `verify --dump` does first: prepareDumpFolder) keeps nothing of the first.
    const folder = prepareDumpFolder(dir, { strategies: ['zero-buffer'] });
    const again = await verifyStrategies(await testGpu(), { ...config, activation: 'gelu' }, { strategies: ['zero-buffer'], dumpDir: dir });
    folder.release();
    expect(again.pass).toBe(true);
    const second = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    expect(filesIn(dir)).toEqual(listed(second));
    expect(filesIn(dir).some((f) => f.startsWith('tutel/') || f.endsWith('W3.npy'))).toBe(false);
  });

  it('writes valid npy headers for 1-D data', () => {
    const bytes = Buffer.from(npyBytes(new Int32Array([1, 2, 3]), [3]));
    expect(npyHeader(bytes)).toMatchObject({ descr: '<i4', shape: [3] });
  });
});
