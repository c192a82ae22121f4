// The walking skeleton end to end: nginx (fastcgi_pass, keep-alive on) in front of iipsrv
// on TCP and under spawn-fcgi, serving IIIF info.json and tiles from a pyramidal TIFF made
// at test time. Tiles are compared with the same region cut from the source by sharp.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { decodeSrgb as decode, meanAbsDiff, sourceRegion } from '../support/pixels.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSample } from '../../scripts/make-sample.js';
import { startIipsrv, startNginx, startUnderSpawnFcgi, type Running } from '../../scripts/servers.js';

let dir: string;
let source: Buffer; // full-resolution RGB pixels of the sample, 2000×1400
const W = 2000;
const H = 1400;

/** Reference: a region of the full-resolution source resized by sharp. */
const reference = (x: number, y: number, w: number, h: number, ow: number, oh: number): Promise<Buffer> =>
  sourceRegion({ data: source, width: W, height: H }, x, y, w, h, ow, oh);

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-it-'));
  // Recorded command: sharp(svg).resize(2000,1400).tiff({tile,pyramid,compression:'jpeg',256×256,q85})
  await makeSample(path.join(dir, 'sample.tif'), W, H);
  fs.mkdirSync(path.join(dir, 'sub dir'));
  fs.copyFileSync(path.join(dir, 'sample.tif'), path.join(dir, 'sub dir', 'a+b.tif'));
  fs.writeFileSync(path.join(os.tmpdir(), 'iipsrv-outside.tif'), fs.readFileSync(path.join(dir, 'sample.tif')));
  fs.symlinkSync(path.join(os.tmpdir(), 'iipsrv-outside.tif'), path.join(dir, 'escape.tif'));
  // Level 0 decoded by libvips itself is the reference the tiles are compared with.
  source = await sharp(path.join(dir, 'sample.tif'), { page: 0 }).raw().toBuffer();
}, 60_000);

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const ENV = (): Record<string, string> => ({
  FILESYSTEM_PREFIX: `${dir}/`,
  URI_MAP: 'iiif=>IIIF',
  CORS: '*',
  MAX_CVT: '3000',
});

