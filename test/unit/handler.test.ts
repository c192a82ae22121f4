// The handler in process, without a front end: routing, HTTP semantics, errors and the
// cache, on pyramids made by sharp at test time.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { createServerCore, type ServerCore } from '../../src/server.js';
import { header, req } from '../support/requests.js';

let dir: string;
let core: ServerCore;

/** A pyramidal JPEG TIFF filled with one colour (recorded: sharp create → tiff pyramid). */
async function solidPyramid(file: string, colour: { r: number; g: number; b: number }): Promise<void> {
  await sharp({ create: { width: 1000, height: 600, channels: 3, background: colour } })
    .tiff({ tile: true, pyramid: true, compression: 'jpeg', tileWidth: 256, tileHeight: 256 })
    .toFile(file);
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-handler-'));
  await solidPyramid(path.join(dir, 'red.tif'), { r: 200, g: 20, b: 20 });
  fs.writeFileSync(path.join(dir, 'not-an-image.tif'), 'hello, I am text');
  const { config } = loadConfig({ FILESYSTEM_PREFIX: `${dir}/`, CORS: '*', URI_MAP: 'iiif=>IIIF' });
  core = await createServerCore(config, silentLogger);
});

afterAll(async () => {
  await core.clearCaches();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('handler', () => {
  it('answers an empty request with the home page (health check)', async () => {
    const res = await core.handler(req('/fcgi-bin/iipsrv.fcgi'));
    expect(res.status).toBe(200);
    expect(header(res, 'content-type')).toMatch(/text\/html/);
  });

  it('answers OPTIONS with 204, Allow and CORS, and other methods with 405', async () => {
    const opt = await core.handler(req('/iiif/red.tif/info.json', { method: 'OPTIONS' }));
    expect(opt.status).toBe(204);
    expect(header(opt, 'allow')).toBe('GET, HEAD, POST, OPTIONS');
    expect(header(opt, 'access-control-allow-origin')).toBe('*');
    const del = await core.handler(req('/iiif/red.tif/info.json', { method: 'DELETE' }));
    expect(del.status).toBe(405);
    expect(header(del, 'allow')).toContain('GET');
  });

  it('sets Content-Length on every response, and HEAD matches GET', async () => {
    for (const uri of [
      '/iiif/red.tif/info.json',
      '/iiif/red.tif/full/100,/0/default.jpg',
      '/iiif/missing.tif/info.json',
      '/iiif/red.tif',
    ]) {
      const get = await core.handler(req(uri));
      expect(header(get, 'content-length')).toBe(String(get.body.length));
      const head = await core.handler(req(uri, { method: 'HEAD' }));
      expect(head.status).toBe(get.status);
      expect(head.body.length).toBe(0);
      expect(header(head, 'content-length')).toBe(String(get.body.length));
    }
  });

  it('takes the request from a POST body when the query string is empty', async () => {
    const res = await core.handler(
      req('/fcgi-bin/iipsrv.fcgi', { method: 'POST', body: Buffer.from('IIIF=red.tif/full/50,/0/default.png') }),
    );
    expect(res.status).toBe(200);
    expect(header(res, 'content-type')).toBe('image/png');
    expect(header(res, 'content-disposition')).toMatch(/^attachment; filename="red_50x30\.png"$/);
  });

  it('answers unsupported files with 415 and no path', async () => {
    const res = await core.handler(req('/iiif/not-an-image.tif/info.json'));
    expect(res.status).toBe(415);
    expect(res.body.toString()).not.toContain(dir);
  });

  it('answers unknown commands with 400', async () => {
    const res = await core.handler(req('/fcgi-bin/iipsrv.fcgi?FOO=bar'));
    expect(res.status).toBe(400);
  });

  it('serves the cache, and never a stale tile after the file changes', async () => {
    const file = path.join(dir, 'changing.tif');
    await solidPyramid(file, { r: 0, g: 0, b: 255 });
    const uri = '/iiif/changing.tif/0,0,256,256/256,/0/default.png';
    const first = await core.handler(req(uri));
    const hits = core.handler.stats.cacheHits;
    const again = await core.handler(req(uri));
    expect(core.handler.stats.cacheHits).toBe(hits + 1);
    expect(again.body.equals(first.body)).toBe(true);
    const blue = await sharp(first.body).raw().toBuffer();
    expect(blue[0]).toBeLessThan(5);
    expect(blue[2]).toBeGreaterThan(245);

    await solidPyramid(file, { r: 0, g: 255, b: 0 });
    fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
    const changed = await core.handler(req(uri));
    const green = await sharp(changed.body).raw().toBuffer();
    expect(green[1]).toBeGreaterThan(240);
    expect(green[2]).toBeLessThan(10);
  });

  it('gives 304 for If-Modified-Since not older than the file, 200 for unparseable dates', async () => {
    const uri = '/iiif/red.tif/info.json';
    const get = await core.handler(req(uri));
    const lm = header(get, 'last-modified')!;
    const same = await core.handler(req(uri, { headers: { 'if-modified-since': lm } }));
    expect(same.status).toBe(304);
    expect(same.body.length).toBe(0);
    expect(header(same, 'last-modified')).toBe(lm);
    expect(header(same, 'access-control-allow-origin')).toBe('*');
    const garbage = await core.handler(req(uri, { headers: { 'if-modified-since': 'yesterday-ish' } }));
    expect(garbage.status).toBe(200);
    const old = await core.handler(req(uri, { headers: { 'if-modified-since': 'Mon, 01 Jan 2001 00:00:00 GMT' } }));
    expect(old.status).toBe(200);
  });

  it('sends the ETag, honours If-None-Match, and varies it by request', async () => {
    const a = await core.handler(req('/iiif/red.tif/full/100,/0/default.jpg'));
    const b = await core.handler(req('/iiif/red.tif/full/200,/0/default.jpg'));
    expect(header(a, 'etag')).toMatch(/^"[^"]+"$/);
    expect(header(a, 'etag')).not.toBe(header(b, 'etag'));
    const inm = await core.handler(req('/iiif/red.tif/full/100,/0/default.jpg', { headers: { 'if-none-match': header(a, 'etag')! } }));
    expect(inm.status).toBe(304);
  });

  it('marks a negotiated non-default IIIF version private', async () => {
    const res = await core.handler(
      req('/iiif/red.tif/info.json', {
        headers: { host: 'example.org', accept: 'application/ld+json;profile="http://iiif.io/api/image/2/context.json"' },
      }),
    );
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())['@id']).toBe('http://example.org/iiif/red.tif');
    expect(res.headers.filter(([k]) => k === 'Cache-Control')).toEqual([['Cache-Control', 'private']]);
    // Its 304 says so too.
    const again = await core.handler(
      req('/iiif/red.tif/info.json', {
        headers: {
          host: 'example.org',
          accept: 'application/ld+json;profile="http://iiif.io/api/image/2/context.json"',
          'if-none-match': header(res, 'etag')!,
        },
      }),
    );
    expect(again.status).toBe(304);
    expect(again.headers.filter(([k]) => k === 'Cache-Control')).toEqual([['Cache-Control', 'private']]);
  });

  it('changes the ETag of an image when the encoder settings change', async () => {
    const uri = '/iiif/red.tif/full/100,/0/default.jpg';
    const a = header(await core.handler(req(uri)), 'etag');
    const env = { FILESYSTEM_PREFIX: `${dir}/`, CORS: '*', URI_MAP: 'iiif=>IIIF', JPEG_QUALITY: '40' };
    const other = await createServerCore(loadConfig(env).config, silentLogger);
    const b = header(await other.handler(req(uri)), 'etag');
    await other.close();
    expect(a).not.toBe(b);
  });

  it('passes stored JPEG tiles through unchanged and counts it', async () => {
    const before = core.handler.stats.passthrough;
    const res = await core.handler(req('/iiif/red.tif/0,0,256,256/256,/0/default.jpg'));
    expect(res.status).toBe(200);
    expect(core.handler.stats.passthrough).toBe(before + 1);
    expect(res.body.subarray(0, 2).toString('hex')).toBe('ffd8');
    const meta = await sharp(res.body).metadata();
    expect([meta.width, meta.height]).toEqual([256, 256]);
  });
});
