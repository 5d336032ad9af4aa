import type { Tensor, ChunkLayout } from '../gpu/tensor.js';
import type { BufferSpec, BufferTable } from './buffer-table.js';
import type { StepContext } from './contract.js';

/**
 * A runner's step buffers, allocated and freed by its buffer table (docs/design.md#memory), the
 * only place a strategy declares them: a buffer is allocated with the table's layout and tag in
 * its first phase, and freed when its last phase ends (or earlier, by name, within it). Outputs
 * stay until the runner releases them after the caller has read them. So the table and the
 * allocator's record cannot drift apart, which the memory tests check to the byte.
 */
export class StepBuffers {
  private table: BufferTable | null = null;
  private current: string | null = null;
  /** Index of the last phase entered this step: phases only move forward. */
  private last = -1;
  private readonly live = new Map<string, Tensor>();

  constructor(private readonly owner: string) {}

  /**
   * Starts a step on `table`, or swaps in a resized one mid-step once routing is known (MegaBlocks' padded
   * bins): buffers already live must keep their size in the new table.
   */
  use(table: BufferTable): void {
    for (const [name, tensor] of this.live) {
      const spec = table.step.find((s) => s.name === name);
      if (!spec || spec.bytes !== tensor.chunks.reduce((a, c) => a + c.bytes, 0)) {
        throw new Error(`${this.owner}: the new buffer table changes ${name}, which is live`);
      }
    }
    const midStep = [...this.live.values()].some((t) => t.tag !== 'output');
    if (!midStep) {
      this.current = null;
      this.last = -1;
    }
    this.table = table;
  }

  /** Ends the current phase (freeing what ended with it), then starts `phase`. */
  enter(step: StepContext, phase: string): void {
    const phases = this.tableInUse().phases;
    const next = phases.indexOf(phase);
    if (next < 0) throw new Error(`${this.owner}: phase ${phase} is not in the buffer table (${phases.join(', ')})`);
    if (next <= this.last) throw new Error(`${this.owner}: phase ${phase} comes before ${phases[this.last]} in the buffer table`);
    this.endPhase(step);
    step.phase(phase);
    this.current = phase;
    this.last = next;
  }

  /** Frees the buffers whose last phase is the current one, outputs excepted. */
  endPhase(step: StepContext): void {
    if (this.current === null) return;
    const ending = this.tableInUse().step.filter((s) => s.to === this.current && s.tag !== 'output' && this.live.has(s.name));
    this.free(step, ...ending.map((s) => s.name));
    this.current = null;
  }

  /** Allocates the named buffers as the table declares them; each must begin in the current phase. */
  alloc(step: StepContext, ...names: string[]): Tensor[] {
    return names.map((name) => {
      // A name may appear more than once (a buffer dropped and recomputed): the entry starting now.
      const s = this.tableInUse().step.find((x) => x.name === name && x.from === this.current);
      if (!s) throw new Error(`${this.owner}: ${name} is planned from phase ${this.spec(name).from}, allocated in ${this.current}`);
      if (this.live.has(name)) throw new Error(`${this.owner}: ${name} is already live`);
      const tensor = step.alloc(name, s.tag, s.layout);
      this.live.set(name, tensor);
      return tensor;
    });
  }

  /** Frees live buffers before their phase ends (a transient inside one phase); absent names are skipped. */
  free(step: StepContext, ...names: string[]): void {
    const tensors = names.filter((n) => this.live.has(n)).map((n) => this.live.get(n)!);
    if (tensors.length === 0) return;
    step.free(...tensors);
    for (const n of names) this.live.delete(n);
  }

  /** Frees everything still live (the outputs, once read); the next step starts clean. */
  release(step: StepContext): void {
    this.free(step, ...this.live.keys());
    this.current = null;
    this.last = -1;
  }

  has(name: string): boolean {
    return this.live.has(name);
  }

  get(name: string): Tensor {
    const tensor = this.live.get(name);
    if (!tensor) throw new Error(`${this.owner}: ${name} is not live (routing and saved tensors live from forward() to the end of backward(); read routing between the two)`);
    return tensor;
  }

  chunk(name: string, index = 0) {
    return this.get(name).chunks[index];
  }

  layoutOf(name: string): ChunkLayout {
    return this.spec(name).layout;
  }

  private spec(name: string): BufferSpec {
    const s = this.tableInUse().step.find((x) => x.name === name);
    if (!s) throw new Error(`${this.owner}: ${name} is not in the buffer table`);
    return s;
  }

  private tableInUse(): BufferTable {
    if (!this.table) throw new Error(`${this.owner}: no buffer table in use (forward() starts a step)`);
    return this.table;
  }
}
