import { terminalOf, type TerminalStream } from './terminal.js';

/** What the progress display needs of a stream; process.stderr, or a test double. */
export interface ProgressStream extends TerminalStream {
  write(chunk: string): boolean;
}

export interface ProgressOptions {
  /** Never stdout: stdout carries the report (and --json). */
  stream?: ProgressStream;
  /** Redraw one bar in place; otherwise one line per case (logs, CI). Defaults to whether the stream shows on a terminal. */
  enabled?: boolean;
  /** Clock in ms, for tests. */
  now?: () => number;
  /** How often the bar's clock is redrawn during a long case (0: only on tick). */
  intervalMs?: number;
}

export interface Progress {
  /** A case starts; `label` names it. */
  tick(label: string): void;
  /** The sweep ended (or was cut short): clears the bar and prints the total time. */
  done(): void;
}

/** "42s", "3m05s", "1h02m". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const BAR_WIDTH = 20;

/**
 * Progress of a sweep on stderr with an ETA from the mean time of the cases finished so far
 * (cases differ in size, so it is rough until a few have run).
 */
export function createProgress(total: number, options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const terminal = terminalOf(stream);
  const redraw = options.enabled ?? terminal !== null;
  const now = options.now ?? (() => performance.now());
  const start = now();
  let started = 0;
  let label = '';
  let finished = false;
  let timer: ReturnType<typeof setInterval> | null = null;

  const eta = (): string | null => {
    const completed = started - 1;
    if (completed < 1 || completed >= total) return null;
    return formatDuration(((now() - start) / completed) * (total - completed));
  };

  const draw = () => {
    const completed = Math.min(started - 1, total);
    const filled = total > 0 ? Math.round((completed / total) * BAR_WIDTH) : BAR_WIDTH;
    const width = total > 0 ? String(total).length : 1;
    const e = eta();
    const head = `[${String(started).padStart(width)}/${total}] ${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)} ${formatDuration(now() - start)}${e ? `, ETA ${e}` : ''}  `;
    const room = Math.max(10, (terminal?.columns ?? stream.columns ?? 100) - head.length - 1);
    const text = label.length > room ? `${label.slice(0, room - 1)}…` : label;
    // \r plus erase-line redraws in place without leaving a tail of a longer previous line.
    stream.write(`\r\x1b[2K${head}${text}`);
  };

  return {
    tick(next: string) {
      if (finished) return;
      started = Math.min(started + 1, Math.max(total, 1));
      label = next;
      if (redraw) {
        draw();
        if (!timer && (options.intervalMs ?? 1000) > 0) {
          timer = setInterval(draw, options.intervalMs ?? 1000);
          // A progress display must never keep the process alive.
          timer.unref?.();
        }
      } else {
        const e = eta();
        stream.write(`[${started}/${total}] ${next}${e ? ` (${formatDuration(now() - start)} so far, ETA ${e})` : ''}\n`);
      }
    },
    done() {
      if (finished) return;
      finished = true;
      if (timer) clearInterval(timer);
      if (redraw && started > 0) stream.write('\r\x1b[2K');
      if (started > 0) stream.write(`${started} of ${total} case(s) in ${formatDuration(now() - start)}\n`);
    },
  };
}
