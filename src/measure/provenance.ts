import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AdapterReport } from '../gpu/runtime.js';
import { describeCheckout, readBuildInfo } from './build-info.js';
import type { AllocatorMode } from '../gpu/allocator.js';
import type { MachineLoad } from './load.js';
import type { TuningRecord } from '../gpu/tuning.js';

/** Where a result came from (docs/design.md#provenance): enough to rerun it and to tell two runs apart. */
export interface Provenance {
  tool: { name: string; version: string };
  /**
   * The commit of the code that ran: HEAD of the checkout the tool runs from, else the one
   * `npm run build` stamped into dist/build-info.json (a tree copied without .git), else
   * MOEBLAZE_GIT_COMMIT; null when none says (an installed package, a build outside git).
   */
  gitCommit: string | null;
  /** The checkout (or the build's) had uncommitted changes; null when unknown. Absent in files before issue 29. */
  gitDirty?: boolean | null;
  commandLine: string;
  /** Version of the `webgpu` npm package, which pins the Dawn build. */
  dawnVersion: string | null;
  node: string;
  platform: string;
  adapter: AdapterReport | null;
  /**
   * --allocator, for a command that ran steps (src/gpu/buffer-pool.ts): caching keeps freed
   * buffers for reuse, fresh creates and destroys each. Absent for other commands and in files
   * written before issue 27 (those created and destroyed every buffer).
   */
  allocator?: AllocatorMode;
  time: string;
  /** `bench --tuning`: the matrix engine's tile table the run used; absent where none was given (and in older files). */
  tuning?: TuningRecord;
  /** How busy the machine was while a bench ran (src/measure/load.ts); absent elsewhere and in older files. */
  load?: MachineLoad | null;
}

interface PackageJson {
  name?: string;
  version?: string;
}

function readPackageJson(path: string): PackageJson | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as PackageJson;
  } catch {
    return null;
  }
}

/** Walks up from `start` to the first package.json that satisfies `accept`. */
function findPackageDir(start: string, accept: (pkg: PackageJson) => boolean): string | null {
  for (let dir = start; ; dir = dirname(dir)) {
    const pkg = existsSync(join(dir, 'package.json')) ? readPackageJson(join(dir, 'package.json')) : null;
    if (pkg && accept(pkg)) return dir;
    if (dirname(dir) === dir) return null;
  }
}

let root: string | null | undefined;

/**
 * The moeblaze package folder. Searched for rather than computed because this file runs both
 * from src/ (vitest) and from dist/src/ (the CLI), at different depths.
 */
export function packageRoot(): string {
  root ??= findPackageDir(dirname(fileURLToPath(import.meta.url)), (pkg) => pkg.name === 'moeblaze');
  if (!root) throw new Error(`moeblaze's package.json not found above ${fileURLToPath(import.meta.url)}`);
  return root;
}

export function toolInfo(): { name: string; version: string } {
  const pkg = readPackageJson(join(packageRoot(), 'package.json'));
  return { name: pkg?.name ?? 'moeblaze', version: pkg?.version ?? '0.0.0' };
}

/** Resolved the way Node resolves the import, so a hoisted or nested install both work. */
export function dawnVersion(): string | null {
  try {
    const entry = createRequire(join(packageRoot(), 'package.json')).resolve('webgpu');
    const dir = findPackageDir(dirname(entry), (pkg) => pkg.name === 'webgpu');
    return dir ? (readPackageJson(join(dir, 'package.json'))?.version ?? null) : null;
  } catch {
    return null;
  }
}

let code: { gitCommit: string | null; gitDirty: boolean | null } | undefined;

/** Which commit the running code is, and whether it had uncommitted changes (Provenance.gitCommit says where from). */
export function codeVersion(): { gitCommit: string | null; gitDirty: boolean | null } {
  if (code) return code;
  const checkout = commitOfCheckout();
  if (checkout) code = { gitCommit: checkout, gitDirty: describeCheckout(packageRoot()).dirty };
  else {
    const build = readBuildInfo(packageRoot());
    code = build?.gitCommit ? { gitCommit: build.gitCommit, gitDirty: build.dirty } : { gitCommit: commitFromEnv(process.env), gitDirty: null };
  }
  return code;
}

export function gitCommit(): string | null {
  return codeVersion().gitCommit;
}

/**
 * The bundle that pack.sh ships to a GPU machine has no .git: there MOEBLAZE_GIT_COMMIT names
 * the commit it was made from, so committed GPU results say which code they measured.
 */
export function commitFromEnv(env: NodeJS.ProcessEnv): string | null {
  const value = env.MOEBLAZE_GIT_COMMIT?.trim().toLowerCase();
  return value && /^[0-9a-f]{40,64}$/.test(value) ? value : null;
}

function commitOfCheckout(): string | null {
  try {
    const out = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: packageRoot(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim();
    // Only trust it when the git work tree is this package, not a folder that happens to contain it.
    const top = execFileSync('git', ['rev-parse', '--show-toplevel'], { cwd: packageRoot(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim();
    return /^[0-9a-f]{40,64}$/.test(out) && realpathSync(top) === realpathSync(packageRoot()) ? out : null;
  } catch {
    return null;
  }
}

/** Quotes an argument only where a POSIX shell would need it, so the line can be pasted back. */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * How the user started the tool, as they would type it again: `node bin/run.js` for a script
 * run from a clone (the path as seen from the working folder), `npx moeblaze` under npx,
 * `moeblaze` for a linked or installed binary, and `moeblaze` when the tool runs inside another
 * program (a library user, a test runner), where no command line was typed.
 */
export function typedProgram(script: string | undefined = process.argv[1], env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (!script) return 'moeblaze';
  if (basename(script) === 'moeblaze') return env.npm_command === 'exec' ? 'npx moeblaze' : 'moeblaze';
  if (!/(^|[\\/])bin[\\/]run\.js$/.test(script)) return 'moeblaze';
  const rel = isAbsolute(script) ? relative(cwd, script) : script;
  // Outside the working folder an absolute path is clearer than a chain of "../".
  return `node ${rel.startsWith('..') ? script : rel}`.split(' ').map(shellQuote).join(' ');
}

/** `argv`: the arguments after the program name, command id first (e.g. ["devices", "--json"]). */
export function collectProvenance(argv: readonly string[], adapter?: AdapterReport | null, allocator?: AllocatorMode): Provenance {
  return {
    tool: toolInfo(),
    ...codeVersion(),
    commandLine: [typedProgram(), ...argv.map(shellQuote)].join(' '),
    dawnVersion: dawnVersion(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    adapter: adapter ?? null,
    ...(allocator && { allocator }),
    time: new Date().toISOString(),
  };
}
