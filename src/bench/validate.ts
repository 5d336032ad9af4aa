import { strategyIds } from '../registry.js';
import { GEMM_ENGINES, ROUTINGS } from '../config.js';
import { ALLOCATOR_MODES, BUFFER_TAGS } from '../gpu/allocator.js';
import { caseKey } from './cases.js';
import { BENCH_SCHEMA, type CaseConfig, type CaseStatus } from './schema.js';
import { shardRecord, shardRuns } from './validate-shard.js';
import { caseBuffers, stepSplit } from './validate-buffers.js';

/**
 * A hand-written structural check of a results.json (schema moeblaze.bench/v2; older files are
 * migrated first, migrate.ts). Readers such as the CI gate and --resume get a file from disk,
 * possibly from another version or hand-edited; a list of precise problems beats a TypeError
 * deep inside a renderer. Empty list: valid.
 */

const STATUSES: readonly CaseStatus[] = ['ok', 'oom', 'unsupported', 'error', 'mismatch'];
const TAGS: readonly string[] = BUFFER_TAGS;

export { Checker, describe } from './checker.js';
import { Checker, describe, type Obj } from './checker.js';
import { parseTuning, tuningHash } from '../gpu/tuning.js';


function timeStats(ch: Checker, v: unknown, path: string, nullable: boolean): void {
  if (nullable && v === null) return;
  const t = ch.object(v, path);
  if (!t) return;
  const median = ch.number(t, 'median', path, { min: 0 });
  const p10 = ch.number(t, 'p10', path, { min: 0 });
  const p90 = ch.number(t, 'p90', path, { min: 0 });
  ch.number(t, 'noise', path, { min: 0 });
  const n = ch.number(t, 'n', path, { min: 1, integer: true });
  const samples = ch.numberArray(t.samples, `${path}.samples`);
  if (median !== null && p10 !== null && p90 !== null && !(p10 <= median && median <= p90)) ch.fail(path, `expected p10 ≤ median ≤ p90, got ${p10}, ${median}, ${p90}`);
  if (n !== null && samples && samples.length !== n) ch.fail(path, `n is ${n} but there are ${samples.length} samples`);
}

const CONFIG_NUMBERS = ['tokens', 'hidden', 'ffn', 'experts', 'topK', 'seed'];

/** The object form of config.ts's Skew: { kind: 'uniform' } or { kind: 'zipf', s ≥ 0 }. */
function skew(ch: Checker, v: unknown, path: string): void {
  const s = ch.object(v, path);
  if (!s) return;
  ch.oneOf(s, 'kind', path, ['uniform', 'zipf']);
  if (s.kind === 'zipf') ch.number(s, 's', path, { min: 0 });
}

function caseConfig(ch: Checker, v: unknown, path: string): void {
  const c = ch.object(v, path);
  if (!c) return;
  for (const key of ['impl', 'activation', 'checkpoint', 'dtype']) ch.string(c, key, path);
  skew(ch, c.skew, `${path}.skew`);
  for (const key of CONFIG_NUMBERS) ch.number(c, key, path, { min: key === 'seed' ? undefined : 1, integer: true });
  ch.number(c, 'capacityFactor', path, { nullable: true, min: 0 });
  ch.number(c, 'auxLoss', path, { min: 0 });
  ch.boolean(c, 'normalizeGates', path);
  // Absent in files written before --routing (top-k).
  if (c.routing !== undefined) ch.oneOf(c, 'routing', path, ROUTINGS);
  ch.oneOf(c, 'pass', path, ['forward', 'train']);
}

