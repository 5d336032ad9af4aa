import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** Debian's chromium (`.ci/run` installs it); null where none is installed. */
export function findChromium(): string | null {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || null;
    } catch {
      // not this one
    }
  }
  return null;
}

const FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--virtual-time-budget=5000'];

function run(browser: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(browser, [...FLAGS, ...args], { timeout: 120_000, maxBuffer: 64 * 2 ** 20 }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
  );
}

export interface OverflowReport {
  clientWidth: number;
  scrollWidth: number;
  /** Elements whose right edge passes the window (outside SVGs), or their SVG's edge (inside). */
  overflowing: string[];
}

/**
 * Measures a page at a window size: the reports carry no script, so a copy gets one that lists
 * what sticks out on the right, and chromium's --dump-dom returns the page with that list.
 */
export async function measureOverflow(browser: string, htmlFile: string, width: number, height: number): Promise<OverflowReport> {
  const probe = `${htmlFile}.probe-${width}.html`;
  const script = `<script>addEventListener('load', () => {
  const w = document.documentElement.clientWidth;
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (typeof e.className === 'string' && e.className ? '.' + e.className.split(' ')[0] : '') + ' "' + (e.textContent || '').trim().slice(0, 40) + '"';
  const out = [];
  for (const e of document.querySelectorAll('body *')) {
    const svg = e.closest('svg');
    const limit = svg && svg !== e ? svg.getBoundingClientRect().right : w;
    if (e.getBoundingClientRect().right > limit + 1) out.push(name(e));
  }
  const pre = document.createElement('pre');
  pre.id = 'overflow-report';
  pre.textContent = JSON.stringify({ clientWidth: w, scrollWidth: document.documentElement.scrollWidth, overflowing: out.slice(0, 20) });
  document.body.append(pre);
});</script>`;
  writeFileSync(probe, readFileSync(htmlFile, 'utf8').replace('</body>', `${script}</body>`));
  const dom = await run(browser, [`--window-size=${width},${height}`, '--dump-dom', pathToFileURL(probe).href]);
  const match = /<pre id="overflow-report">([^<]*)<\/pre>/.exec(dom);
  if (!match) throw new Error(`no overflow report from ${browser} for ${htmlFile}`);
  return JSON.parse(match[1].replace(/&quot;/g, '"').replace(/&amp;/g, '&')) as OverflowReport;
}

export async function screenshot(browser: string, htmlFile: string, png: string, width: number, height: number): Promise<void> {
  const copy = `${htmlFile}.shot.html`;
  copyFileSync(htmlFile, copy);
  await run(browser, [`--window-size=${width},${height}`, `--screenshot=${png}`, pathToFileURL(copy).href]);
}
