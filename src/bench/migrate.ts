import { UsageError } from '../errors.js';
import { parseSkew } from '../config.js';
import { BENCH_SCHEMA } from './schema.js';

/** The results schema before the configuration was one type (issue 17); readers still take it. */
export const BENCH_SCHEMA_V1 = 'moeblaze.bench/v1';

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** v1 wrote the skew as --skew does ("zipf:3"); v2 keeps the object form. Unreadable text stays, for the validator to name. */
function skewObject(skew: unknown): unknown {
  if (typeof skew !== 'string') return skew;
  try {
    return parseSkew(skew);
  } catch (error) {
    if (error instanceof UsageError) return skew;
    throw error;
  }
}

/**
 * `from` renamed to `to` (keeping the key's place, so the file reads as before), skew as an
 * object, and the routing, which v1 files written before --routing lack: top-k.
 */
function migrateConfig(config: unknown, from: string, to: string): unknown {
  if (!isObject(config)) return config;
  const entries = Object.entries(config).map(([key, value]) => (key === from ? [to, value] : key === 'skew' ? [key, skewObject(value)] : [key, value]));
  return { ...Object.fromEntries(entries), routing: config.routing ?? 'top-k' };
}

/**
 * Fields added within v2 need no migration: they are optional, and a reader takes their absence
 * as what the older tool did (issue 27: no `settings.allocator` means every buffer was created
 * and destroyed, `fresh`; no busy/idle split, reserved peak or buffer counts: not measured).
 *
 * A results.json of any schema the readers know, in the current one: the one place older files
 * are read (the gate's committed baselines, --resume of a sweep an older moeblaze wrote). From v1:
 * a case's `strategy` and the saved sweep's `strategies` are `impl`, as the flag is, and the skew
 * is the object form, and the routing top-k where --routing did not exist yet. From any: a check
 * record's `pass` where it predates it, and the relative figures' names from before they were named
 * for the reference strategy (`stepPeakVsZeroBuffer` is `stepPeakVsReference`, `zeroBufferSpeedup`
 * `stepTimeVsReference`). Anything else, and any value it cannot read, is left for the validator.
 */
export function migrateBenchResults(json: unknown): unknown {
  return withReferenceNames(withCheckVerdicts(fromV1(json)));
}

/** The relative figures' names before they were named for the reference strategy rather than for zero-buffer. */
const REFERENCE_NAMES: Record<string, string> = {
  stepPeakVsZeroBuffer: 'stepPeakVsReference',
  activationPeakVsZeroBuffer: 'activationPeakVsReference',
  savedVsZeroBuffer: 'savedVsReference',
  zeroBufferSpeedup: 'stepTimeVsReference',
};

/** A case's `relative` figures under their current names (each keeps its place, so the file reads as before). */
function withReferenceNames(json: unknown): unknown {
  const old = (c: unknown) => isObject(c) && isObject(c.relative) && Object.keys(c.relative).some((key) => key in REFERENCE_NAMES);
  if (!isObject(json) || !Array.isArray(json.cases) || !json.cases.some(old)) return json;
  const rename = (relative: Obj) => Object.fromEntries(Object.entries(relative).map(([key, value]) => [REFERENCE_NAMES[key] ?? key, value]));
  return { ...json, cases: json.cases.map((c: unknown) => (old(c) ? { ...(c as Obj), relative: rename((c as Obj).relative as Obj) } : c)) };
}

/**
 * A check record written before it had `pass` (issue 29) passed unless its case is a mismatch;
 * a case never checked against anything ('none') did not pass a check.
 */
function withCheckVerdicts(json: unknown): unknown {
  if (!isObject(json) || json.schema !== BENCH_SCHEMA || !Array.isArray(json.cases)) return json;
  if (!json.cases.some((c: unknown) => isObject(c) && isObject(c.check) && c.check.pass === undefined)) return json;
  const cases = json.cases.map((c: unknown) => (isObject(c) && isObject(c.check) && c.check.pass === undefined ? { ...c, check: { ...c.check, pass: c.status !== 'mismatch' && c.check.against !== 'none' } } : c));
  return { ...json, cases };
}

function fromV1(json: unknown): unknown {
  if (!isObject(json) || json.schema !== BENCH_SCHEMA_V1) return json;
  const settings = isObject(json.settings) && json.settings.sweep !== undefined ? { ...json.settings, sweep: migrateConfig(json.settings.sweep, 'strategies', 'impl') } : json.settings;
  const cases = Array.isArray(json.cases) ? json.cases.map((c: unknown) => (isObject(c) ? { ...c, config: migrateConfig(c.config, 'strategy', 'impl') } : c)) : json.cases;
  return { ...json, schema: BENCH_SCHEMA, settings, cases };
}
