/** The four figures of DESIGN.md §4 that a strategy's buffer table must predict to the byte. */
export function memoryFigures(m: { baseline: number; stepPeak: number; activationPeak: number; savedForBackward: number | null }) {
  return { baseline: m.baseline, stepPeak: m.stepPeak, activationPeak: m.activationPeak, savedForBackward: m.savedForBackward };
}
