import { ExitCode } from '../errors.js';
import type { BenchCase } from './schema.js';

/**
 * bench's exit code: a case that disagrees with float64 fails the command (exit 3) exactly as
 * verify does, whatever the gate said; otherwise the gate's verdict, or 0 without a gate.
 */
export function benchExitCode(cases: Pick<BenchCase, 'status'>[], gateExit: number | null): number {
  if (cases.some((c) => c.status === 'mismatch')) return ExitCode.checkFailed;
  return gateExit ?? ExitCode.ok;
}
