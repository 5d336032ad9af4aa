import { writeFileAtomic } from './fs.js';

// Kept here too for callers that imported it from npy before it moved to src/fs.ts.
export { writeFileAtomic };

export type NpyData = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

const DESCR: Record<string, string> = {
  Float32Array: '<f4',
  Float64Array: '<f8',
  Int32Array: '<i4',
  Uint8Array: '|u1',
  Uint16Array: '<f2',
};

/**
 * NumPy .npy v1.0 bytes: little-endian, C order. Uint16Array is written as '<f2' (raw f16 bits),
 * the only way f16 data reaches a file here.
 */
export function npyBytes(data: NpyData, shape: number[]): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`npy: shape [${shape.join(',')}] holds ${count} elements, data has ${data.length}`);
  const descr = DESCR[data.constructor.name];
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Magic (6) + version (2) + header length (2) + header, padded with spaces to 64 bytes, ending in \n.
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}

export async function writeNpy(path: string, data: NpyData, shape: number[]): Promise<void> {
  await writeFileAtomic(path, npyBytes(data, shape));
}
