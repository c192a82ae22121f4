// Shared by the conf-examples tests: a small pyramidal TIFF in a folder every server user can
// read, and the checks that a web server built from an example really serves tiles.

import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { expect } from 'vitest';
import { makeSample } from '../../scripts/make-sample.js';
import { readableTempDir } from '../../scripts/servers.js';

export const SAMPLE_W = 1000;
export const SAMPLE_H = 800;

/** A folder with sample.tif, readable by any user (Apache runs iipsrv as www-data). */
export async function makeImageDir(): Promise<string> {
  const dir = readableTempDir('iipsrv-conf-img-');
  await makeSample(path.join(dir, 'sample.tif'), SAMPLE_W, SAMPLE_H);
  fs.chmodSync(path.join(dir, 'sample.tif'), 0o644);
  return dir;
}

/** A folder any user may write (for LOGFILE when the server runs iipsrv as another user). */
export function writableTempDir(prefix: string): string {
  const dir = readableTempDir(prefix);
  fs.chmodSync(dir, 0o1777);
  return dir;
}

async function get(url: string): Promise<Response> {
  // Bounded: a web server that hangs fails the test instead of stalling it.
  return fetch(url, { signal: AbortSignal.timeout(20_000) });
}

/** info.json, one tile (a JPEG of the right size) and the health answer through `base`. */
export async function expectServesTiles(base: string, script = '/fcgi-bin/iipsrv.fcgi'): Promise<void> {
  const info = await get(`${base}${script}?IIIF=/sample.tif/info.json`);
  const infoText = await info.text();
  expect(info.status, infoText).toBe(200);
  const json = JSON.parse(infoText);
  expect([json.width, json.height]).toEqual([SAMPLE_W, SAMPLE_H]);

  const tile = await get(`${base}${script}?IIIF=/sample.tif/256,256,256,256/256,/0/default.jpg`);
  expect(tile.status).toBe(200);
  expect(tile.headers.get('content-type')).toBe('image/jpeg');
  const meta = await sharp(Buffer.from(await tile.arrayBuffer())).metadata();
  expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 256, 256]);

  const health = await get(`${base}${script}?HEALTH`);
  expect(health.status).toBe(200);
  expect(await health.text()).toBe('ok\n');
}
