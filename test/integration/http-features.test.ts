// iipsrv's optional IIIF settings and sequence-wide requests end to end through the HTTP
// front end (`iipsrv --http`): IIIF_EXTENSIONS (qualities negative, stretch, equalization,
// log), IIIF_EXTRA_INFO (members added to info.json), IIIF_DELIMITER (`<id><delimiter><n>`
// selects a sequence member), IIP SPECTRA over every view of a sequence, and image stacks
// (TIFF pages of one size: SDS=n, the IIIF delimiter, OBJ=stack, SPECTRA over the pages).

import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readableTempDir, startIipsrvHttp, type Running } from '../../scripts/servers.js';
import { fetchBytes, fetchOk } from '../support/http.js';
import { writeTiff, type TiffPage } from '../fixtures/make-science.js';

let dir: string;
const servers: Running[] = [];

const W = 64;
const H = 48;

/**
 * grad.tif: `sharp(raw 64×48 grey ramp 50 + x·100/63, 3 bands).tiff({ tile 16 })` — a narrow
 * range, so stretch and equalization visibly widen it. scan_pyr_000_090.tif and
 * scan_pyr_010_090.tif: a two-view FILENAME_PATTERN sequence, solid red and solid blue.
 */
async function makeFixtures(): Promise<void> {
  const raw = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) raw.fill(Math.round(50 + (x * 100) / (W - 1)), (y * W + x) * 3, (y * W + x + 1) * 3);
  await sharp(raw, { raw: { width: W, height: H, channels: 3 } })
    .tiff({ tile: true, tileWidth: 16, tileHeight: 16, compression: 'deflate' })
    .toFile(path.join(dir, 'grad.tif'));
  await writeTiff(path.join(dir, 'stack.tif'), STACK_PAGES);
  for (const bits of PACKED) await writeTiff(path.join(dir, `grey${bits}.tif`), [packedPage(bits, 1, 1)]);
  await writeTiff(path.join(dir, 'rgb12.tif'), [packedPage(12, 3, 2)]);
  await writeTiff(path.join(dir, 'white4.tif'), [packedPage(4, 1, 0)]);
  for (const [name, background] of [
    ['scan_pyr_000_090.tif', { r: 255, g: 0, b: 0 }],
    ['scan_pyr_010_090.tif', { r: 0, g: 0, b: 255 }],
  ] as const) {
    await sharp({ create: { width: 40, height: 30, channels: 3, background } })
      .tiff({ tile: true, tileWidth: 16, tileHeight: 16, compression: 'deflate' })
      .toFile(path.join(dir, name));
  }
}

/** A solid RGB page of `w`×`h` in `rgb`. */
function solid(w: number, h: number, rgb: readonly number[]): Uint8Array {
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) data.set(rgb, i * 3);
  return data;
}

const STACK_COLOURS = [
  [200, 30, 30],
  [30, 200, 30],
  [30, 30, 200],
] as const;

/**
 * stack.tif (writeTiff): three 96×64 pages (NewSubfileType 2, DocumentName "450nm"/"550nm"/
 * "650nm", StoNits 0.5/1/2), each followed by its own 48×32 reduced level (NewSubfileType 1):
 * page n solid STACK_COLOURS[n] at both sizes, so a level taken from the wrong page shows.
 */
const STACK_PAGES: TiffPage[] = STACK_COLOURS.flatMap((rgb, n) => [
  {
    width: 96,
    height: 64,
    samplesPerPixel: 3,
    bits: 8,
    photometric: 2,
    data: solid(96, 64, rgb),
    tile: 32,
    newSubfileType: 2,
    documentName: `${450 + 100 * n}nm`,
    stoNits: [0.5, 1, 2][n],
  },
  { width: 48, height: 32, samplesPerPixel: 3, bits: 8, photometric: 2, data: solid(48, 32, rgb), tile: 32, newSubfileType: 1 },
]);

const PACKED = [2, 4, 6, 10, 12, 14] as const;
const PW = 40;
const PH = 20;

/** Sample k of pixel (x, y) of the packed fixtures: every value of n bits appears. */
const packedValue = (bits: number, x: number, y: number, k: number): number => (x * 7 + y * 3 + k * 5) % 2 ** bits;

/**
 * grey<n>.tif, rgb12.tif, white4.tif (writeTiff, Deflate, 16×16 tiles, 40×20 so that edge tiles
 * are partial): packed n-bit samples `packedValue`, MinIsBlack grey, RGB and MinIsWhite grey.
 */
