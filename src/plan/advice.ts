import type { Strategy } from '../strategy/contract.js';
import { planModel, type PlanOptions } from './model.js';

/** One flag change that makes a strategy fit at the planned T, with the peak it would have. */
export interface FitChange {
  /** The flag as the user would type it, e.g. "--dtype bf16". */
  flag: string;
  peak: number;
}

export interface FitAdvice {
  strategy: string;
  /** Changes that each fit on their own, the cheapest kinds first; empty: none of them does. */
  changes: FitChange[];
}

/**
 * For every strategy that does not fit --memory at the planned T, the single changes of the
 * run's other settings that would make it fit: a narrower dtype, a lighter optimizer, fewer
 * layers (the most that fit), or more GPUs for the experts (the fewest that fit). Only changes
 * away from what the flags already say are tried, so the advice never repeats a setting.
 */
export function adviseFits(o: PlanOptions, strategies: readonly Strategy[]): FitAdvice[] {
  if (o.memory === null) return [];
  const out: FitAdvice[] = [];
  for (const strategy of strategies) {
    const fitsWith = (change: Partial<PlanOptions>) => {
      const plan = planModel({ ...o, ...change, strategies: [strategy] }).strategies[0];
      return plan.fits ? plan.estimate.total : null;
    };
    if (fitsWith({}) !== null) continue;
    const changes: FitChange[] = [];
    const tryChange = (flag: string, change: Partial<PlanOptions>) => {
      const peak = fitsWith(change);
      if (peak !== null) changes.push({ flag, peak });
      return peak !== null;
    };
    // bf16 stands for both 16-bit types: the tables are the same, and it is what training uses.
    if (o.dtype === 'f32') tryChange('--dtype bf16', { dtype: 'bf16' });
    if (o.optimizer === 'adam') tryChange('--optimizer sgd', { optimizer: 'sgd' }) || tryChange('--optimizer none', { optimizer: 'none' });
    else if (o.optimizer === 'sgd') tryChange('--optimizer none', { optimizer: 'none' });
    if (o.layers > 1 && fitsWith({ layers: 1 }) !== null) {
      let lo = 1;
      let hi = o.layers - 1;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (fitsWith({ layers: mid }) !== null) lo = mid;
        else hi = mid - 1;
      }
      tryChange(`--layers ${lo}`, { layers: lo });
    }
    const E = o.config.experts;
    for (let n = o.expertParallel + 1; n <= E; n++) if (E % n === 0 && tryChange(`--expert-parallel ${n}`, { expertParallel: n })) break;
    out.push({ strategy: strategy.id, changes });
  }
  return out;
}
