// ICC profiles end to end through the HTTP front end (`iipsrv --http`): a JPEG-tiled pyramid
// TIFF tagged with Display P3 is served with its stored samples (never converted to sRGB) and
// its profile embedded, on every road — passthrough tiles, edge tiles, regions, processed
// views, every output format — unless MAX_ICC or the request rules it out (§4.8, MAX_ICC); and
// the source's XMP in exported regions, not in tiles.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readableTempDir, requireTool, startIipsrvHttp, type Running } from '../../scripts/servers.js';
import { fetchBytes } from '../support/http.js';

let dir: string;
let p3: Buffer;
const servers: Running[] = [];

const W = 700;
const H = 500;

/**
 * p3.tif: `sharp(raw 700×500 RGB gradient).withIccProfile('p3').jpeg(q100)` read back with
 * `keepIccProfile().tiff({ tile 256, pyramid, jpeg q95 })` — P3 samples and the P3 profile
 * (tag 34675), as a colour-managed scanner writes them, and the XMP packet XMP (tag 700).
 * p3-deflate.tif: the same without XMP, Deflate.
 */
async function makeFixtures(): Promise<void> {
  const raw = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) raw.set([(x * 255) / W, (y * 255) / H, 200 - ((x + y) % 50)], (y * W + x) * 3);
  const tagged = await sharp(raw, { raw: { width: W, height: H, channels: 3 } })
    .withIccProfile('p3')
    .jpeg({ quality: 100 })
    .toBuffer();
  p3 = (await sharp(tagged).metadata()).icc!;
  const pyramid = { tile: true, tileWidth: 256, tileHeight: 256, pyramid: true } as const;
  await sharp(tagged)
    .keepIccProfile()
    .withXmp(XMP)
    .tiff({ ...pyramid, compression: 'jpeg', quality: 95 })
    .toFile(path.join(dir, 'p3.tif'));
  await sharp(tagged)
    .keepIccProfile()
    .tiff({ ...pyramid, compression: 'deflate' })
    .toFile(path.join(dir, 'p3-deflate.tif'));
  // p3.jpg: the tagged JPEG itself, as plain JPEG input.
  fs.writeFileSync(path.join(dir, 'p3.jpg'), tagged);
  // p3.jp2: `opj_compress -i p3.ppm -o p3.jp2 -n 4` (lossless) of the stored samples, its
  // enumerated sRGB colr box then replaced by a restricted-ICC one (method 2) holding P3.
  const samples = await sharp(tagged, { ignoreIcc: true }).raw().toBuffer();
  const ppm = path.join(dir, 'p3.ppm');
  fs.writeFileSync(ppm, Buffer.concat([Buffer.from(`P6\n${W} ${H}\n255\n`, 'latin1'), samples]));
  execFileSync('opj_compress', ['-i', ppm, '-o', path.join(dir, 'p3.jp2'), '-n', '4'], { stdio: 'ignore' });
  fs.writeFileSync(path.join(dir, 'p3.jp2'), withIccColr(fs.readFileSync(path.join(dir, 'p3.jp2')), p3));
}

/** A JP2 whose first colr box (enumerated) is replaced by method 2 with `icc`; jp2h resized. */
function withIccColr(jp2: Buffer, icc: Buffer): Buffer {
  const jp2h = jp2.indexOf(Buffer.from('jp2h', 'latin1')) - 4;
  const colr = jp2.indexOf(Buffer.from('colr', 'latin1')) - 4;
  const oldLength = jp2.readUInt32BE(colr);
  if (jp2h < 0 || colr < jp2h || jp2[colr + 8] !== 1) throw new Error('p3.jp2: no enumerated colr box to replace');
  const box = Buffer.concat([Buffer.alloc(8), Buffer.from([2, 0, 0]), icc]);
  box.writeUInt32BE(box.length, 0);
  box.write('colr', 4, 'latin1');
  const out = Buffer.concat([jp2.subarray(0, colr), box, jp2.subarray(colr + oldLength)]);
  out.writeUInt32BE(jp2.readUInt32BE(jp2h) + box.length - oldLength, jp2h);
  return out;
}

/** The XMP packet p3.tif carries (XMLPacket, tag 700), written with sharp's withXmp. */
const XMP =
  '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">' +
  '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:rights>Test rights</dc:rights></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>';

async function start(env: Record<string, string> = {}): Promise<string> {
  const s = await startIipsrvHttp({ FILESYSTEM_PREFIX: `${dir}/`, VERBOSITY: '0', ...env });
  servers.push(s);
  return s.base;
}

/** The file's own samples of a full-resolution rectangle, as stored (no profile applied). */
async function stored(file: string, x: number, y: number, w: number, h: number): Promise<Buffer> {
  return sharp(path.join(dir, file), { ignoreIcc: true }).extract({ left: x, top: y, width: w, height: h }).raw().toBuffer();
}

async function samples(body: Buffer): Promise<Buffer> {
  return sharp(body, { ignoreIcc: true }).removeAlpha().raw().toBuffer();
}

