import os from 'node:os';
import si from 'systeminformation';

/** The machine around the adapter: what a reader of a result needs to compare it with theirs. */
export interface HostReport {
  cpu: { model: string; cores: number; physicalCores: number | null };
  memoryBytes: number;
  os: { distro: string; release: string; codename: string | null; kernel: string; arch: string };
  gpus: HostGpu[];
  /** Probes that failed or ran past their time limit, so a missing field is explained. */
  unavailable: string[];
}

export interface HostGpu {
  vendor: string;
  model: string;
  driver: string | null;
  vramBytes: number | null;
  bus: string | null;
}

const MIB = 2 ** 20;

/**
 * Resolves with null when `probe` fails or takes longer than `ms`: `devices` must answer in
 * seconds even where a driver tool (nvidia-smi on a busy node) hangs.
 */
async function bounded<T>(name: string, probe: () => Promise<T>, ms: number, unavailable: string[]): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => {
      unavailable.push(`${name} (no answer within ${ms / 1000} s)`);
      resolve(null);
    }, ms);
    // A probe's child process must not keep the CLI alive after the report is printed.
    timer.unref();
  });
  try {
    return await Promise.race([
      probe().catch((error: unknown) => {
        unavailable.push(`${name} (${(error as Error)?.message ?? error})`);
        return null;
      }),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function gpuFrom(c: si.Systeminformation.GraphicsControllerData): HostGpu {
  // nvidia-smi's memoryTotal is exact; lspci's vram is often the BAR size, not the memory.
  const mib = c.memoryTotal ?? c.vram;
  return {
    vendor: c.vendor || 'unknown',
    model: c.model || c.name || 'unknown',
    driver: c.driverVersion || null,
    vramBytes: mib && mib > 0 ? mib * MIB : null,
    bus: c.pciBus || c.busAddress || c.bus || null,
  };
}

/** Host facts from `systeminformation`, each probe bounded by `timeoutMs`; falls back to node:os. */
export async function collectHost(timeoutMs = 4000): Promise<HostReport> {
  const unavailable: string[] = [];
  const [cpu, mem, osInfo, graphics] = await Promise.all([
    bounded('cpu', () => si.cpu(), timeoutMs, unavailable),
    bounded('memory', () => si.mem(), timeoutMs, unavailable),
    bounded('os', () => si.osInfo(), timeoutMs, unavailable),
    bounded('graphics', () => si.graphics(), timeoutMs, unavailable),
  ]);
  const cpus = os.cpus();
  return {
    cpu: {
      model: cpu ? [cpu.manufacturer, cpu.brand].filter(Boolean).join(' ') : (cpus[0]?.model ?? 'unknown'),
      cores: cpu?.cores || cpus.length,
      physicalCores: cpu?.physicalCores || null,
    },
    memoryBytes: mem?.total || os.totalmem(),
    os: {
      distro: osInfo?.distro || os.type(),
      release: osInfo?.release || os.release(),
      codename: osInfo?.codename || null,
      kernel: osInfo?.kernel || os.release(),
      arch: osInfo?.arch || os.arch(),
    },
    gpus: (graphics?.controllers ?? []).map(gpuFrom),
    unavailable,
  };
}
