// IIP, Zoomify and DeepZoom through the handler in process: routing (query, POST body,
// URI_MAP, delegation with setters), the new answer kinds (fixed OBJ bodies, TIL tiles, raw
// samples), headers, conditional requests and the IIP error status setting. Pixels are
// compared with the source decoded by sharp.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { decodeSrgb, meanAbsDiff, sourceRegion } from '../../support/pixels.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import type { ServerRequest, ServerResponse } from '../../../src/handler-types.js';
import { routeRequest } from '../../../src/handler.js';
import { silentLogger } from '../../../src/log.js';
import { createServerCore, type ServerCore } from '../../../src/server.js';
import { header, req } from '../../support/requests.js';

let dir: string;
let core: ServerCore;
let source: Buffer; // 1000×600 RGB, level 0 of the pyramid as libvips decodes it
const W = 1000;
const H = 600;

const get = (query: string, init: Partial<ServerRequest> = {}): Promise<ServerResponse> =>
  core.handler(req(`/fcgi-bin/iipsrv.fcgi?${query}`, init));
const region = (x: number, y: number, w: number, h: number, ow = w, oh = h): Promise<Buffer> =>
  sourceRegion({ data: source, width: W, height: H }, x, y, w, h, ow, oh);

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-iip-handler-'));
  // A smooth gradient (so JPEG round trips stay close) as a deflate pyramid: 1000×600, 500×300, 250×150.
  const w = W;
  const h = H;
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      raw[i] = Math.round((x * 255) / w);
      raw[i + 1] = Math.round((y * 255) / h);
      raw[i + 2] = 128;
    }
  await sharp(raw, { raw: { width: w, height: h, channels: 3 } })
    .tiff({ tile: true, pyramid: true, compression: 'deflate', tileWidth: 256, tileHeight: 256 })
    .toFile(path.join(dir, 'grad.tif'));
  source = await sharp(path.join(dir, 'grad.tif'), { page: 0 }).raw().toBuffer();
  // A two-member sequence (§11.5): seq_pyr_000_090.tif and seq_pyr_010_090.tif.
  for (const m of ['000_090', '010_090']) fs.copyFileSync(path.join(dir, 'grad.tif'), path.join(dir, `seq_pyr_${m}.tif`));
  const { config } = loadConfig({ FILESYSTEM_PREFIX: `${dir}/`, CORS: '*' });
  core = await createServerCore(config, silentLogger);
}, 60_000);

