import { describe, expect, it } from 'vitest';
import { startCli } from '../helpers/cli.js';

/* Issue 28, item 18: an unknown command is a usage error like any other, and a JSON one under --json. */

describe('an unknown command', () => {
  it('exit 2, one line naming the commands; under --json the error is the JSON document on stdout', async () => {
    const r = await startCli(['nosuch', '--json']).done;
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^moeblaze: unknown command "nosuch"; the commands are (\w+, )+\w+; see `moeblaze --help`$/);
    expect(r.stderr).toMatch(/the commands are bench, devices, gate, merge, plan, profile, train, tune, verify;/);
    expect(JSON.parse(r.stdout)).toEqual({ error: { name: 'UsageError', message: r.stderr.trim().replace(/^moeblaze: /, ''), exitCode: 2 } });
    const plain = await startCli(['nosuch']).done;
    expect(plain.code).toBe(2);
    expect(plain.stdout).toBe('');
    expect(plain.stderr).toBe(r.stderr);
  });
});