function meanAbsDiff(a: Buffer, b: Buffer): number {
  expect(a.length).toBe(b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

let base: string;

beforeAll(async () => {
  requireTool('opj_compress');
  dir = readableTempDir('iipsrv-icc-');
  await makeFixtures();
  base = await start();
}, 60_000);

afterAll(async () => {
  for (const s of servers) await s.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('source ICC profiles (MAX_ICC default 65535)', () => {
  it('the fixture really holds a P3 profile that changes colours when applied', async () => {
    expect(p3.subarray(16, 20).toString('latin1')).toBe('RGB ');
    const asStored = await stored('p3.tif', 600, 0, 1, 1);
    const converted = await sharp(path.join(dir, 'p3.tif')).extract({ left: 600, top: 0, width: 1, height: 1 }).raw().toBuffer();
    expect(Math.abs(asStored[0] - converted[0]) + Math.abs(asStored[1] - converted[1])).toBeGreaterThan(10);
  });

  it('a passthrough tile carries the profile and the stored samples', async () => {
    const body = await fetchBytes(`${base}/iiif/p3.tif/0,0,256,256/256,/0/default.jpg`);
    expect((await sharp(body).metadata()).icc?.equals(p3)).toBe(true);
    expect(meanAbsDiff(await samples(body), await stored('p3.tif', 0, 0, 256, 256))).toBeLessThan(2);
  });

  it('an edge tile (decoded and re-encoded) matches: same profile, same stored samples', async () => {
    const body = await fetchBytes(`${base}/iiif/p3.tif/512,256,188,244/188,/0/default.jpg`);
    expect((await sharp(body).metadata()).icc?.equals(p3)).toBe(true);
    expect(meanAbsDiff(await samples(body), await stored('p3.tif', 512, 256, 188, 244))).toBeLessThan(2);
  });

  it('regions, IIP CVT and processed views carry it, in JPEG, PNG, WebP and TIFF', async () => {
    for (const url of [
      `${base}/iiif/p3.tif/100,100,400,300/200,/0/default.jpg`,
      `${base}/iiif/p3-deflate.tif/100,100,400,300/400,/0/default.png`,
      `${base}/iiif/p3.tif/full/300,/0/default.webp`,
      `${base}/iiif/p3-deflate.tif/full/300,/0/default.tif`,
      `${base}/iiif/p3.tif/full/300,/90/color.jpg`,
      `${base}/fcgi-bin/iipsrv.fcgi?FIF=p3.tif&WID=300&CNT=1.2&CVT=jpeg`,
    ]) {
      expect((await sharp(await fetchBytes(url)).metadata()).icc?.equals(p3), url).toBe(true);
    }
    // The Deflate file's samples come through the raw-sample road: still as stored.
    const png = await fetchBytes(`${base}/iiif/p3-deflate.tif/100,100,400,300/400,/0/default.png`);
    expect(meanAbsDiff(await samples(png), await stored('p3-deflate.tif', 100, 100, 400, 300))).toBeLessThan(1);
  });

  it('plain JPEG and JPEG 2000 (colr method 2) sources: their profile, their stored samples', async () => {
    for (const file of ['p3.jpg', 'p3.jp2']) {
      const body = await fetchBytes(`${base}/iiif/${file}/100,100,400,300/400,/0/default.png`);
      expect((await sharp(body).metadata()).icc?.equals(p3), file).toBe(true);
      expect(meanAbsDiff(await samples(body), await stored('p3.jpg', 100, 100, 400, 300)), file).toBeLessThan(1);
    }
  });

  it('not for greyscale, bitonal, colormaps, AVIF; and never with MAX_ICC=0 or a profile at the limit', async () => {
    for (const url of [
      `${base}/iiif/p3.tif/full/200,/0/gray.jpg`,
      `${base}/iiif/p3.tif/full/200,/0/bitonal.png`,
      `${base}/fcgi-bin/iipsrv.fcgi?FIF=p3.tif&WID=200&CMP=JET&CVT=jpeg`,
      `${base}/iiif/p3.tif/full/200,/0/default.avif`,
    ]) {
      expect((await sharp(await fetchBytes(url)).metadata()).icc, url).toBeUndefined();
    }
    for (const maxIcc of ['0', String(p3.length)]) {
      const other = await start({ MAX_ICC: maxIcc });
      const tile = await fetchBytes(`${other}/iiif/p3.tif/0,0,256,256/256,/0/default.jpg`);
      const region = await fetchBytes(`${other}/iiif/p3.tif/100,100,400,300/200,/0/default.jpg`);
      expect((await sharp(tile).metadata()).icc).toBeUndefined();
      expect((await sharp(region).metadata()).icc).toBeUndefined();
      // Samples are still the stored ones: a profile is never applied, only embedded or not.
      expect(meanAbsDiff(await samples(tile), await stored('p3.tif', 0, 0, 256, 256))).toBeLessThan(2);
    }
    const unlimited = await start({ MAX_ICC: '-1' });
    expect((await sharp(await fetchBytes(`${unlimited}/iiif/p3.tif/full/200,/0/default.jpg`)).metadata()).icc?.equals(p3)).toBe(true);
  });

  it('XMP goes into exported regions (CVT, IIIF regions) but not into tiles', async () => {
    const xmpOf = async (url: string): Promise<string | undefined> => (await sharp(await fetchBytes(url)).metadata()).xmp?.toString('utf8');
    for (const url of [
      `${base}/iiif/p3.tif/100,100,400,300/200,/0/default.jpg`,
      `${base}/iiif/p3.tif/full/300,/0/default.png`,
      `${base}/fcgi-bin/iipsrv.fcgi?FIF=p3.tif&WID=300&CVT=jpeg`,
    ]) {
      expect(await xmpOf(url), url).toContain('<dc:rights>Test rights</dc:rights>');
    }
    expect(await xmpOf(`${base}/iiif/p3.tif/0,0,256,256/256,/0/default.jpg`)).toBeUndefined();
    expect(await xmpOf(`${base}/iiif/p3.tif/512,256,188,244/188,/0/default.jpg`)).toBeUndefined();
  });
});
