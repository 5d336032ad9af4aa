/**
 * Whether a stream shows on a terminal, and how wide it is. The CLI runs as a child whose stderr
 * is a pipe to the Dawn-warning filter (src/cli/dawn-stderr.ts); that pipe is never dressed up as
 * a TTY (oclif would ask it for its window size), so the parent passes its terminal's width in
 * MOEBLAZE_STDERR_COLUMNS, and this is where progress displays read it.
 */
export interface TerminalStream {
  isTTY?: boolean;
  columns?: number;
}

export function terminalOf(stream: TerminalStream, env: NodeJS.ProcessEnv = process.env): { columns: number } | null {
  if (stream.isTTY) return { columns: stream.columns || 80 };
  const columns = Number(env.MOEBLAZE_STDERR_COLUMNS);
  return stream === process.stderr && columns > 0 ? { columns } : null;
}