describe.each([
  ['--bind on TCP', (env: Record<string, string>) => startIipsrv(env)],
  ['spawn-fcgi (socket on fd 0)', (env: Record<string, string>) => startUnderSpawnFcgi(env)],
])('IIIF through nginx to iipsrv %s', (_name, start) => {
  let backend: Running;
  let nginx: Awaited<ReturnType<typeof startNginx>>;
  let base: string;

  beforeAll(async () => {
    backend = await start(ENV());
    nginx = await startNginx([backend.port]);
    base = `http://127.0.0.1:${nginx.port}`;
  }, 30_000);

  afterAll(async () => {
    await nginx?.stop();
    await backend?.stop();
  });

  it('answers info.json through the query-string URL', async () => {
    const res = await fetch(`${base}/fcgi-bin/iipsrv.fcgi?IIIF=/sample.tif/info.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/ld+json;profile="http://iiif.io/api/image/3/context.json"');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('last-modified')).toBe(new Date(Math.floor(fs.statSync(path.join(dir, 'sample.tif')).mtimeMs)).toUTCString());
    const info = await res.json();
    expect(info.width).toBe(W);
    expect(info.height).toBe(H);
    expect(info.type).toBe('ImageService3');
    expect(info.tiles).toEqual([{ width: 256, height: 256, scaleFactors: [1, 2, 4, 8] }]);
    expect(info.sizes[0]).toEqual({ width: 250, height: 175 });
    expect(info.maxWidth).toBe(3000);
    expect(info.id).toBe(`http://127.0.0.1:${nginx.port}/fcgi-bin/iipsrv.fcgi?IIIF=/sample.tif`);
  });

  it('answers info.json through the URI_MAP path with an id built from the request', async () => {
    const res = await fetch(`${base}/iiif/sample.tif/info.json`);
    expect(res.status).toBe(200);
    expect((await res.json()).id).toBe(`http://127.0.0.1:${nginx.port}/iiif/sample.tif`);
  });

  it('redirects a bare identifier to its info.json', async () => {
    const res = await fetch(`${base}/iiif/sample.tif`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`http://127.0.0.1:${nginx.port}/iiif/sample.tif/info.json`);
  });

  it.each([
    // [region, size, x, y, w, h, outW, outH]
    ['0,0,256,256', '256,', 0, 0, 256, 256, 256, 256],
    ['256,512,256,256', '256,256', 256, 512, 256, 256, 256, 256],
    ['0,0,512,512', '256,', 0, 0, 512, 512, 256, 256],
    ['1792,1280,208,120', '208,', 1792, 1280, 208, 120, 208, 120],
    ['1024,1024,976,376', '244,', 1024, 1024, 976, 376, 244, 94],
  ])('serves tile %s/%s equal to the source region', async (region, size, x, y, w, h, ow, oh) => {
    const res = await fetch(`${base}/iiif/sample.tif/${region}/${size}/0/default.jpg`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    const body = Buffer.from(await res.arrayBuffer());
    expect(res.headers.get('content-length')).toBe(String(body.length));
    const img = await decode(body);
    expect([img.width, img.height]).toEqual([ow, oh]);
    const diff = await meanAbsDiff(img.data, await reference(x, y, w, h, ow, oh));
    // JPEG at the source (q85) and again on output (q75) plus resampling at lower levels.
    expect(diff).toBeLessThan(ow === w ? 3 : 6);
  });

  it('serves regions with size, rotation, mirroring, quality and format', async () => {
    const res = await fetch(`${base}/iiif/sample.tif/pct:10,10,50,50/!400,400/90/gray.png`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(res.headers.get('content-disposition')).toMatch(/^inline; filename="sample_400x280\.png"$/);
    const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
    expect([meta.width, meta.height]).toEqual([280, 400]);
    expect(meta.channels).toBeLessThanOrEqual(2);

    const full = await fetch(`${base}/iiif/sample.tif/full/max/0/default.webp`);
    expect(full.status).toBe(200);
    const fm = await sharp(Buffer.from(await full.arrayBuffer())).metadata();
    expect([fm.format, fm.width, fm.height]).toEqual(['webp', 2000, 1400]);

    const mirrored = await fetch(`${base}/iiif/sample.tif/0,0,200,100/max/!0/default.png`);
    const m = await decode(Buffer.from(await mirrored.arrayBuffer()));
    const ref = await sharp(await reference(0, 0, 200, 100, 200, 100), { raw: { width: 200, height: 100, channels: 3 } })
      .flop()
      .raw()
      .toBuffer();
    expect(await meanAbsDiff(m.data, ref)).toBeLessThan(3);
  });

  it('answers HEAD with the GET headers and no body, and 304 for an unchanged file', async () => {
    const url = `${base}/iiif/sample.tif/0,0,256,256/256,/0/default.jpg`;
    const get = await fetch(url);
    const len = get.headers.get('content-length');
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(len);
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    const since = await fetch(url, { headers: { 'If-Modified-Since': get.headers.get('last-modified')! } });
    expect(since.status).toBe(304);
    const later = await fetch(url, { headers: { 'If-Modified-Since': new Date(Date.now() + 3600_000).toUTCString() } });
    expect(later.status).toBe(304);
    const earlier = await fetch(url, { headers: { 'If-Modified-Since': 'Thu, 01 Jan 1970 00:00:00 GMT' } });
    expect(earlier.status).toBe(200);
    const etag = get.headers.get('etag')!;
    expect((await fetch(url, { headers: { 'If-None-Match': etag } })).status).toBe(304);
    expect(get.headers.get('cache-control')).toBe('max-age=86400');
  });

  it('answers the CORS preflight', async () => {
    const res = await fetch(`${base}/iiif/sample.tif/info.json`, { method: 'OPTIONS' });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('allow')).toContain('GET');
  });

  it.each([
    // nginx itself answers 400 to a path that climbs above its root once decoded.
    ['/iiif/..%2F..%2Fetc%2Fpasswd/info.json', [400, 403, 404]],
    ['/iiif/%2e%2e%2fescape.tif/info.json', [403, 404]],
    ['/iiif/%252e%252e%252fiipsrv-outside.tif/info.json', [403, 404]],
    ['/iiif/escape.tif/info.json', [403]],
    ['/iiif/missing.tif/info.json', [404]],
    ['/fcgi-bin/iipsrv.fcgi?IIIF=../../../../etc/passwd/info.json', [403]],
  ])('refuses %s without leaking a path', async (url, statuses) => {
    const res = await fetch(`${base}${url}`);
    expect(statuses).toContain(res.status);
    const body = await res.text();
    expect(body).not.toContain(dir);
    expect(body).not.toContain(os.tmpdir());
    expect(body).not.toMatch(/at .*\.js:\d+/);
  });

  it('serves identifiers with encoded slashes and a literal plus', async () => {
    const res = await fetch(`${base}/iiif/sub%20dir%2Fa+b.tif/info.json`);
    expect(res.status).toBe(200);
    expect((await res.json()).width).toBe(W);
  });

  it('gives IIIF errors the right status codes', async () => {
    expect((await fetch(`${base}/iiif/sample.tif/0,0,0,10/max/0/default.jpg`)).status).toBe(400);
    // any angle from 0 to 360 is served (rotationArbitrary); beyond that is a 400
    expect((await fetch(`${base}/iiif/sample.tif/full/max/450/default.jpg`)).status).toBe(400);
    expect((await fetch(`${base}/iiif/sample.tif/full/max/0/sepia.jpg`)).status).toBe(400);
    expect((await fetch(`${base}/iiif/sample.tif/full/max/0/default.gif`)).status).toBe(400);
    expect((await fetch(`${base}/iiif/sample.tif/full/4000,/0/default.jpg`)).status).toBe(400);
    expect((await fetch(`${base}/iiif/sample.tif/5000,0,10,10/max/0/default.jpg`)).status).toBe(400);
  });

  it('serves many tiles over kept-alive connections without errors', async () => {
    const urls: string[] = [];
    for (let r = 0; r < 6; r++) {
      for (let c = 0; c < 8; c++) {
        const w = Math.min(256, W - c * 256);
        const h = Math.min(256, H - r * 256);
        urls.push(`${base}/iiif/sample.tif/${c * 256},${r * 256},${w},${h}/${w},/0/default.jpg`);
      }
    }
    const results = await Promise.all(urls.map((u) => fetch(u).then(async (r) => [r.status, (await r.arrayBuffer()).byteLength] as const)));
    for (const [status, len] of results) {
      expect(status).toBe(200);
      expect(len).toBeGreaterThan(100);
    }
    const log = fs.readFileSync(path.join(nginx.dir, 'error.log'), 'utf8');
    expect(log).not.toMatch(/Connection reset by peer|upstream prematurely closed/);
  });
});