function benchCase(ch: Checker, v: unknown, path: string, keys: Set<string>): void {
  const c = ch.object(v, path);
  if (!c) return;
  ch.string(c, 'key', path);
  if (typeof c.key === 'string') {
    if (keys.has(c.key)) ch.fail(`${path}.key`, `duplicate case key ${JSON.stringify(c.key)}`);
    keys.add(c.key);
  }
  caseConfig(ch, c.config, `${path}.config`);
  ch.oneOf(c, 'status', path, STATUSES);
  if (c.message !== undefined) ch.string(c, 'message', path);
  // A case that did not run must say why, or its row is a bare status.
  if (c.status !== 'ok' && STATUSES.includes(c.status as CaseStatus) && typeof c.message !== 'string') ch.fail(`${path}.message`, `a case with status ${c.status} needs a message`);
  if (c.check !== undefined) {
    const k = ch.object(c.check, `${path}.check`);
    if (k) {
      // Older files name the strategy whose output was the anchor: any registered id.
      ch.oneOf(k, 'against', `${path}.check`, ['reference', 'none', ...strategyIds()]);
      ch.number(k, 'maxRelError', `${path}.check`, { nullable: true, min: 0 });
      checkRecord(ch, k, `${path}.check`);
      // A case is timed only after its check passed; a mismatch is a check that failed; 'none' checked nothing.
      const verdict = k.against !== 'none' && c.status !== 'mismatch';
      if (typeof k.pass === 'boolean' && k.pass !== verdict) ch.fail(`${path}.check.pass`, `${k.pass} contradicts status ${String(c.status)} against ${String(k.against)}`);
    }
  }
  const ok = c.status === 'ok';
  for (const part of ['time', 'throughput', 'memory']) {
    if (ok && c[part] === undefined) ch.fail(`${path}.${part}`, 'an ok case needs time, throughput and memory');
  }
  if (c.time !== undefined) {
    const t = ch.object(c.time, `${path}.time`);
    if (t) {
      ch.oneOf(t, 'source', `${path}.time`, ['timestamp', 'wall']);
      timeStats(ch, t.step, `${path}.time.step`, false);
      timeStats(ch, t.forward, `${path}.time.forward`, true);
      timeStats(ch, t.backward, `${path}.time.backward`, true);
      if (t.split !== undefined) stepSplit(ch, t.split, `${path}.time.split`, (t.step as { n?: unknown } | null)?.n);
      if (t.vsReference !== undefined) {
        const p = ch.object(t.vsReference, `${path}.time.vsReference`);
        if (p) {
          ch.string(p, 'impl', `${path}.time.vsReference`);
          timeStats(ch, p.ratio, `${path}.time.vsReference.ratio`, false);
        }
      }
    }
  }
  if (c.throughput !== undefined) {
    const t = ch.object(c.throughput, `${path}.throughput`);
    if (t) {
      ch.number(t, 'tokensPerS', `${path}.throughput`, { min: 0 });
      ch.number(t, 'usefulTflops', `${path}.throughput`, { min: 0 });
      ch.number(t, 'gemmFraction', `${path}.throughput`, { nullable: true, min: 0 });
    }
  }
  if (c.memory !== undefined) memory(ch, c.memory, `${path}.memory`);
  caseBuffers(ch, c, path);
  if (c.routing !== undefined) {
    const r = ch.object(c.routing, `${path}.routing`);
    if (r) {
      ch.number(r, 'keptPairs', `${path}.routing`, { min: 0, integer: true });
      ch.number(r, 'droppedPairs', `${path}.routing`, { min: 0, integer: true });
      const pct = ch.number(r, 'droppedPercent', `${path}.routing`, { min: 0 });
      if (pct !== null && pct > 100) ch.fail(`${path}.routing.droppedPercent`, `expected ≤ 100, got ${pct}`);
      ch.number(r, 'capacity', `${path}.routing`, { nullable: true, min: 0, integer: true });
      ch.numberArray(r.expertLoads, `${path}.routing.expertLoads`);
    }
  }
  if (c.relative !== undefined) {
    const r = ch.object(c.relative, `${path}.relative`);
    if (r) for (const key of ['stepPeakVsReference', 'activationPeakVsReference', 'savedVsReference', 'stepTimeVsReference']) ch.number(r, key, `${path}.relative`, { nullable: true, min: 0 });
  }
  if (c.shard !== undefined) ch.number(c, 'shard', path, { min: 1, integer: true });
  if (c.testbed !== undefined) testbed(ch, c.testbed, `${path}.testbed`);
}

function testbed(ch: Checker, v: unknown, path: string): void {
  const t = ch.object(v, path);
  if (t) for (const key of ['vendor', 'architecture', 'device', 'description', 'backend', 'dawnVersion', 'fingerprint']) ch.string(t, key, path);
}

function memory(ch: Checker, v: unknown, path: string): void {
  const m = ch.object(v, path);
  if (!m) return;
  const bytes = { min: 0, integer: true };
  ch.number(m, 'baseline', path, bytes);
  const step = ch.number(m, 'stepPeak', path, bytes);
  const act = ch.number(m, 'activationPeak', path, bytes);
  for (const key of ['savedForBackward', 'backwardTransient', 'modelEstimate']) ch.number(m, key, path, { ...bytes, nullable: true });
  if (step !== null && act !== null && act > step) ch.fail(path, `activation peak ${act} exceeds step peak ${step}`);
  ch.numberRecord(m.peakByTag, `${path}.peakByTag`, TAGS);
  ch.numberRecord(m.peakByName, `${path}.peakByName`);
  // Absent before issue 27; never below the live peak, which it contains.
  if (m.reservedPeak !== undefined) {
    const reserved = ch.number(m, 'reservedPeak', path, bytes);
    if (reserved !== null && step !== null && reserved < step) ch.fail(`${path}.reservedPeak`, `reserved ${reserved} is below the step peak ${step}`);
  }
}