function packedPage(bits: (typeof PACKED)[number], spp: 1 | 3, photometric: number): TiffPage {
  const data = new Uint16Array(PW * PH * spp);
  for (let y = 0; y < PH; y++)
    for (let x = 0; x < PW; x++) for (let k = 0; k < spp; k++) data[(y * PW + x) * spp + k] = packedValue(bits, x, y, k);
  return { width: PW, height: PH, samplesPerPixel: spp, bits, photometric, data, tile: 16, compression: 8 };
}

/** n-bit v widened to `to` bits by repeating its bit pattern (an independent spelling). */
function widened(v: number, n: number, to: number): number {
  const pattern = v.toString(2).padStart(n, '0');
  return parseInt(pattern.repeat(Math.ceil(to / n)).slice(0, to), 2);
}

async function start(env: Record<string, string> = {}): Promise<{ base: string; server: Running }> {
  const server = await startIipsrvHttp({ FILESYSTEM_PREFIX: `${dir}/`, VERBOSITY: '1', LOGFILE: '-', ...env });
  servers.push(server);
  return { base: server.base, server };
}

async function grey(url: string): Promise<number[]> {
  const body = await fetchBytes(url);
  const { data, info } = await sharp(body).raw().toBuffer({ resolveWithObject: true });
  return Array.from({ length: info.width * info.height }, (_, i) => data[i * info.channels]);
}

const V2 = { accept: 'application/ld+json;profile="http://iiif.io/api/image/2/context.json"' };

async function info(url: string, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  return (await (await fetchOk(url, { headers })).json()) as Record<string, unknown>;
}

beforeAll(async () => {
  dir = readableTempDir('iipsrv-iiif-options-');
  await makeFixtures();
}, 60_000);

