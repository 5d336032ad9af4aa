import { UsageError } from './errors.js';
import type { Strategy } from './strategy/contract.js';
import { zeroBuffer } from './zero-buffer/zero-buffer.js';
import { tutel } from '../baselines/capacity/tutel.js';
import { gshard } from '../baselines/capacity/gshard.js';
import { megablocks } from '../baselines/megablocks/megablocks.js';
import { megablocksGrouped } from '../baselines/megablocks/megablocks-grouped.js';
import { scatterMoE } from '../baselines/scattermoe/scattermoe.js';

/**
 * Every strategy the tool knows, in report order. To add one, implement `Strategy`
 * (src/strategy/contract.ts) and append it here; commands list and run whatever is registered.
 */
export const STRATEGIES: Strategy[] = [zeroBuffer, megablocks, megablocksGrouped, scatterMoE, tutel, gshard];

/**
 * The strategy every other one is compared with (relative memory and time in bench, the gate's
 * relative speed, the default of --impl): the one this tool exists to measure.
 */
export const REFERENCE_STRATEGY = zeroBuffer.id;

export function strategyIds(): string[] {
  return STRATEGIES.map((s) => s.id);
}

export function findStrategy(id: string): Strategy {
  const strategy = STRATEGIES.find((s) => s.id === id);
  if (!strategy) throw new UsageError(`--impl: "${id}" is unknown; use one of ${strategyIds().join(', ')}`);
  return strategy;
}

export function registerStrategy(strategy: Strategy): void {
  if (STRATEGIES.some((s) => s.id === strategy.id)) throw new Error(`a strategy "${strategy.id}" is already registered`);
  STRATEGIES.push(strategy);
}
