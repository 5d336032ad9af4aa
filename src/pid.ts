import { readFileSync } from 'node:fs';

/*
 * Whether a process that left a lock or a temporary file is still there. A pid alone is not
 * enough: the kernel reuses pids, so a lock of a run killed long ago can name a live process
 * (pid 1, say) that has nothing to do with moeblaze. On Linux a process is identified by its pid
 * together with its start time (field 22 of /proc/<pid>/stat, in clock ticks since boot), which a
 * recycled pid does not share.
 */

/** The start time of `pid` in clock ticks since boot (Linux), or null where /proc does not tell. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2, the command name, is in parentheses and may itself hold spaces or parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (the state), so field 22 is fields[19].
    const start = fields[19];
    return start && /^\d+$/.test(start) ? start : null;
  } catch {
    return null;
  }
}

/** This process's identity as written into lock files: "<pid> <start time>" (the start time where /proc has it). */
export function ownIdentity(): string {
  const start = processStartTime(process.pid);
  return start === null ? `${process.pid}` : `${process.pid} ${start}`;
}

/**
 * Whether the process `pid` (started at `start`, when known) is still running. A different start
 * time means the pid was recycled: the owner is gone.
 */
export function processAlive(pid: number, start: string | null = null): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (start === null) return true;
  const now = processStartTime(pid);
  return now === null || now === start;
}

/** "<pid>" or "<pid> <start>" as ownIdentity() writes it; null when the text is neither. */
export function parseIdentity(text: string): { pid: number; start: string | null } | null {
  const match = /^\s*(\d+)(?:\s+(\d+))?\s*$/.exec(text);
  if (!match) return null;
  const pid = Number(match[1]);
  return Number.isSafeInteger(pid) && pid > 0 ? { pid, start: match[2] ?? null } : null;
}
