import { join } from 'node:path';
import { writeFileAtomic } from '../fs.js';
import { renderBenchmarkAction } from '../render/bench-action.js';
import { renderBenchHtml } from '../render/bench-html.js';
import { renderBenchMarkdown } from '../render/bench-markdown.js';
import type { BenchResults } from './schema.js';

/** The three reports beside results.json, each written atomically. */
export async function writeBenchReports(dir: string, results: BenchResults): Promise<void> {
  await writeFileAtomic(join(dir, 'results.md'), renderBenchMarkdown(results));
  await writeFileAtomic(join(dir, 'report.html'), renderBenchHtml(results));
  await writeFileAtomic(join(dir, 'benchmark-action.json'), `${JSON.stringify(renderBenchmarkAction(results), null, 2)}\n`);
}
