import { join } from 'node:path';
import { writeFileAtomic } from '../fs.js';
import { renderBenchmarkAction } from './bench-action.js';
import { renderBenchHtml } from './bench-html.js';
import { renderBenchMarkdown } from './bench-markdown.js';
import type { BenchResults } from '../bench/schema.js';

/** The three reports beside results.json, each written atomically. */
export async function writeBenchReports(dir: string, results: BenchResults): Promise<void> {
  await writeFileAtomic(join(dir, 'results.md'), renderBenchMarkdown(results));
  await writeFileAtomic(join(dir, 'report.html'), renderBenchHtml(results));
  await writeFileAtomic(join(dir, 'benchmark-action.json'), `${JSON.stringify(renderBenchmarkAction(results), null, 2)}\n`);
}
