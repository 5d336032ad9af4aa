import type { GateReport } from './compare.js';

export interface RetryOptions {
  /** Called before each round with the keys about to be re-measured. */
  onRound?: (round: number, keys: string[]) => void;
}

/**
 * The cases worth measuring again: those whose speed verdict is AMBG and those noisier than the
 * target. Memory is deterministic, so a memory verdict never causes a re-measurement.
 */
export function keysToRemeasure(report: GateReport): string[] {
  return [...new Set([...report.ambiguous, ...report.noisy])];
}

/**
 * Re-measures ambiguous or noisy cases up to `retries` times before the final verdict. `compare`
 * must read the current results afresh on every call (remeasure replaces cases in them); what is
 * still ambiguous after the last round stays AMBG, which never fails the gate.
 */
export async function gateWithRetries(
  compare: () => GateReport,
  remeasure: (keys: string[]) => Promise<void>,
  retries: number,
  options: RetryOptions = {},
): Promise<GateReport> {
  let report = compare();
  const rounds: string[][] = [];
  for (let round = 1; round <= retries; round++) {
    const keys = keysToRemeasure(report);
    if (keys.length === 0) break;
    options.onRound?.(round, keys);
    await remeasure(keys);
    rounds.push(keys);
    report = compare();
  }
  if (rounds.length === 0) return report;
  const total = new Set(rounds.flat()).size;
  return { ...report, remeasured: rounds, summary: `${report.summary}; re-measured ${total} case(s) in ${rounds.length} round(s)` };
}