afterAll(async () => {
  await core.clearCaches();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('routing', () => {
  const config = loadConfig({}).config;
  it.each([
    ['FIF=a.tif&JTL=0,0', 'IIP'],
    ['CNT=2&IIIF=a.tif/info.json', 'IIIF'],
    ['zoomify=a.tif/ImageProperties.xml', 'Zoomify'],
    ['DeepZoom=a.tif.dzi&foo=1', 'DeepZoom'],
    // The first output command decides.
    ['FIF=a.tif&JTL=0,0&IIIF=a.tif/info.json', 'IIP'],
    ['foo=bar', 'IIP'],
  ])('%s → %s', (query, name) => {
    expect(routeRequest(req(`/fcgi-bin/iipsrv.fcgi?${query}`), config)?.protocol?.name).toBe(name);
  });

  it('routes a URI_MAP IIP path to IIP with the path as image and the query as commands', () => {
    const mapped = loadConfig({ URI_MAP: 'iip=>IIP' }).config;
    const route = routeRequest(req('/iip/dir/a+b.tif?OBJ=Max-size'), mapped);
    expect(route).toMatchObject({ name: 'FIF', argument: 'dir/a+b.tif', via: 'path', request: 'OBJ=Max-size' });
    expect(route?.protocol?.name).toBe('IIP');
  });

  it('answers an empty request with the home page', async () => {
    const res = await core.handler(req('/fcgi-bin/iipsrv.fcgi'));
    expect(res.status).toBe(200);
    expect(header(res, 'content-type')).toMatch(/^text\/html/);
  });
});

describe('OBJ', () => {
  it('answers with netfpx, the IIP header, Last-Modified and CORS, and 304 when unchanged', async () => {
    const res = await get('FIF=grad.tif&OBJ=IIP,1.0&OBJ=Max-size&OBJ=Tile-size&OBJ=Resolution-number&OBJ=Resolutions');
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(
      'Max-size:1000 600\r\nTile-size:256 256\r\nResolution-number:3\r\nResolutions:250 150,500 300,1000 600\r\n',
    );
    expect(header(res, 'content-type')).toBe('application/vnd.netfpx');
    expect(header(res, 'iip')).toBe('1.3');
    expect(header(res, 'access-control-allow-origin')).toBe('*');
    const since = await get('FIF=grad.tif&OBJ=Max-size', { headers: { 'if-modified-since': header(res, 'last-modified')! } });
    expect(since.status).toBe(304);
  });

  it('answers image-free objects without FIF and without Last-Modified', async () => {
    const res = await get('OBJ=IIP,1.0&OBJ=IIP-server&OBJ=IIP-opt-obj');
    expect(res.status).toBe(200);
    expect(res.body.toString()).toMatch(/^IIP-server:3\.65\r\nIIP-opt-obj:Horizontal-views/);
    expect(header(res, 'last-modified')).toBeUndefined();
    expect(header(res, 'iip')).toBe('1.3');
  });

  it('takes the request from a POST body when the query is empty', async () => {
    const res = await core.handler(req('/fcgi-bin/iipsrv.fcgi', { method: 'POST', body: Buffer.from('FIF=grad.tif&OBJ=Max-size\n') }));
    expect([res.status, res.body.toString()]).toEqual([200, 'Max-size:1000 600\r\n']);
  });
});

describe('sequences', () => {
  it('lists the views of a sequence and reads the member SDS selects', async () => {
    const res = await get('FIF=seq&OBJ=Horizontal-views&OBJ=Vertical-views');
    expect(res.body.toString()).toBe('Horizontal-views:0 10\r\nVertical-views:90\r\n');
    const spectra = await get('FIF=seq&SDS=10&SPECTRA=2,0,0,0');
    expect(spectra.body.toString()).toContain('<wavelength>10</wavelength>');
    expect((await get('FIF=seq&SDS=10&JTL=2,0')).status).toBe(200);
  });
});

describe('errors', () => {
  it('sends IIP errors with status 400 and well-formed headers', async () => {
    const res = await get('FIF=grad.tif&XYZ=1');
    expect(res.status).toBe(400);
    expect(res.body.toString()).toBe('Error/7:2 2 XYZ\r\n');
    expect(header(res, 'content-type')).toBe('application/vnd.netfpx');
    expect(header(res, 'cache-control')).toBe('no-cache');
    expect(header(res, 'content-disposition')).toBe('inline;filename="IIPisAMadGameClosedToOurUnderstanding.netfpx"');
    expect(header(res, 'access-control-allow-origin')).toBe('*');
  });

  it('answers a missing image with 404 and its identifier only', async () => {
    const res = await get('FIF=nope.tif&JTL=0,0');
    expect(res.status).toBe(404);
    expect(res.body.toString()).toBe('Image not found: nope.tif');
  });

  it('keeps status 200 with IIP_ERROR_STATUS_200=1', async () => {
    const { config } = loadConfig({ FILESYSTEM_PREFIX: `${dir}/`, IIP_ERROR_STATUS_200: '1' });
    const compat = await createServerCore(config, silentLogger);
    const res = await compat.handler(req('/fcgi-bin/iipsrv.fcgi?FIF=grad.tif&XYZ=1'));
    expect([res.status, res.body.toString()]).toEqual([200, 'Error/7:2 2 XYZ\r\n']);
    await compat.clearCaches();
  });

  it('ignores unknown commands around a delegated protocol (cache busters)', async () => {
    const res = await get('DeepZoom=grad.tif.dzi&_=12345');
    expect(res.status).toBe(200);
  });
});

describe('tiles', () => {
  it('serves JTL tiles equal to the source, without Content-Disposition', async () => {
    // Resolution 2 is full resolution (3 levels); tile 5 is (1,1) on a 4-column grid.
    const res = await get('FIF=grad.tif&JTL=2,5');
    expect(res.status).toBe(200);
    expect(header(res, 'content-type')).toBe('image/jpeg');
    expect(header(res, 'content-disposition')).toBeUndefined();
    const img = await decodeSrgb(res.body);
    expect([img.width, img.height]).toEqual([256, 256]);
    expect(meanAbsDiff(img.data, await region(256, 256, 256, 256))).toBeLessThan(2);
    // The last column is cropped: 1000 − 3·256 = 232 wide.
    const edge = await decodeSrgb((await get('FIF=grad.tif&JTL=2,11')).body);
    expect([edge.width, edge.height]).toEqual([232, 88]);
  });

  it('applies QLT after the tile command (order rule)', async () => {
    const plain = await get('FIF=grad.tif&JTL=2,0');
    const low = await get('FIF=grad.tif&JTL=2,0&QLT=5');
    expect(low.body.length).toBeLessThan(plain.body.length);
  });

  it('serves a ROT=90 tile of the rotated grid', async () => {
    // Rotated, full resolution is 600×1000: tile 0 is source x 0..256, y 344..600, turned clockwise.
    const res = await get('FIF=grad.tif&ROT=90&JTL=2,0');
    const img = await decodeSrgb(res.body);
    expect([img.width, img.height]).toEqual([256, 256]);
    const ref = await sharp(await region(0, 344, 256, 256), { raw: { width: 256, height: 256, channels: 3 } })
      .rotate(90)
      .raw()
      .toBuffer();
    expect(meanAbsDiff(img.data, ref)).toBeLessThan(2);
  });

  it('sends TIL tiles column-major in FlashPix framing, each equal to its JTL tile', async () => {
    const res = await get('FIF=grad.tif&TIL=2,0-5');
    expect(res.status).toBe(200);
    expect(header(res, 'content-type')).toBe('application/vnd.netfpx');
    const found: Array<{ n: number; jpeg: Buffer }> = [];
    let at = 0;
    const body = res.body;
    while (at < body.length) {
      const colon = body.indexOf(':', at);
      const m = /^Tile,2,(\d+),0\/(\d+)$/.exec(body.toString('latin1', at, colon));
      expect(m).not.toBeNull();
      const len = Number(m![2]);
      expect([...body.subarray(colon + 1, colon + 9)]).toEqual([2, 0, 0, 0, 0, 0x11, 0, 0]);
      found.push({ n: Number(m![1]), jpeg: body.subarray(colon + 9, colon + 1 + len) });
      expect(body.toString('latin1', colon + 1 + len, colon + 3 + len)).toBe('\r\n');
      at = colon + 3 + len;
    }
    // Tiles 0 = (0,0) and 5 = (1,1): columns 0..1, rows 0..1, x outer.
    expect(found.map((f) => f.n)).toEqual([0, 4, 1, 5]);
    for (const f of found) expect(f.jpeg.equals((await get(`FIF=grad.tif&JTL=2,${f.n}`)).body)).toBe(true);
  });
});

describe('CVT', () => {
  it.each([
    ['WID=300&HEI=300&CVT=jpeg', 300, 180, 0, 0, W, H, 'grad_300x180.jpg'],
    ['WID=200&CVT=png', 200, 120, 0, 0, W, H, 'grad_200x120.png'],
    // RGN without WID/HEI: the region at its own size (§13 #13).
    ['RGN=0.5,0.5,0.25,0.25&CVT=jpeg', 250, 150, 500, 300, 250, 150, 'grad_250x150.jpg'],
    ['RGN=0,0,0.5,0.5&HEI=100&CVT=jpeg', 167, 100, 0, 0, 500, 300, 'grad_167x100.jpg'],
  ])('%s', async (query, ow, oh, x, y, w, h, filename) => {
    const res = await get(`FIF=grad.tif&${query}`);
    expect(res.status).toBe(200);
    expect(header(res, 'content-disposition')).toBe(`inline; filename="${filename}"`);
    const img = await decodeSrgb(res.body);
    expect([img.width, img.height]).toEqual([ow, oh]);
    expect(meanAbsDiff(img.data, await region(x, y, w, h, ow, oh))).toBeLessThan(3);
  });

  it('uses attachment for POST', async () => {
    const res = await core.handler(req('/fcgi-bin/iipsrv.fcgi', { method: 'POST', body: Buffer.from('FIF=grad.tif&WID=100&CVT=jpeg') }));
    expect(header(res, 'content-disposition')).toBe('attachment; filename="grad_100x60.jpg"');
  });
});

describe('PFL and SPECTRA', () => {
  it('returns the raw samples of a horizontal line', async () => {
    const res = await get('FIF=grad.tif&PFL=2:10,20-14,20');
    expect(res.status).toBe(200);
    expect(header(res, 'content-type')).toBe('application/json');
    const expected: number[] = [];
    for (let x = 10; x < 14; x++) expected.push(...source.subarray((20 * W + x) * 3, (20 * W + x) * 3 + 3));
    expect(res.body.toString()).toBe(`{\n\t"profile": [${expected.join(',')}]\n}`);
    expect(JSON.parse(res.body.toString()).profile).toEqual(expected);
  });

  it('returns a vertical line too', async () => {
    const profile = JSON.parse((await get('FIF=grad.tif&PFL=2:7,0-7,3')).body.toString()).profile;
    expect(profile).toEqual([0, 1, 2].flatMap((y) => [...source.subarray((y * W + 7) * 3, (y * W + 7) * 3 + 3)]));
  });

  it('returns one point of SPECTRA', async () => {
    const res = await get('FIF=grad.tif&SPECTRA=2,5,3,4');
    expect(header(res, 'content-type')).toBe('application/xml');
    // Tile 5 = (1,1): pixel (256 + 3, 256 + 4), channel 0.
    const v = source[((256 + 4) * W + 259) * 3];
    expect(res.body.toString()).toContain(`<reflectance>${(v / 255).toFixed(6)}</reflectance>`);
  });

  it('refuses points outside the image with 400', async () => {
    expect((await get('FIF=grad.tif&PFL=2:990,0-1001,0')).status).toBe(400);
    expect((await get('FIF=grad.tif&SPECTRA=2,11,240,0')).status).toBe(400);
  });
});

describe('Zoomify and DeepZoom', () => {
  it('serves ImageProperties.xml and tiles', async () => {
    const props = await get('Zoomify=grad.tif/ImageProperties.xml');
    expect(props.body.toString()).toBe(
      '<IMAGE_PROPERTIES WIDTH="1000" HEIGHT="600" NUMTILES="17" NUMIMAGES="1" VERSION="1.8" TILESIZE="256"/>',
    );
    const tile = await get('Zoomify=grad.tif/TileGroup0/2-1-1.jpg');
    expect(header(tile, 'content-disposition')).toBeUndefined();
    const img = await decodeSrgb(tile.body);
    expect(meanAbsDiff(img.data, await region(256, 256, 256, 256))).toBeLessThan(2);
  });

  it('serves the .dzi, stored tiles, PNG tiles and levels below the pyramid', async () => {
    expect((await get('DeepZoom=grad.tif.dzi')).body.toString()).toBe(
      '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" TileSize="256" Overlap="0" Format="jpg"><Size Width="1000" Height="600"/></Image>',
    );
    // dzi_max = 10: level 10 is full resolution.
    const full = await decodeSrgb((await get('DeepZoom=grad.tif_files/10/1_1.jpg')).body);
    expect(meanAbsDiff(full.data, await region(256, 256, 256, 256))).toBeLessThan(2);
    const png = await get('DeepZoom=grad.tif_files/10/0_0.png');
    expect(header(png, 'content-type')).toBe('image/png');
    // Level 7 (below the 250×150 level 8): ceil(1000/8) × ceil(600/8) = 125×75.
    const low = await get('DeepZoom=grad.tif_files/7/0_0.jpg');
    expect(header(low, 'content-disposition')).toBeUndefined();
    const small = await decodeSrgb(low.body);
    expect([small.width, small.height]).toEqual([125, 75]);
    expect(meanAbsDiff(small.data, await region(0, 0, W, H, 125, 75))).toBeLessThan(4);
    expect((await get('DeepZoom=grad.tif_files/10/0_0.gif')).status).toBe(400);
  });

  it('applies processing placed before a DeepZoom command', async () => {
    const plain = await get('DeepZoom=grad.tif_files/8/0_0.png');
    const q = await get('QLT=1&DeepZoom=grad.tif_files/8/0_0.jpg');
    const j = await get('DeepZoom=grad.tif_files/8/0_0.jpg');
    expect(plain.status).toBe(200);
    expect(q.body.length).toBeLessThan(j.body.length);
  });
});
