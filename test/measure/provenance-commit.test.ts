import { describe, expect, it } from 'vitest';
import { commitFromEnv } from '../../src/measure/provenance.js';

describe('commit of a bundle without .git (pack.sh on a GPU machine)', () => {
  it('MOEBLAZE_GIT_COMMIT names it when it is a full hash; anything else is ignored', () => {
    const hash = 'f7130d1c0ffee0000000000000000000000000ab';
    expect(commitFromEnv({ MOEBLAZE_GIT_COMMIT: hash })).toBe(hash);
    expect(commitFromEnv({ MOEBLAZE_GIT_COMMIT: ` ${hash.toUpperCase()}\n` })).toBe(hash);
    expect(commitFromEnv({ MOEBLAZE_GIT_COMMIT: 'f7130d1' })).toBeNull();
    expect(commitFromEnv({ MOEBLAZE_GIT_COMMIT: 'main' })).toBeNull();
    expect(commitFromEnv({})).toBeNull();
  });
});
