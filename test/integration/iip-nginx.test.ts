// IIP, Zoomify and DeepZoom end to end: nginx (conf-examples/nginx.conf, fastcgi_pass with
// keep-alive) in front of iipsrv on TCP, on the spec's example pyramid (2000×1400, 256×256
// tiles, four levels) made at test time. Bodies are asserted byte for byte where iipsrv's are
// exact (OBJ, errors, .dzi, ImageProperties.xml, TIL framing); tiles and regions are compared
// with the same region of the source decoded by sharp.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { decodeSrgb as decode, meanAbsDiff } from '../support/pixels.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSample } from '../../scripts/make-sample.js';
import { startIipsrv, startNginx, type Running } from '../../scripts/servers.js';

const W = 2000;
const H = 1400;
let dir: string;
let source: Buffer;
/** The pyramid's levels as libvips decodes them (page 0 = full resolution). */
let levels: Array<{ data: Buffer; width: number; height: number }>;
let backend: Running;
let nginx: Awaited<ReturnType<typeof startNginx>>;
let fcgi: string;

/**
 * The source region resized by sharp: what a tile or region response should look like. Scaled
 * outputs are cut from the pyramid level the server reads (the smallest one with enough
 * pixels), so that the comparison measures geometry rather than two resampling kernels.
 */
async function reference(x: number, y: number, w: number, h: number, ow = w, oh = h): Promise<Buffer> {
  let page = 0;
  while (page < levels.length - 1 && (w >> (page + 1)) + 1 >= ow && (h >> (page + 1)) + 1 >= oh) page++;
  const f = 2 ** page;
  const [lw, lh] = [levels[page].width, levels[page].height];
  const left = Math.floor(x / f);
  const top = Math.floor(y / f);
  return (
    sharp(levels[page].data, { raw: { width: lw, height: lh, channels: 3 } })
      .extract({ left, top, width: Math.min(lw - left, Math.ceil(w / f)), height: Math.min(lh - top, Math.ceil(h / f)) })
      // INTERPOLATION=1 (the default): bilinear, as the server resamples.
      .resize(ow, oh, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer()
  );
}

async function fetchBytes(query: string, init?: RequestInit): Promise<{ res: Response; body: Buffer }> {
  const res = await fetch(`${fcgi}?${query}`, init);
  return { res, body: Buffer.from(await res.arrayBuffer()) };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-iip-it-'));
  // Recorded command: sharp(svg).resize(2000,1400).tiff({tile,pyramid,compression:'jpeg',256×256,q85})
  await makeSample(path.join(dir, 'sample.tif'), W, H);
  source = await sharp(path.join(dir, 'sample.tif'), { page: 0 }).raw().toBuffer();
  levels = [];
  for (let page = 0; page < 4; page++) {
    const { data, info } = await sharp(path.join(dir, 'sample.tif'), { page }).raw().toBuffer({ resolveWithObject: true });
    levels.push({ data, width: info.width, height: info.height });
  }
  expect(levels.map((l) => [l.width, l.height])).toEqual([
    [2000, 1400],
    [1000, 700],
    [500, 350],
    [250, 175],
  ]);
  backend = await startIipsrv({ FILESYSTEM_PREFIX: `${dir}/`, CORS: '*', MAX_CVT: '3000' });
  nginx = await startNginx([backend.port]);
  fcgi = `http://127.0.0.1:${nginx.port}/fcgi-bin/iipsrv.fcgi`;
}, 60_000);

