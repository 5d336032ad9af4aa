import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';

/**
 * How busy the machine was while a sweep ran (docs/design.md#gate-verdicts): the gate names it
 * beside every absolute time it shows, and says so when either run was not idle. Measured
 * from /proc/stat (Linux) around the run, minus this process's own CPU time, so that the
 * benchmark's own work (a software GPU's threads included) is not counted as load.
 */
export interface MachineLoad {
  cpus: number;
  /** os.loadavg() when the run ended: 1, 5 and 15 minutes. */
  loadAverage: [number, number, number];
  /** Seconds between the two /proc/stat readings; null where /proc/stat is absent (not Linux). */
  seconds: number | null;
  /** Share of all CPUs' time spent by other processes during the run (0–1); null without /proc/stat. */
  otherBusy: number | null;
  /** Share of all CPUs' time stolen by the hypervisor during the run (0–1); null without /proc/stat. */
  steal: number | null;
}

interface CpuTimes {
  /** All jiffies, idle ones included. */
  total: number;
  idle: number;
  steal: number;
}

/** The "cpu" line of /proc/stat: user nice system idle iowait irq softirq steal (guest time is inside user). */
export function parseProcStat(text: string): CpuTimes | null {
  const line = text.split('\n').find((l) => /^cpu\s/.test(l));
  if (!line) return null;
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 4 || f.some((x) => !Number.isFinite(x))) return null;
  const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  return { total: user + nice + system + idle + iowait + irq + softirq + steal, idle: idle + iowait, steal };
}

function readCpuTimes(): CpuTimes | null {
  try {
    return parseProcStat(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return null;
  }
}

/** USER_HZ: /proc/stat counts in 1/100 s on every Linux the tool runs on. */
const TICKS_PER_SECOND = 100;

/**
 * The load between two readings. `ownCpuSeconds` is this process's CPU time over the same span
 * (process.cpuUsage, all threads): subtracted from the busy time, so what is left is the others'.
 */
export function loadBetween(before: CpuTimes, after: CpuTimes, ownCpuSeconds: number, cpus: number, average: [number, number, number]): MachineLoad {
  const total = after.total - before.total;
  if (!(total > 0)) return { cpus, loadAverage: average, seconds: null, otherBusy: null, steal: null };
  const busy = total - (after.idle - before.idle) - (after.steal - before.steal);
  const own = ownCpuSeconds * TICKS_PER_SECOND;
  const clamp = (x: number) => Math.min(1, Math.max(0, x));
  return {
    cpus,
    loadAverage: average,
    seconds: total / TICKS_PER_SECOND / cpus,
    otherBusy: clamp((busy - own) / total),
    steal: clamp((after.steal - before.steal) / total),
  };
}

/** Starts watching; the function returned reads the load since then. */
export function watchLoad(): () => MachineLoad {
  const before = readCpuTimes();
  const ownBefore = process.cpuUsage();
  return () => {
    const after = readCpuTimes();
    const own = process.cpuUsage(ownBefore);
    const average = loadavg().map((x) => Math.round(x * 100) / 100) as [number, number, number];
    const cpus = availableParallelism();
    if (!before || !after) return { cpus, loadAverage: average, seconds: null, otherBusy: null, steal: null };
    return loadBetween(before, after, (own.user + own.system) / 1e6, cpus, average);
  };
}

/** Other processes and steal above this share of all CPUs: the machine was not idle. */
export const IDLE_MAX = 0.15;

/**
 * Whether both runs were made on an idle machine (loads known, other processes and steal under
 * IDLE_MAX of all CPUs): needed before absolute times compare, though not enough (the gate leaves
 * them ungated by default; docs/design.md#gate-verdicts). Two
 * busy runs are not comparable either, even at the same average load: load comes and goes, and a
 * busy machine slows every case at once, which is not a regression of the code.
 */
export function loadComparable(baseline: MachineLoad | null | undefined, current: MachineLoad | null | undefined): { comparable: boolean; why: string } {
  const busy = (l: MachineLoad) => l.otherBusy! + (l.steal ?? 0);
  const show = (l: MachineLoad) => `${pct(l.otherBusy!)} other${l.steal ? `, ${pct(l.steal)} steal` : ''}`;
  if (!baseline || baseline.otherBusy == null) return { comparable: false, why: 'the baseline has no load record' };
  if (!current || current.otherBusy == null) return { comparable: false, why: 'the current run has no load record' };
  const both = `CPU: ${show(current)} now, ${show(baseline)} in the baseline`;
  if (busy(current) > IDLE_MAX || busy(baseline) > IDLE_MAX) return { comparable: false, why: `machine not idle (${both}; idle is under ${pct(IDLE_MAX)})` };
  return { comparable: true, why: `machine idle in both runs (${both})` };
}

const pct = (x: number) => `${Math.round(x * 100)}%`;
