// The status page in a real browser (Debian's chromium driven by playwright-core): served by a running
// `sluice run`, it shows the inputs with their last values, the store against its cap, an output's
// backlog, and draws a chart. A screenshot is left in the temp directory for a person to look at.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteRing } from '../src/store/ring.js';
import { sluiceSpawn } from './helpers/cli.js';
import { eventually, freePort, getJson } from './helpers/http.js';
import { tmpDir } from './helpers/tmp.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('status page', () => {
  let browser: Browser;
  beforeAll(async () => {
    // Not skipped when missing: the page is part of the product, and CI installs chromium (.ci/run).
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('shows inputs, store use, an output backlog and a chart', async () => {
    const dir = tmpDir();
    const dataDir = join(dir, 'data');
    // An output's cursor, as the sync engine keeps one; with no upstream, all data is its backlog.
    const ring = SqliteRing.open({ dataDir, maxBytes: 64 * 1048576, whenFull: 'drop_oldest', commitIntervalMs: 200 });
    ring.registerOutput('region');
    ring.close();
    const port = await freePort();
    const cfg = join(dir, 'sluice.yaml');
    writeFileSync(
      cfg,
      `version: 1
agent: { id: gw-plant-a-07, data_dir: ${dataDir}, commit_interval: 200ms, tags: { site: plant-a } }
buffer: { max_size: 64MiB, when_full: drop_oldest }
inputs:
  boiler: { type: simulator, series: 3, interval: 200ms }
  climate: { type: simulator, series: 2, interval: 500ms }
http: { listen: "127.0.0.1:${port}" }
`,
    );
    const agent = sluiceSpawn(['run', '-c', cfg]);
    let stderr = '';
    agent.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const base = `http://127.0.0.1:${port}`;
      await eventually(async () => (await getJson<{ points: number }>(`${base}/api/status`)).body.points > 30, 20_000, `points stored (${stderr})`);
      const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      await page.goto(`${base}/`);

      await expect.poll(() => page.textContent('#health'), { timeout: 15_000 }).toContain('Healthy');
      await expect.poll(() => page.textContent('#agent')).toContain('gw-plant-a-07');
      // Inputs, with their latest values as chips.
      for (const id of ['boiler', 'climate']) {
        const row = page.locator(`tr[data-input="${id}"]`);
        await expect.poll(() => row.locator('.chip').count(), { timeout: 15_000 }).toBe(4);
        expect(await row.textContent()).toMatch(/temperature\s*\d+(\.\d+)?/);
      }
      // Store use against the cap.
      expect(await page.textContent('#store-used')).toMatch(/of 64\.0\s?MiB/);
      const meter = await page.$eval('#store-meter > i', (el) => (el as unknown as { style: { width: string } }).style.width);
      expect(Number.parseFloat(meter)).toBeGreaterThan(0);
      // The output's backlog.
      const output = page.locator('tr[data-output="region"]');
      await expect.poll(() => output.textContent()).toMatch(/\d+(\.\d+)?k? points/);
      // Charts: one per input measurement, each a line per series with real extent.
      await expect.poll(() => page.locator('.chart').count(), { timeout: 15_000 }).toBe(2);
      const chart = page.locator('.chart[data-measurement="boiler"]');
      await expect.poll(() => chart.locator('svg path').count(), { timeout: 15_000 }).toBe(3);
      // The page reloads series every 5 s; the line grows by a point a second (5 min over 300 points).
      await expect.poll(async () => ((await chart.locator('svg path').first().getAttribute('d')) ?? '').split('L').length, { timeout: 20_000 }).toBeGreaterThan(5);
      expect(await chart.locator('.legend').textContent()).toContain('s000');
      expect(await chart.locator('select').inputValue()).toBe('temperature');
      // Switching the field redraws.
      await chart.locator('select').selectOption('humidity');
      await expect.poll(() => chart.locator('svg path').count(), { timeout: 10_000 }).toBe(3);
      await chart.locator('select').selectOption('temperature');
      await expect.poll(() => chart.locator('svg path').count(), { timeout: 10_000 }).toBe(3);
      // Hovering shows the values under the cursor.
      const box = (await chart.locator('svg').boundingBox())!;
      await page.mouse.move(box.x + box.width - 30, box.y + box.height / 2);
      await expect.poll(() => page.locator('#tip').isVisible()).toBe(true);
      expect(await page.textContent('#tip')).toContain('temperature');
      await page.mouse.move(0, 0);

      const shotDir = mkdtempSync(join(tmpdir(), 'sluice-page-'));
      const shot = join(shotDir, 'status-page.png');
      await page.screenshot({ path: shot, fullPage: true });
      process.stderr.write(`status page screenshot: ${shot}\n`);
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      agent.kill('SIGTERM');
      await new Promise((r) => agent.once('exit', r));
    }
  });
});
