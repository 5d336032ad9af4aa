import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layerConfig } from '../../src/config.js';
import { profileStrategies } from '../../src/measure/profile.js';
import { renderBenchHtml } from '../../src/render/bench-html.js';
import { renderProfileHtml } from '../../src/render/profile-html.js';
import { renderTrainHtml } from '../../src/render/train.js';
import { DEFAULT_TRAIN } from '../../src/train/model.js';
import type { StrategyTraining, TrainResult } from '../../src/train/run.js';
import { benchFixture } from '../helpers/bench-fixture.js';
import { findChromium, measureOverflow } from '../helpers/browser.js';
import { testGpu } from '../helpers/gpu.js';

const browser = findChromium();
if (!browser) console.warn('screenshot test skipped: no chromium on PATH (`apt-get install -y chromium`; .ci/run installs it)');

function trainRun(strategy: string, scale: number): StrategyTraining {
  const steps = Array.from({ length: 200 }, (_, step) => {
    const loss = 2.8 * Math.exp(-step / 40) * scale + 0.1 + 0.02 * Math.sin(step);
    return { step, loss, mse: loss, aux: 0, ms: 5, peakBytes: 383_000, stepPeakBytes: 383_000, tablePeakBytes: 383_000, pairs: 1024, droppedPairs: 0 };
  });
  return { strategy, steps, firstLoss: steps[0].loss, finalLoss: steps.at(-1)!.loss, reduction: 20, tokensPerSecond: 4500, peakBytes: 383_000, peakByTag: { weights: 26_000 }, expertLoads: [60, 70, 66, 60], expertLoadsByLayer: [[60, 70, 66, 60]], wallSeconds: 7 };
}

/** The three pages a user opens, from fixtures and one small profile on the test adapter. */
async function pages(dir: string): Promise<Record<string, string>> {
  const bench = benchFixture();
  const train: TrainResult = { config: { ...DEFAULT_TRAIN, capacityFactor: 1 }, lossScale: 1, runs: [trainRun('zero-buffer', 1), trainRun('megablocks', 1), trainRun('tutel', 1.15)] };
  const profile = await profileStrategies(await testGpu(), layerConfig({ tokens: 64, hidden: 16, ffn: 32, experts: 4, topK: 2 }), ['zero-buffer', 'megablocks', 'gshard']);
  const files = { 'report.html': renderBenchHtml(bench), 'train.html': renderTrainHtml(train), 'profile.html': renderProfileHtml(profile) };
  return Object.fromEntries(
    Object.entries(files).map(([name, html]) => {
      const path = join(dir, name);
      writeFileSync(path, html);
      return [name, path];
    }),
  );
}

describe.skipIf(!browser)('pages in a headless browser (chromium)', () => {
  let files: Record<string, string>;
  beforeAll(async () => {
    files = await pages(mkdtempSync(join(tmpdir(), 'moeblaze-pages-')));
  }, 120_000);
  afterAll(async () => (await testGpu()).destroy());

  for (const width of [1400, 1000]) {
    it(`report.html, train.html and the profile page fit ${width}×900: nothing sticks out on the right`, async () => {
      const reports = await Promise.all(Object.entries(files).map(async ([name, path]) => [name, await measureOverflow(browser!, path, width, 900)] as const));
      for (const [name, r] of reports) {
        expect(r.overflowing, `${name} at ${width}px`).toEqual([]);
        expect(r.scrollWidth, `${name} at ${width}px`).toBeLessThanOrEqual(r.clientWidth);
      }
    }, 240_000);
  }
});
