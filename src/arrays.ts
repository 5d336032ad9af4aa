/*
 * Largest and smallest of a list without spreading it into arguments: Math.max(...xs) throws
 * "Maximum call stack size exceeded" once xs has ~10⁵ elements (an expert-load array of a
 * 130000-expert plan), and these lists grow with the shapes users give.
 */

export function maxOf(values: ArrayLike<number>, empty = -Infinity): number {
  let max = empty;
  for (let i = 0; i < values.length; i++) if (values[i] > max || Number.isNaN(values[i])) max = values[i];
  return values.length === 0 ? empty : max;
}

export function minOf(values: ArrayLike<number>, empty = Infinity): number {
  let min = empty;
  for (let i = 0; i < values.length; i++) if (values[i] < min || Number.isNaN(values[i])) min = values[i];
  return values.length === 0 ? empty : min;
}