function provenance(ch: Checker, v: unknown, path: string): void {
  const p = ch.object(v, path);
  if (!p) return;
  const tool = ch.object(p.tool, `${path}.tool`);
  if (tool) {
    ch.string(tool, 'name', `${path}.tool`);
    ch.string(tool, 'version', `${path}.tool`);
  }
  ch.string(p, 'gitCommit', path, true);
  if (p.gitDirty !== undefined && p.gitDirty !== null) ch.boolean(p, 'gitDirty', path);
  ch.string(p, 'commandLine', path);
  ch.string(p, 'dawnVersion', path, true);
  ch.string(p, 'node', path);
  ch.string(p, 'platform', path);
  if (p.adapter !== null) ch.object(p.adapter, `${path}.adapter`);
  if (p.allocator !== undefined) ch.oneOf(p, 'allocator', path, ALLOCATOR_MODES);
  // Absent without --tuning and in files before it; present, the table must parse and match its hash.
  if (p.tuning !== undefined) tuningRecord(ch, p.tuning, `${path}.tuning`);
  ch.string(p, 'time', path);
  if (typeof p.time === 'string' && Number.isNaN(Date.parse(p.time))) ch.fail(`${path}.time`, `not a date: ${describe(p.time)}`);
}

function tuningRecord(ch: Checker, v: unknown, path: string): void {
  const t = ch.object(v, path);
  if (!t) return;
  ch.string(t, 'hash', path);
  try {
    const table = parseTuning(t.table, `${path}.table`);
    if (tuningHash(table) !== t.hash) ch.fail(`${path}.hash`, `${describe(t.hash)} is not the table's hash (${tuningHash(table)})`);
  } catch (error) {
    ch.fail(`${path}.table`, (error as Error).message);
  }
}

function settings(ch: Checker, v: unknown, path: string): void {
  const s = ch.object(v, path);
  if (!s) return;
  ch.string(s, 'preset', path, true);
  ch.oneOf(s, 'pass', path, ['forward', 'train']);
  ch.number(s, 'layers', path, { min: 1, integer: true });
  const sampling = ch.object(s.sampling, `${path}.sampling`);
  if (sampling) for (const key of ['warmup', 'minSamples', 'maxSamples', 'noiseTarget', 'maxTimeMs']) ch.number(sampling, key, `${path}.sampling`, { min: 0 });
  ch.number(s, 'memoryLimit', path, { nullable: true, min: 1 });
  if (s.allocator !== undefined) ch.oneOf(s, 'allocator', path, ALLOCATOR_MODES);
  ch.oneOf(s, 'timing', path, ['timestamp', 'wall']);
  if (s.sweep !== undefined) savedSweep(ch, s.sweep, `${path}.sweep`);
  if (s.shard !== undefined) shardRecord(ch, s.shard, `${path}.shard`);
  if (s.check !== undefined) ch.oneOf(s, 'check', path, ['auto', 'sampled']);
  if (s.gpu !== undefined) {
    const g = ch.object(s.gpu, `${path}.gpu`);
    if (g) {
      ch.oneOf(g, 'gemm', `${path}.gpu`, ['auto', ...GEMM_ENGINES]);
      ch.boolean(g, 'nvidiaF16', `${path}.gpu`);
      ch.boolean(g, 'robustness', `${path}.gpu`);
    }
  }
  const axes = ch.object(s.axes, `${path}.axes`);
  if (axes) {
    for (const [axis, values] of Object.entries(axes)) {
      if (!Array.isArray(values) || values.length === 0 || values.some((x) => typeof x !== 'number' && typeof x !== 'string')) ch.fail(`${path}.axes.${axis}`, 'expected a non-empty list of numbers or strings');
    }
  }
}

function savedSweep(ch: Checker, v: unknown, path: string): void {
  const s = ch.object(v, path);
  if (!s) return;
  if (!Array.isArray(s.impl) || s.impl.length === 0 || s.impl.some((x) => typeof x !== 'string')) ch.fail(`${path}.impl`, 'expected a non-empty list of strategy names');
  ch.string(s, 'preset', path, true);
  for (const key of ['tokens', 'hidden', 'ffn', 'experts', 'topK', 'capacityFactor']) {
    if (s[key] === undefined && key !== 'capacityFactor') continue;
    const list = ch.numberArray(s[key], `${path}.${key}`);
    if (list && (list.length === 0 || list.some((x) => x < 0))) ch.fail(`${path}.${key}`, 'expected a non-empty list of numbers ≥ 0');
  }
  for (const key of ['activation', 'checkpoint', 'dtype']) ch.string(s, key, path);
  skew(ch, s.skew, `${path}.skew`);
  if (s.normalizeGates !== null) ch.boolean(s, 'normalizeGates', path);
  if (s.routing !== undefined) ch.oneOf(s, 'routing', path, ROUTINGS);
  ch.number(s, 'auxLoss', path, { min: 0 });
  ch.number(s, 'seed', path, { min: 0, integer: true });
  ch.oneOf(s, 'pass', path, ['forward', 'train']);
}

