// The demo viewer in headless Chromium (Debian's, driven by playwright-core): the page opens
// the sample through each tile source (IIIF, DeepZoom, Zoomify, IIP); every tile request is
// answered 200 and the screenshot shows the image: not blank and not an error tile.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSample } from '../../scripts/make-sample.js';
import { childEnv, CLI, freePort, requireTool, waitForPort } from '../../scripts/servers.js';

let dir: string;
let proc: ChildProcess;
let base: string;
let browser: Browser;

beforeAll(async () => {
  const executablePath = requireTool('chromium', ['/usr/bin/chromium']);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-viewer-'));
  await makeSample(path.join(dir, 'images', 'sample.tif'), 3000, 2000);
  const port = await freePort();
  proc = spawn(process.execPath, [CLI, '--http', `127.0.0.1:${port}`], {
    env: childEnv({ FILESYSTEM_PREFIX: `${dir}/images/` }),
    stdio: 'ignore',
  });
  await waitForPort(port);
  base = `http://127.0.0.1:${port}`;
  browser = await chromium.launch({
    executablePath,
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
}, 120_000);

afterAll(async () => {
  await browser?.close();
  proc?.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Mean and standard deviation of the viewer area's luminance in a screenshot. */
async function viewerStats(png: Buffer): Promise<{ mean: number; stdev: number }> {
  const { width, height } = await sharp(png).metadata();
  // The viewer sits below the 40 px header and left of the 300 px info panel.
  const area = await sharp(png)
    .extract({ left: 0, top: 60, width: width! - 320, height: height! - 80 })
    .greyscale()
    .stats();
  return { mean: area.channels[0].mean, stdev: area.channels[0].stdev };
}

describe('viewer page in Chromium', () => {
  it.each(['iiif', 'deepzoom', 'zoomify', 'iip'])(
    'shows the image through the %s tile source',
    async (protocol) => {
      const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
      const tileStatuses: number[] = [];
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      page.on('response', (r) => {
        const u = r.url();
        if (/default\.jpg|DeepZoom=.*_files|TileGroup|JTL=/.test(u)) tileStatuses.push(r.status());
      });
      try {
        await page.goto(`${base}/#image=sample.tif&protocol=${protocol}`);
        await page
          .waitForFunction(
            (p) => {
              const s = (window as unknown as { tileStats?: { loaded: number; protocol: string } }).tileStats;
              return s !== undefined && s.protocol === p && s.loaded >= 4;
            },
            protocol,
            { timeout: 20_000 },
          )
          .catch((err: Error) => {
            throw new Error(`${err.message}; page errors: ${pageErrors.join('; ')}; tiles: ${tileStatuses.join(',')}`);
          });
        // Let the first zoom level finish drawing.
        await page.waitForTimeout(1500);
        const stats = await page.evaluate(() => (window as unknown as { tileStats: { failed: number; loaded: number } }).tileStats);
        expect(stats.failed).toBe(0);
        expect(tileStatuses.length).toBeGreaterThanOrEqual(4);
        expect(tileStatuses.every((s) => s === 200)).toBe(true);
        const shot = await page.screenshot();
        fs.writeFileSync(path.join(os.tmpdir(), `iipsrv-viewer-${protocol}.png`), shot);
        const { mean, stdev } = await viewerStats(shot);
        // The sample is a gradient with circles and a grid: far from uniform black or white.
        expect(mean).toBeGreaterThan(30);
        expect(mean).toBeLessThan(230);
        expect(stdev).toBeGreaterThan(15);
        expect(await page.textContent('#status')).toBe('');
        expect(pageErrors).toEqual([]);
      } finally {
        await page.close();
      }
    },
    60_000,
  );
});
