import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/*
 * A small tmpfs of its own, for what only a real filesystem shows: a full disk (ENOSPC) and a
 * read-only folder that root cannot write either. CI runs as root on Debian 12 and can mount
 * one; elsewhere (no root, a container without CAP_SYS_ADMIN) `mountTmpfs` returns the reason to
 * skip with.
 */

export interface Tmpfs {
  dir: string;
  remount(options: string): void;
  unmount(): void;
}

/** Mounts a tmpfs of `bytes` on a fresh folder, or returns why it cannot. */
export function mountTmpfs(bytes: number): Tmpfs | string {
  if (process.platform !== 'linux') return `tmpfs mounts need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root (CI runs as root)';
  const dir = mkdtempSync(join(tmpdir(), 'moeblaze-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    return `mount -t tmpfs is not allowed here (${String((error as { stderr?: Buffer }).stderr ?? (error as Error).message).trim()})`;
  }
  return {
    dir,
    remount: (options) => execFileSync('mount', ['-o', `remount,${options}`, dir], { stdio: 'pipe' }),
    unmount: () => {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
