/**
 * The HTML report in a real browser (issue 5, deliverable 5): Debian's `chromium`, headless,
 * with every network feature off, loads report.html from disk and must show no console
 * error, fetch nothing (the report is self-contained), and draw every chart: each inline SVG
 * has a non-zero size and holds drawn data marks (vega's role-mark groups).
 *
 * The report is written from invented fixture runs of all five figures (experiments/fixtures.ts;
 * every panel kind appears, figure 11b's time series included): this tests the page, not a
 * measurement. Skipped, saying why, when chromium is not installed (.ci/run installs it).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { FIGURE_IDS } from '../../experiments/figures.js';
import { fixtureFigure } from '../fixtures.js';
import { appendRecord } from '../../experiments/sweep.js';
import { writeReport } from '../../plots/index.js';

function findChromium(): string | undefined {
  for (const path of ['/usr/bin/chromium', '/usr/bin/chromium-browser']) if (existsSync(path)) return path;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const CHROMIUM = findChromium();
const SKIP_REASON = 'skipped: chromium is not installed (apt-get install -y chromium; .ci/run does it)';
if (CHROMIUM === undefined) console.warn(`report-chromium.test.ts: ${SKIP_REASON}`);

const base = mkdtempSync(join(tmpdir(), 'poe-report-chromium-'));
let browser: Browser | undefined;
afterAll(async () => {
  await browser?.close();
  rmSync(base, { recursive: true, force: true });
});

interface ChartCheck {
  readonly index: number;
  readonly width: number;
  readonly height: number;
  readonly markGroups: number;
  readonly drawnMarks: number;
}

describe('report.html in headless Chromium', () => {
  it.skipIf(CHROMIUM === undefined)(
    `loads with no console error and draws every chart${CHROMIUM === undefined ? ` (${SKIP_REASON})` : ''}`,
    async () => {
      const dir = join(base, 'all');
      for (const id of FIGURE_IDS) for (const r of fixtureFigure(id, 3)) appendRecord(dir, r);
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ figure: 'all', profile: 'quick', backend: 'local', notes: ['TEST FIXTURE: invented runs.'] }));
      const report = await writeReport(dir);
      const svgFiles = report.charts.filter((c) => c.endsWith('.svg'));
      expect(svgFiles.length).toBeGreaterThanOrEqual(10);

      browser = await chromium.launch({
        executablePath: CHROMIUM!,
        headless: true,
        // Playwright gives the browser a fresh temporary profile (--user-data-dir) of its own.
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      const page = await browser.newPage();
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
      // Self-contained: nothing but the file itself may be fetched.
      await page.route('**/*', async (route) => {
        const url = route.request().url();
        if (url === pathToFileURL(report.html).href) return route.continue();
        requests.push(url);
        return route.abort();
      });
      await page.goto(pathToFileURL(report.html).href, { waitUntil: 'load' });

      const charts: ChartCheck[] = await page.evaluate(() =>
        [...document.querySelectorAll('svg.marks')].map((svg, index) => {
          const box = svg.getBoundingClientRect();
          const groups = [...svg.querySelectorAll('g[class*="role-mark"]')];
          let drawn = 0;
          for (const g of groups) {
            for (const el of g.querySelectorAll('path, line, rect, circle, text')) {
              const b = (el as SVGGraphicsElement).getBBox();
              if (b.width > 0 || b.height > 0) drawn++;
            }
          }
          return { index, width: box.width, height: box.height, markGroups: groups.length, drawnMarks: drawn };
        }),
      );
      const title = await page.title();

      expect(errors).toEqual([]);
      expect(requests).toEqual([]);
      expect(title).toContain('poe-bench report');
      // One inline chart per rendered panel, and each one drawn.
      expect(charts.length).toBe(svgFiles.length);
      for (const c of charts) {
        expect(c.width, `chart ${c.index}`).toBeGreaterThan(100);
        expect(c.height, `chart ${c.index}`).toBeGreaterThan(100);
        expect(c.markGroups, `chart ${c.index}`).toBeGreaterThan(0);
        expect(c.drawnMarks, `chart ${c.index}`).toBeGreaterThan(0);
      }
    },
    120_000,
  );
});
