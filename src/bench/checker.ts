/** The structural checker every results-file validator uses: it collects problems by JSON path. */
export type Obj = Record<string, unknown>;

export class Checker {
  readonly problems: string[] = [];

  fail(path: string, message: string): void {
    this.problems.push(`${path}: ${message}`);
  }

  object(v: unknown, path: string): Obj | null {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Obj;
    this.fail(path, `expected an object, got ${describe(v)}`);
    return null;
  }

  string(o: Obj, key: string, path: string, nullable = false): void {
    const v = o[key];
    if (typeof v === 'string' || (nullable && v === null)) return;
    this.fail(`${path}.${key}`, `expected a string${nullable ? ' or null' : ''}, got ${describe(v)}`);
  }

  number(o: Obj, key: string, path: string, opts: { nullable?: boolean; min?: number; integer?: boolean } = {}): number | null {
    const v = o[key];
    if (opts.nullable && v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      this.fail(`${path}.${key}`, `expected a finite number${opts.nullable ? ' or null' : ''}, got ${describe(v)}`);
      return null;
    }
    if (opts.integer && !Number.isInteger(v)) this.fail(`${path}.${key}`, `expected an integer, got ${v}`);
    if (opts.min !== undefined && v < opts.min) this.fail(`${path}.${key}`, `expected ≥ ${opts.min}, got ${v}`);
    return v;
  }

  boolean(o: Obj, key: string, path: string): void {
    if (typeof o[key] !== 'boolean') this.fail(`${path}.${key}`, `expected a boolean, got ${describe(o[key])}`);
  }

  oneOf(o: Obj, key: string, path: string, allowed: readonly string[]): void {
    if (!allowed.includes(o[key] as string)) this.fail(`${path}.${key}`, `expected one of ${allowed.join(', ')}, got ${describe(o[key])}`);
  }

  numberArray(v: unknown, path: string): number[] | null {
    if (!Array.isArray(v)) {
      this.fail(path, `expected an array, got ${describe(v)}`);
      return null;
    }
    const bad = v.findIndex((x) => typeof x !== 'number' || !Number.isFinite(x));
    if (bad >= 0) this.fail(`${path}[${bad}]`, `expected a finite number, got ${describe(v[bad])}`);
    return bad >= 0 ? null : (v as number[]);
  }

  numberRecord(v: unknown, path: string, keys?: readonly string[]): void {
    const o = this.object(v, path);
    if (!o) return;
    for (const [k, x] of Object.entries(o)) {
      if (keys && !keys.includes(k)) this.fail(`${path}.${k}`, `unknown key (known: ${keys.join(', ')})`);
      else if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) this.fail(`${path}.${k}`, `expected a byte count, got ${describe(x)}`);
    }
  }
}

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing (missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}