afterAll(async () => {
  for (const s of servers) await s.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('IIIF_EXTENSIONS', () => {
  it('off by default: the extension qualities are 400 and not advertised', async () => {
    const { base } = await start();
    const res = await fetch(`${base}/iiif/grad.tif/full/max/0/negative.png`);
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/unsupported quality: negative/);
    expect((await info(`${base}/iiif/grad.tif/info.json`)).extraQualities).toEqual(['color', 'gray', 'bitonal']);
  });

  it('on: negative, stretch, equalization and log change the pixels as INV, CNT=st, CNT=eq and GAM=log', async () => {
    const { base } = await start({ IIIF_EXTENSIONS: '1' });
    const url = (q: string): string => `${base}/iiif/grad.tif/full/max/0/${q}.png`;
    const plain = await grey(url('default'));
    expect(Math.min(...plain)).toBe(50);
    expect(Math.max(...plain)).toBe(150);
    expect(await grey(url('negative'))).toEqual(plain.map((v) => 255 - v));
    const stretched = await grey(url('stretch'));
    expect(Math.min(...stretched)).toBeLessThanOrEqual(1);
    expect(Math.max(...stretched)).toBeGreaterThanOrEqual(254);
    const equalised = await grey(url('equalization'));
    expect(Math.max(...equalised) - Math.min(...equalised)).toBeGreaterThan(200);
    // The same as IIP's own commands, pixel for pixel.
    const iip = (cmd: string): string => `${base}/fcgi-bin/iipsrv.fcgi?FIF=grad.tif&${cmd}&CVT=png`;
    expect(await grey(url('log'))).toEqual(await grey(iip('GAM=log')));
    expect(await grey(url('log'))).not.toEqual(plain);
    expect(stretched).toEqual(await grey(iip('CNT=st')));
    const res = await fetchOk(url('negative'));
    expect(res.headers.get('link')).toContain('/full/max/0/negative.png>;rel="canonical"');
    const v3 = await info(`${base}/iiif/grad.tif/info.json`);
    expect(v3.extraQualities).toEqual(['color', 'gray', 'bitonal', 'negative', 'stretch', 'equalization', 'log']);
    const v2 = await info(`${base}/iiif/grad.tif/info.json`, V2);
    expect((v2.profile as [string, { qualities: string[] }])[1].qualities).toContain('equalization');
  });
});

describe('IIIF_EXTRA_INFO', () => {
  it('adds its members to info.json (v3 and v2) after rights', async () => {
    const { base } = await start({
      IIIF_EXTRA_INFO:
        '"service": [{"id": "https://example.org/auth", "type": "AuthProbeService2"}], "partOf": [{"id": "https://example.org/m", "type": "Manifest"}]',
      COPYRIGHT: 'https://rightsstatements.org/vocab/InC/1.0/',
    });
    for (const [headers, rights] of [
      [{}, 'rights'],
      [V2, 'license'],
    ] as const) {
      const body = await info(`${base}/iiif/grad.tif/info.json`, headers);
      expect(body.partOf).toEqual([{ id: 'https://example.org/m', type: 'Manifest' }]);
      // Its own service first, then the physdim service of the file's resolution (72 dpi).
      const services = body.service as Array<Record<string, unknown>>;
      expect(services[0]).toEqual({ id: 'https://example.org/auth', type: 'AuthProbeService2' });
      expect(services[1].profile).toBe('http://iiif.io/api/annex/services/physdim');
      const keys = Object.keys(body);
      expect(body[rights]).toBe('https://rightsstatements.org/vocab/InC/1.0/');
      expect(keys.indexOf('partOf')).toBeGreaterThan(keys.indexOf(rights));
    }
  });

  it('text that is not JSON members is reported at start-up by name and left out', async () => {
    const { base, server } = await start({ IIIF_EXTRA_INFO: '"service": [' });
    expect(server.output()).toMatch(/IIIF_EXTRA_INFO: expected JSON members/);
    const body = await info(`${base}/iiif/grad.tif/info.json`);
    expect((body.service as unknown[]).length).toBe(1); // physdim only
    expect(body.width).toBe(W);
  });
});

describe('IIIF_DELIMITER', () => {
  const colour = async (url: string): Promise<number[]> => {
    const body = await fetchBytes(url);
    return [...(await sharp(body).raw().toBuffer()).subarray(0, 3)];
  };

  for (const delimiter of [':', '::']) {
    it(`"${delimiter}": <id>${delimiter}<n> serves sequence member n (as SDS=n); the id keeps the suffix`, async () => {
      const { base } = await start({ IIIF_DELIMITER: delimiter });
      expect(await colour(`${base}/iiif/scan/full/max/0/default.png`)).toEqual([255, 0, 0]);
      expect(await colour(`${base}/iiif/scan${delimiter}0/full/max/0/default.png`)).toEqual([255, 0, 0]);
      expect(await colour(`${base}/iiif/scan${delimiter}10/full/max/0/default.png`)).toEqual([0, 0, 255]);
      expect(await colour(`${base}/fcgi-bin/iipsrv.fcgi?FIF=scan&SDS=10&CVT=png`)).toEqual([0, 0, 255]);
      const body = await info(`${base}/iiif/scan${delimiter}10/info.json`);
      expect(body.id).toBe(`${base}/iiif/scan${delimiter}10`);
      // A member that does not exist, and a suffix that is not a number.
      expect((await fetch(`${base}/iiif/scan${delimiter}20/info.json`)).status).toBe(404);
      expect((await fetch(`${base}/iiif/grad.tif${delimiter}x/info.json`)).status).toBe(404);
    });
  }

  it('off by default: the delimiter is part of the file name', async () => {
    const { base } = await start();
    expect((await fetch(`${base}/iiif/scan:10/info.json`)).status).toBe(404);
  });
});

describe('IIP SPECTRA over a sequence', () => {
  it('lists the point of every horizontal view, the angle as the wavelength', async () => {
    const { base } = await start();
    for (const sds of ['', '&SDS=10']) {
      const res = await fetchOk(`${base}/fcgi-bin/iipsrv.fcgi?FIF=scan${sds}&SPECTRA=0,0,5,5`);
      expect(res.headers.get('content-type')).toBe('application/xml');
      const body = await res.text();
      const points = [...body.matchAll(/<wavelength>(\d+)<\/wavelength>\n\t\t<reflectance>([\d.]+)<\/reflectance>/g)].map((m) => [
        m[1],
        m[2],
      ]);
      // View 0 is red, view 10 blue: the first channel is 255 and then 0.
      expect(points).toEqual([
        ['0', '1.000000'],
        ['10', '0.000000'],
      ]);
    }
    // A plain file has one view.
    const plain = await (await fetchOk(`${base}/fcgi-bin/iipsrv.fcgi?FIF=grad.tif&SPECTRA=0,0,0,0`)).text();
    expect(plain.match(/<point>/g)).toHaveLength(1);
    expect(plain).toContain('<reflectance>0.196078</reflectance>'); // 50/255
  });
});

describe('image stacks (TIFF pages of one size, §11.2)', () => {
  const rgb = async (url: string): Promise<{ px: number[]; width: number }> => {
    const body = await fetchBytes(url);
    const { data, info: i } = await sharp(body).raw().toBuffer({ resolveWithObject: true });
    return { px: [...data.subarray(0, 3)], width: i.width };
  };
  const iip = (base: string, q: string): string => `${base}/fcgi-bin/iipsrv.fcgi?FIF=stack.tif&${q}`;

  it('OBJ=stack lists the pages with their names and scales', async () => {
    const { base } = await start();
    const res = await fetchOk(iip(base, 'OBJ=stack'));
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(JSON.parse(await res.text())).toEqual([
      { id: 0, name: '450nm', scale: 0.5 },
      { id: 1, name: '550nm', scale: 1 },
      { id: 2, name: '650nm', scale: 2 },
    ]);
    // A plain file has no stack: nothing to write, which is IIP error 2 1, as in iipsrv.
    const plain = await fetch(`${base}/fcgi-bin/iipsrv.fcgi?FIF=grad.tif&OBJ=stack`);
    expect(plain.status).toBe(400);
    expect(await plain.text()).toMatch(/^Error\/\d+:2 1 /);
  });

  it('SDS=n serves page n at every size, from its own reduced level; past the last page is 404', async () => {
    const { base } = await start();
    for (let n = 0; n < 3; n++) {
      for (const wid of [96, 48, 20]) {
        const out = await rgb(iip(base, `SDS=${n}&WID=${wid}&CVT=png`));
        expect(out, `page ${n} at ${wid}`).toEqual({ px: [...STACK_COLOURS[n]], width: wid });
      }
    }
    expect(await rgb(iip(base, 'WID=48&CVT=png'))).toEqual({ px: [...STACK_COLOURS[0]], width: 48 });
    expect((await fetch(iip(base, 'SDS=3&WID=48&CVT=png'))).status).toBe(404);
    // The pyramid of a page is its own two levels, not every page's.
    expect(await (await fetchOk(iip(base, 'SDS=1&OBJ=Resolution-number'))).text()).toContain('Resolution-number:2');
  });

  it('IIIF_DELIMITER selects pages; tiles of different pages are cached apart', async () => {
    const { base } = await start({ IIIF_DELIMITER: '@' });
    for (let n = 0; n < 3; n++) {
      expect((await rgb(`${base}/iiif/stack.tif@${n}/0,0,32,32/32,/0/default.png`)).px).toEqual([...STACK_COLOURS[n]]);
    }
    const info0 = await info(`${base}/iiif/stack.tif/info.json`);
    const info2 = await info(`${base}/iiif/stack.tif@2/info.json`);
    expect([info2.width, info2.height, info2.id]).toEqual([96, 64, `${base}/iiif/stack.tif@2`]);
    expect(info0.id).toBe(`${base}/iiif/stack.tif`);
    expect((await fetch(`${base}/iiif/stack.tif@7/info.json`)).status).toBe(404);
  });

  it('SPECTRA lists the point of every page, its name as the wavelength', async () => {
    const { base } = await start();
    const body = await (await fetchOk(iip(base, 'SPECTRA=0,0,3,3'))).text();
    const points = [...body.matchAll(/<wavelength>([^<]+)<\/wavelength>\n\t\t<reflectance>([\d.]+)</g)].map((m) => [m[1], m[2]]);
    expect(points).toEqual([
      ['450nm', (200 / 255).toFixed(6)],
      ['550nm', (30 / 255).toFixed(6)],
      ['650nm', (30 / 255).toFixed(6)],
    ]);
  });
});

describe('packed 2- to 14-bit TIFF samples', () => {
  const samplesOf = async (url: string): Promise<{ data: Buffer; channels: number; width: number }> => {
    const body = await fetchBytes(url);
    const { data, info: i } = await sharp(body).raw().toBuffer({ resolveWithObject: true });
    return { data, channels: i.channels, width: i.width };
  };

  it('are widened by bit replication and served as 8 bits (16 → 8 by >> 8, as iipsrv)', async () => {
    const { base } = await start();
    for (const bits of PACKED) {
      const to = bits < 8 ? 8 : 16;
      const out = await samplesOf(`${base}/iiif/grey${bits}.tif/full/max/0/default.png`);
      expect(out.width).toBe(PW);
      for (const [x, y] of [
        [0, 0],
        [17, 3],
        [39, 19],
        [23, 11],
      ]) {
        const expected = widened(packedValue(bits, x, y, 0), bits, to) >> (to - 8);
        expect(out.data[(y * PW + x) * out.channels], `${bits}-bit at ${x},${y}`).toBe(expected);
      }
    }
    const rgb = await samplesOf(`${base}/iiif/rgb12.tif/full/max/0/default.png`);
    for (let k = 0; k < 3; k++) expect(rgb.data[(5 * PW + 30) * rgb.channels + k]).toBe(widened(packedValue(12, 30, 5, k), 12, 16) >> 8);
    // MinIsWhite: 0 is white.
    const white = await samplesOf(`${base}/iiif/white4.tif/full/max/0/default.png`);
    expect(white.data[(2 * PW + 9) * white.channels]).toBe(255 - widened(packedValue(4, 9, 2, 0), 4, 8));
  });

  it('report their native depth and serve 16-bit PNG on request', async () => {
    const { base } = await start();
    expect(await (await fetchOk(`${base}/fcgi-bin/iipsrv.fcgi?FIF=grey12.tif&OBJ=Bits-per-channel`)).text()).toContain(
      'Bits-per-channel:12',
    );
    // BIT=16 (our IIP extension): the widened samples themselves, in a 16-bit PNG and TIFF.
    for (const format of ['png', 'tiff']) {
      const body = Buffer.from(
        await (await fetchOk(`${base}/fcgi-bin/iipsrv.fcgi?FIF=grey12.tif&WID=${PW}&BIT=16&CVT=${format}`)).arrayBuffer(),
      );
      const meta = await sharp(body).metadata();
      expect(meta.depth, format).toBe('ushort');
      // grey16 keeps sharp from converting to 8-bit-valued sRGB on the way out.
      const { data, info: i } = await sharp(body).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
      const px = new Uint16Array(data.buffer, data.byteOffset, data.length / 2);
      for (const [x, y] of [
        [21, 4],
        [39, 19],
      ]) {
        expect(px[(y * PW + x) * i.channels], `${format} at ${x},${y}`).toBe(widened(packedValue(12, x, y, 0), 12, 16));
      }
    }
    // Without BIT=16 the same request is 8-bit.
    const eight = await fetchBytes(`${base}/fcgi-bin/iipsrv.fcgi?FIF=grey12.tif&WID=${PW}&CVT=png`);
    expect((await sharp(eight).metadata()).depth).toBe('uchar');
  });
});

describe('IIP QLT=<codec>:<q> picks the TIFF output compression', () => {
  /** Tag 259 of the first IFD of a classic TIFF, read by hand (either byte order). */
  function compressionOf(tiff: Buffer): number {
    const le = tiff.toString('latin1', 0, 2) === 'II';
    const u16 = (o: number): number => (le ? tiff.readUInt16LE(o) : tiff.readUInt16BE(o));
    const ifd = le ? tiff.readUInt32LE(4) : tiff.readUInt32BE(4);
    for (let i = 0; i < u16(ifd); i++) if (u16(ifd + 2 + i * 12) === 259) return u16(ifd + 2 + i * 12 + 8);
    return 1;
  }

  it('lzw, jpeg, deflate by name; zstd as Deflate (no encoder); other names none; else TIFF_COMPRESSION', async () => {
    const { base } = await start({ TIFF_COMPRESSION: '1' });
    const tiff = async (qlt: string): Promise<Buffer> =>
      await fetchBytes(`${base}/fcgi-bin/iipsrv.fcgi?FIF=grad.tif&WID=32${qlt}&CVT=tiff`);
    for (const [qlt, code] of [
      ['', 5],
      ['&QLT=deflate:6', 8],
      ['&QLT=jpeg:60', 7],
      ['&QLT=zstd:5', 8],
      ['&QLT=raw:0', 1],
      ['&QLT=80', 5],
    ] as const) {
      const body = await tiff(qlt);
      expect(compressionOf(body), qlt).toBe(code);
      expect((await sharp(body).metadata()).width, qlt).toBe(32);
    }
  });
});
