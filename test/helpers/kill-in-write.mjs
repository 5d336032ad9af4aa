// Preloaded (`node --import`) into a bench that test/commands/bench-crash.test.ts kills inside
// a results.json write: MOEBLAZE_KILL_AT=<point>:<n> SIGKILLs the process at the n-th write of
// results.json, where <point> is
//   write   — half of the new file's bytes are in the temporary file, the rest never come;
//   rename  — the temporary file is whole, the rename has not happened;
//   renamed — the rename has happened, nothing after it has.
// Every write's full text is also copied to MOEBLAZE_KILL_LOG/<n>.json, so the test knows what
// the old and the new file were. Patches node:fs/promises (the module writeFileAtomic uses).
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';

const [point, nth] = (process.env.MOEBLAZE_KILL_AT ?? '').split(':');
const log = process.env.MOEBLAZE_KILL_LOG;
const isResults = (path) => /(^|[\\/])results\.json\.tmp-\d+-\d+$/.test(String(path));
const original = { writeFile: fs.promises.writeFile, rename: fs.promises.rename };
let writes = 0;

fs.promises.writeFile = async function writeFile(path, data, ...rest) {
  if (!isResults(path)) return original.writeFile.call(this, path, data, ...rest);
  writes++;
  const bytes = Buffer.from(typeof data === 'string' ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  if (log) fs.writeFileSync(join(log, `${writes}.json`), bytes);
  if (point === 'write' && writes === Number(nth)) {
    fs.writeFileSync(path, bytes.subarray(0, bytes.length >> 1));
    process.kill(process.pid, 'SIGKILL');
  }
  return original.writeFile.call(this, path, data, ...rest);
};

fs.promises.rename = async function rename(from, to, ...rest) {
  const here = isResults(from) && writes === Number(nth);
  if (here && point === 'rename') process.kill(process.pid, 'SIGKILL');
  await original.rename.call(this, from, to, ...rest);
  if (here && point === 'renamed') process.kill(process.pid, 'SIGKILL');
};

syncBuiltinESMExports();