function ceilings(ch: Checker, v: unknown, path: string): void {
  if (v === null) return;
  const c = ch.object(v, path);
  if (!c) return;
  for (const [part, rate] of [['gemm', 'tflops'], ['bandwidth', 'gbPerS']] as const) {
    const x = ch.object(c[part], `${path}.${part}`);
    if (!x) continue;
    ch.number(x, part === 'gemm' ? 'n' : 'bytes', `${path}.${part}`, { min: 1, integer: true });
    ch.number(x, rate, `${path}.${part}`, { min: 0 });
    ch.number(x, 'medianMs', `${path}.${part}`, { min: 0 });
    ch.numberArray(x.samples, `${path}.${part}.samples`);
  }
}

export function validateBenchResults(json: unknown): string[] {
  const ch = new Checker();
  const r = ch.object(json, 'results');
  if (!r) return ch.problems;
  if (r.schema !== BENCH_SCHEMA) ch.fail('results.schema', `expected ${JSON.stringify(BENCH_SCHEMA)}, got ${describe(r.schema)}`);
  provenance(ch, r.provenance, 'results.provenance');
  testbed(ch, r.testbed, 'results.testbed');
  settings(ch, r.settings, 'results.settings');
  ceilings(ch, r.ceilings, 'results.ceilings');
  if (!Array.isArray(r.cases)) ch.fail('results.cases', `expected an array, got ${describe(r.cases)}`);
  else {
    const keys = new Set<string>();
    r.cases.forEach((c, i) => benchCase(ch, c, `results.cases[${i}]`, keys));
    if (!ch.problems.length) caseIdentities(ch, r.cases as { key: string; config: CaseConfig }[]);
  }
  if (r.shards !== undefined) shardRuns(ch, r.shards, r.cases, { provenance, testbed, ceilings });
  ch.boolean(r, 'complete', 'results');
  if (!Array.isArray(r.notes) || r.notes.some((n) => typeof n !== 'string')) ch.fail('results.notes', 'expected a list of strings');
  return ch.problems;
}

/** The fields issue 18 added to a case's check: which float64 check ran and on how much. */
function checkRecord(ch: Checker, k: Obj, path: string): void {
  if (k.kind !== undefined) ch.oneOf(k, 'kind', path, ['full', 'sampled']);
  if (k.maxErrorRatio !== undefined) ch.number(k, 'maxErrorRatio', path, { min: 0 });
  if (k.sample !== undefined && k.sample !== null) {
    const s = ch.object(k.sample, `${path}.sample`);
    if (s) for (const key of ['tokens', 'units']) ch.number(s, key, `${path}.sample`, { integer: true, min: 1 });
  }
  if (k.kind === 'sampled' && !k.sample) ch.fail(`${path}.sample`, 'a sampled check needs its sample size');
  if (k.pass !== undefined) ch.boolean(k, 'pass', path);
  if (k.seconds !== undefined) ch.number(k, 'seconds', path, { min: 0 });
  if (k.forcedTokens !== undefined && (!Array.isArray(k.forcedTokens) || k.forcedTokens.some((t) => !Number.isInteger(t) || (t as number) < 0))) ch.fail(`${path}.forcedTokens`, 'expected a list of token indices');
}

/**
 * Readers match cases by their config (the gate by caseKey(config)), so a key that does not say
 * what the config says, or two cases with one config (a hand-edited copy), would let one case
 * stand for another: a duplicate could hide a regression (issue 28).
 */
function caseIdentities(ch: Checker, cases: readonly { key: string; config: CaseConfig }[]): void {
  const seen = new Map<string, number>();
  cases.forEach((c, i) => {
    const expected = caseKey(c.config);
    if (c.key !== expected) ch.fail(`results.cases[${i}].key`, `${JSON.stringify(c.key)} does not match its config, whose key is ${JSON.stringify(expected)}`);
    const first = seen.get(expected);
    if (first !== undefined) ch.fail(`results.cases[${i}].config`, `the same config as results.cases[${first}] (${expected}); each config may appear once`);
    else seen.set(expected, i);
  });
}