afterAll(async () => {
  await nginx?.stop();
  await backend?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('IIP through nginx', () => {
  it("answers OpenSeadragon's IIPTileSource OBJ request byte for byte with the IIP header", async () => {
    const { res, body } = await fetchBytes('FIF=sample.tif&OBJ=IIP,1.0&OBJ=Max-size&OBJ=Tile-size&OBJ=Resolution-number&OBJ=Resolutions');
    expect(res.status).toBe(200);
    expect(body.toString('latin1')).toBe(
      'Max-size:2000 1400\r\nTile-size:256 256\r\nResolution-number:4\r\nResolutions:250 175,500 350,1000 700,2000 1400\r\n',
    );
    expect(res.headers.get('content-type')).toBe('application/vnd.netfpx');
    expect(res.headers.get('iip')).toBe('1.3');
    expect(res.headers.get('cache-control')).toBe('max-age=86400');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('last-modified')).toBe(new Date(Math.floor(fs.statSync(path.join(dir, 'sample.tif')).mtimeMs)).toUTCString());
  });

  it('answers the other OBJ lines (lower-case obj= as OpenSeadragon sends it)', async () => {
    const { body } = await fetchBytes(
      'FIF=sample.tif&obj=IIP-server&obj=Bits-per-channel&obj=Min-Max-sample-values&obj=Colorspace&obj=Horizontal-views&obj=Vertical-views',
    );
    expect(body.toString('latin1')).toBe(
      'IIP-server:3.65\r\nBits-per-channel:8\r\nMin-Max-sample-values: 0  255  0  255  0  255\r\nColorspace,0-3,0:0 0 3 3 0 1 2\r\n' +
        'Horizontal-views:0\r\nVertical-views:90\r\n',
    );
  });

  it.each([
    // [JTL, x, y, w, h at full resolution, out w, out h]
    ['3,0', 0, 0, 256, 256, 256, 256],
    ['3,9', 256, 256, 256, 256, 256, 256],
    // Last column and row are cropped: 2000 − 7·256 = 208, 1400 − 5·256 = 120.
    ['3,47', 1792, 1280, 208, 120, 208, 120],
    // Resolution 2 (1000×700): tile 5 = (1,1) covers full-resolution 512..1024.
    ['2,5', 512, 512, 512, 512, 256, 256],
    // Resolution 0 (250×175): one tile, the whole image.
    ['0,0', 0, 0, W, H, 250, 175],
  ])('serves JTL=%s equal to the source region', async (jtl, x, y, w, h, ow, oh) => {
    const { res, body } = await fetchBytes(`FIF=sample.tif&JTL=${jtl}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(res.headers.get('content-length')).toBe(String(body.length));
    expect(res.headers.get('content-disposition')).toBeNull();
    const img = await decode(body);
    expect([img.width, img.height]).toEqual([ow, oh]);
    expect(meanAbsDiff(img.data, await reference(x, y, w, h, ow, oh))).toBeLessThan(ow === w ? 3 : 6);
  });

  it('serves PTL as PNG and applies QLT wherever it is placed', async () => {
    const png = await fetchBytes('FIF=sample.tif&PTL=3,0');
    expect((await decode(png.body)).format).toBe('png');
    const plain = await fetchBytes('FIF=sample.tif&JTL=3,9');
    const after = await fetchBytes('FIF=sample.tif&JTL=3,9&QLT=5');
    const before = await fetchBytes('FIF=sample.tif&QLT=5&JTL=3,9');
    expect(after.body.length).toBeLessThan(plain.body.length / 2);
    expect(after.body.equals(before.body)).toBe(true);
    // Still the same picture, only coarser.
    expect(meanAbsDiff((await decode(after.body)).data, await reference(256, 256, 256, 256))).toBeLessThan(12);
  });

  it.each([
    ['WID=300&HEI=300&CVT=jpeg', 0, 0, W, H, 300, 210, 'sample_300x210.jpg'],
    ['WID=500&CVT=png', 0, 0, W, H, 500, 350, 'sample_500x350.png'],
    ['HEI=140&CVT=webp', 0, 0, W, H, 200, 140, 'sample_200x140.webp'],
    // RGN without WID/HEI: the region at its own full-resolution size, not the image's.
    ['RGN=0.5,0.5,0.25,0.25&CVT=jpeg', 1000, 700, 500, 350, 500, 350, 'sample_500x350.jpg'],
    ['RGN=0.1,0.2,0.5,0.5&WID=400&CVT=jpeg', 200, 280, 1000, 700, 400, 280, 'sample_400x280.jpg'],
    // MAX_CVT=3000 clamps, keeping the proportions.
    ['WID=6000&CVT=jpeg', 0, 0, W, H, 3000, 2100, 'sample_3000x2100.jpg'],
  ])('CVT %s', async (query, x, y, w, h, ow, oh, filename) => {
    const { res, body } = await fetchBytes(`FIF=sample.tif&${query}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toBe(`inline; filename="${filename}"`);
    const img = await decode(body);
    expect([img.width, img.height]).toEqual([ow, oh]);
    expect(meanAbsDiff(img.data, await reference(x, y, w, h, ow, oh))).toBeLessThan(ow > w ? 8 : 6);
  });

  it('takes a POST body as the request', async () => {
    const { res, body } = await fetchBytes('', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'FIF=sample.tif&OBJ=Max-size',
    });
    expect([res.status, body.toString('latin1')]).toEqual([200, 'Max-size:2000 1400\r\n']);
  });

  it('sends TIL tiles in FlashPix framing, column-major, each the same as JTL', async () => {
    const { res, body } = await fetchBytes('FIF=sample.tif&TIL=1,0-3');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/vnd.netfpx');
    const tiles: Array<{ n: number; jpeg: Buffer }> = [];
    let at = 0;
    while (at < body.length) {
      const colon = body.indexOf(':', at);
      const m = /^Tile,1,(\d+),0\/(\d+)$/.exec(body.toString('latin1', at, colon));
      expect(m).not.toBeNull();
      const len = Number(m![2]);
      expect([...body.subarray(colon + 1, colon + 9)]).toEqual([0x02, 0, 0, 0, 0, 0x11, 0, 0]);
      const jpeg = body.subarray(colon + 9, colon + 1 + len);
      expect([jpeg[0], jpeg[1]]).toEqual([0xff, 0xd8]);
      expect(body.toString('latin1', colon + 1 + len, colon + 3 + len)).toBe('\r\n');
      tiles.push({ n: Number(m![1]), jpeg });
      at = colon + 3 + len;
    }
    // Resolution 1 is 500×350: 2×2 tiles, sent x outer: 0, 2, 1, 3.
    expect(tiles.map((t) => t.n)).toEqual([0, 2, 1, 3]);
    for (const t of tiles) expect(t.jpeg.equals((await fetchBytes(`FIF=sample.tif&JTL=1,${t.n}`)).body)).toBe(true);
  });

  it('answers PFL with the raw samples of the line', async () => {
    const { res, body } = await fetchBytes('FIF=sample.tif&PFL=3:10,20-14,20');
    expect(res.headers.get('content-type')).toBe('application/json');
    const profile: number[] = JSON.parse(body.toString()).profile;
    expect(profile).toHaveLength(12);
    const ref = [...source.subarray((20 * W + 10) * 3, (20 * W + 14) * 3)];
    // The decoder reads the stored JPEG tile as libvips does: the same samples.
    expect(meanAbsDiff(Buffer.from(profile), Buffer.from(ref))).toBeLessThan(1);
  });

  it.each([
    ['FIF=sample.tif&XYZ=1', 400, 'Error/7:2 2 XYZ\r\n'],
    ['FIF=sample.tif&OBJ=Bogus', 400, 'Error/9:3 2 bogus\r\n'],
    ['OBJ=Max-size', 400, 'Error/12:1 3 max-size\r\n'],
    ['FIF=sample.tif', 400, 'Error/18:2 1 FIF=sample.tif\r\n'],
    // Invalid resolution and tile: 400 (iipsrv sent an HTML page with 200, or 404).
    ['FIF=sample.tif&JTL=4,0', 400, 'Error/26:2 1 FIF=sample.tif&JTL=4,0\r\n'],
    ['FIF=sample.tif&JTL=3,48', 400, 'Error/27:2 1 FIF=sample.tif&JTL=3,48\r\n'],
  ])('%s → %d %j', async (query, status, expected) => {
    const { res, body } = await fetchBytes(query);
    expect(res.status).toBe(status);
    expect(body.toString('latin1')).toBe(expected);
    expect(res.headers.get('content-type')).toBe('application/vnd.netfpx');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('content-disposition')).toBe('inline;filename="IIPisAMadGameClosedToOurUnderstanding.netfpx"');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('answers a missing image with 404 naming only the identifier', async () => {
    const { res, body } = await fetchBytes('FIF=missing.tif&OBJ=Max-size');
    expect(res.status).toBe(404);
    expect(body.toString()).toBe('Image not found: missing.tif');
    expect(body.toString()).not.toContain(dir);
  });

  it('answers an empty request with the home page', async () => {
    const res = await fetch(fcgi);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
  });
});

describe('Zoomify through nginx', () => {
  it('serves ImageProperties.xml', async () => {
    const { res, body } = await fetchBytes('Zoomify=sample.tif/ImageProperties.xml');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/xml');
    expect(body.toString()).toBe('<IMAGE_PROPERTIES WIDTH="2000" HEIGHT="1400" NUMTILES="65" NUMIMAGES="1" VERSION="1.8" TILESIZE="256"/>');
  });

  it.each([
    // [path, x, y, w, h, out w, out h]; Zoomify level 3 is full resolution, any TileGroup number.
    ['TileGroup0/3-1-1.jpg', 256, 256, 256, 256, 256, 256],
    ['TileGroup2/3-7-5.jpg', 1792, 1280, 208, 120, 208, 120],
    ['TileGroup0/0-0-0.jpg', 0, 0, W, H, 250, 175],
    ['TileGroup9/2-1-0.jpg', 512, 0, 512, 512, 256, 256],
  ])('serves %s equal to the source region', async (tile, x, y, w, h, ow, oh) => {
    const { res, body } = await fetchBytes(`Zoomify=sample.tif/${tile}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    const img = await decode(body);
    expect([img.width, img.height]).toEqual([ow, oh]);
    expect(meanAbsDiff(img.data, await reference(x, y, w, h, ow, oh))).toBeLessThan(ow === w ? 3 : 6);
  });

  it('refuses a level the image does not have with 400', async () => {
    expect((await fetchBytes('Zoomify=sample.tif/TileGroup0/4-0-0.jpg')).res.status).toBe(400);
  });
});

describe('DeepZoom through nginx', () => {
  it('serves the .dzi', async () => {
    const { res, body } = await fetchBytes('DeepZoom=sample.tif.dzi');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/xml');
    expect(body.toString()).toBe(
      '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" TileSize="256" Overlap="0" Format="jpg"><Size Width="2000" Height="1400"/></Image>',
    );
  });

  it.each([
    // dzi_max = 11 (full resolution); 8 is the smallest pyramid level (250×175).
    ['11/1_1.jpg', 'jpeg', 256, 256, 256, 256, 256, 256],
    ['10/1_1.jpg', 'jpeg', 512, 512, 512, 512, 256, 256],
    ['8/0_0.jpg', 'jpeg', 0, 0, W, H, 250, 175],
    // Below the pyramid: the true DeepZoom size, ceil(2000/2^4) × ceil(1400/2^4).
    ['7/0_0.jpg', 'jpeg', 0, 0, W, H, 125, 88],
    // PNG here: JPEG's 8×8 blocks and chroma subsampling dominate a 16×11 picture.
    ['4/0_0.png', 'png', 0, 0, W, H, 16, 11],
    // The extension is honoured.
    ['11/0_0.png', 'png', 0, 0, 256, 256, 256, 256],
  ])('serves %s', async (tile, format, x, y, w, h, ow, oh) => {
    const { res, body } = await fetchBytes(`DeepZoom=sample.tif_files/${tile}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toBeNull();
    const img = await decode(body);
    expect([img.format, img.width, img.height]).toEqual([format, ow, oh]);
    expect(meanAbsDiff(img.data, await reference(x, y, w, h, ow, oh))).toBeLessThan(ow === w ? 3 : 8);
  });

  it('refuses an unsupported extension and a level beyond the image with 400', async () => {
    expect((await fetchBytes('DeepZoom=sample.tif_files/11/0_0.gif')).res.status).toBe(400);
    expect((await fetchBytes('DeepZoom=sample.tif_files/12/0_0.jpg')).res.status).toBe(400);
  });

  it('applies IIP commands placed before DeepZoom=', async () => {
    const plain = await fetchBytes('DeepZoom=sample.tif_files/11/1_1.jpg');
    const low = await fetchBytes('QLT=5&DeepZoom=sample.tif_files/11/1_1.jpg');
    expect(low.res.status).toBe(200);
    expect(low.body.length).toBeLessThan(plain.body.length / 2);
  });
});
