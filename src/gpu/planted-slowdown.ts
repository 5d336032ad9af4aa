/**
 * A test hook, never on unless asked: MOEBLAZE_PLANT_SLOWDOWN=<strategy>:<extra> makes every GEMM
 * dispatch of that strategy run 1 + extra times on average (extra 0.5: every second one twice).
 * The repeats read the real inputs and write scratch buffers outside the allocator, so results
 * and memory figures stay exactly as they are and only time grows: the gate's tests plant a known
 * slowdown of one strategy's kernels with it and check that the gate fails (docs/design.md#gate-verdicts).
 * A bench run with it set says so in its notes.
 */
export const PLANT_VARIABLE = 'MOEBLAZE_PLANT_SLOWDOWN';

export interface PlantedSlowdown {
  strategy: string;
  /** Extra dispatches per GEMM dispatch, on average. */
  extra: number;
}

export function plantedSlowdown(env: NodeJS.ProcessEnv = process.env): PlantedSlowdown | null {
  const text = env[PLANT_VARIABLE]?.trim();
  if (!text) return null;
  const match = /^([\w-]+):(\d+(?:\.\d+)?)$/.exec(text);
  if (!match || !(Number(match[2]) > 0)) throw new Error(`${PLANT_VARIABLE}: "${text}" is not <strategy>:<extra dispatches per GEMM dispatch>, e.g. tutel:0.5`);
  return { strategy: match[1], extra: Number(match[2]) };
}

/** The note a run with the hook on carries, or null. */
export function plantNote(env: NodeJS.ProcessEnv = process.env): string | null {
  const p = plantedSlowdown(env);
  return p ? `${PLANT_VARIABLE}=${p.strategy}:${p.extra}: ${p.strategy}'s GEMM dispatches were repeated on purpose (a test hook); its times are slowed` : null;
}

/**
 * The repeats of one step encoder: `credit` carries the fractional part from one GEMM dispatch to
 * the next; scratch buffers stand in for the kernel's writable bindings.
 */
export class GemmRepeater {
  private credit = 0;
  private readonly scratch = new Map<string, GPUBuffer>();

  constructor(
    private readonly device: GPUDevice,
    readonly extra: number,
  ) {}

  /** How many extra dispatches follow this one. */
  repeats(): number {
    this.credit += this.extra;
    const n = Math.floor(this.credit + 1e-9);
    this.credit -= n;
    return n;
  }

  /** The binding's buffer for a repeat: itself when read-only, a scratch buffer of its size when written. */
  stand(buffer: GPUBuffer, index: number, writable: boolean): GPUBuffer {
    if (!writable) return buffer;
    const key = `${index}:${buffer.size}`;
    let s = this.scratch.get(key);
    if (!s) {
      s = this.device.createBuffer({ label: `planted-slowdown scratch ${key}`, size: buffer.size, usage: GPUBufferUsage.STORAGE });
      this.scratch.set(key, s);
    }
    return s;
  }

  destroy(): void {
    for (const s of this.scratch.values()) s.destroy();
    this.scratch.clear();
  }
}
