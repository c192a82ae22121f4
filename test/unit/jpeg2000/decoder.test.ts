// The JPEG 2000 decoder module with the native addon: every region/reduce/layers read equals
// opj_decompress's output for the same area (-d), reduction (-r) and layers (-l); ImageInfo
// levels (hidden and synthesised), the MAX_LAYERS policy, bad files and concurrent decodes.

import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageDecoder, RawImage } from '../../../decoders/decoder.js';
import {
  clearLevelCache,
  effectiveLayers,
  jpeg2000Backend,
  jpeg2000Decoder,
  type Jpeg2000Decoder,
} from '../../../decoders/jpeg2000/index.js';
import { DecoderRegistry } from '../../../decoders/registry.js';
import { ImageServerError } from '../../../src/core/errors.js';
import type { Rect } from '../../../src/core/view.js';
import { makeJ2kSource, makeYccFixtures, opjDecompress, psnr, type Jp2Fixture } from '../../fixtures/make-jp2.js';
import { setupJp2Fixtures, type Jp2FixtureSet } from './helpers.js';

let fx: Jp2FixtureSet;
let source: Buffer;
const open: ImageDecoder[] = [];

beforeAll(async () => {
  // Region decodes by default; the whole-level cache is tested on its own below.
  process.env.IIPSRV_J2K_CACHE_LEVEL_PIXELS = '0';
  fx = await setupJp2Fixtures();
  source = await makeJ2kSource();
}, 60_000);
afterAll(async () => {
  await Promise.all(open.map((d) => d.close()));
  await fx?.cleanup();
});

const nativeBuilt = jpeg2000Backend().backend === 'native';

// The addon is part of the product (README: libopenjp2-7-dev at npm install): without it the
// native tests below fail rather than skip, as CI requires of a missing tool.
it('the native libopenjp2 addon is built', () => {
  expect(nativeBuilt, 'build/Release/iipsrv_openjpeg.node is missing: apt-get install libopenjp2-7-dev, then npm install').toBe(true);
});

async function dec(name: string, maxLayers = -1): Promise<Jpeg2000Decoder> {
  const d = (await jpeg2000Decoder.open(fx.files[name].path, { maxLayers })) as Jpeg2000Decoder;
  open.push(d);
  return d;
}

/** The reference-grid area opj_decompress needs for `rect` of level k. */
function areaOf(f: Jp2Fixture, k: number, r: Rect): { x0: number; y0: number; x1: number; y1: number } {
  const s = 2 ** k;
  const ox = Math.ceil(f.x0 / s);
  const oy = Math.ceil(f.y0 / s);
  return {
    x0: Math.max(f.x0, (ox + r.x) * s),
    y0: Math.max(f.y0, (oy + r.y) * s),
    x1: Math.min(f.x0 + f.width, (ox + r.x + r.width) * s),
    y1: Math.min(f.y0 + f.height, (oy + r.y + r.height) * s),
  };
}

function samplesOf(raw: RawImage): Uint8Array | Uint16Array {
  return raw.bitsPerSample === 16
    ? new Uint16Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength / 2)
    : new Uint8Array(raw.data);
}

let tag = 0;
async function compareWithOpj(name: string, level: number, rect: Rect, layers?: number): Promise<void> {
  const f = fx.files[name];
  const d = await dec(name);
  const raw = await d.readRegion(level, rect, layers === undefined ? undefined : { layers });
  const { image, command } = await opjDecompress(f.path, fx.dir, {
    reduce: level,
    layers,
    area: areaOf(f, level, rect),
    channels: f.channels,
    tag: `cmp-${tag++}`,
  });
  expect({ w: raw.width, h: raw.height, c: raw.channels, b: raw.bitsPerSample }, command).toEqual({
    w: image.width,
    h: image.height,
    c: image.channels,
    b: image.bits,
  });
  const ours = samplesOf(raw);
  if (f.lossless || layers === undefined) {
    // Same library, same area: the samples are identical whatever the wavelet.
    expect(
      Buffer.from(ours.buffer, ours.byteOffset, ours.byteLength).equals(
        Buffer.from(image.samples.buffer, image.samples.byteOffset, image.samples.byteLength),
      ),
      command,
    ).toBe(true);
  } else {
    expect(psnr(ours, image.samples, f.bits === 16 ? 65535 : 255), command).toBeGreaterThan(40);
  }
}

describe('regions equal opj_decompress (native addon)', () => {
  const cases: Array<[string, number, Rect, number?]> = [
    ['rgb-lrcp.jp2', 0, { x: 0, y: 0, width: 256, height: 256 }],
    ['rgb-lrcp.jp2', 0, { x: 512, y: 256, width: 188, height: 244 }],
    ['rgb-lrcp.jp2', 1, { x: 100, y: 37, width: 250, height: 213 }],
    ['rgb-lrcp.jp2', 2, { x: 0, y: 0, width: 175, height: 125 }],
    ['rgb-lrcp.jp2', 0, { x: 33, y: 45, width: 300, height: 200 }, 1],
    ['rgb-lrcp.jp2', 1, { x: 0, y: 0, width: 256, height: 250 }, 2],
    ['rgb-tiled-rpcl.jp2', 0, { x: 200, y: 200, width: 256, height: 256 }],
    ['rgb-tiled-rpcl.jp2', 1, { x: 128, y: 0, width: 222, height: 250 }, 1],
    ['rgb-tiled-rlcp.j2k', 0, { x: 190, y: 150, width: 300, height: 100 }],
    ['rgb-tiled-rlcp.j2k', 2, { x: 0, y: 0, width: 175, height: 125 }],
    ['rgb-pcrl-lossy.jp2', 0, { x: 256, y: 0, width: 256, height: 256 }],
    ['rgb-pcrl-lossy.jp2', 0, { x: 256, y: 0, width: 256, height: 256 }, 1],
    ['rgb-pcrl-lossy.jp2', 1, { x: 10, y: 10, width: 300, height: 200 }, 1],
    ['grey8.jp2', 0, { x: 300, y: 200, width: 256, height: 256 }],
    ['grey8.jp2', 1, { x: 0, y: 0, width: 350, height: 250 }, 2],
    ['grey16.jp2', 0, { x: 250, y: 250, width: 256, height: 250 }],
    ['grey16.jp2', 2, { x: 0, y: 0, width: 175, height: 125 }],
    ['rgb16.j2k', 0, { x: 1, y: 2, width: 255, height: 254 }],
    ['rgb16.j2k', 1, { x: 256, y: 0, width: 94, height: 250 }],
    ['origin.j2k', 0, { x: 0, y: 0, width: 256, height: 256 }],
    ['origin.j2k', 1, { x: 3, y: 5, width: 200, height: 100 }],
    ['origin.j2k', 2, { x: 0, y: 0, width: 175, height: 125 }],
  ];
  for (const [name, level, rect, layers] of cases) {
    it(`${name} level ${level} ${rect.x},${rect.y} ${rect.width}×${rect.height}${layers ? ` layers ${layers}` : ''}`, async () => {
      await compareWithOpj(name, level, rect, layers);
    });
  }

  it('lossless full-resolution reads are the source pixels (8-bit in full, §13 #28)', async () => {
    for (const name of ['rgb-lrcp.jp2', 'rgb-tiled-rpcl.jp2', 'rgb-tiled-rlcp.j2k', 'origin.j2k']) {
      const d = await dec(name);
      const raw = await d.readRegion(0, { x: 100, y: 60, width: 300, height: 200 });
      const want = Buffer.alloc(300 * 200 * 3);
      for (let r = 0; r < 200; r++) source.copy(want, r * 900, ((60 + r) * 700 + 100) * 3, ((60 + r) * 700 + 400) * 3);
      expect(raw.data.equals(want), name).toBe(true);
    }
  });

  it('region reads equal crops of whole-level reads', async () => {
    const d = await dec('rgb-tiled-rpcl.jp2');
    const whole = await d.readRegion(1, { x: 0, y: 0, width: 350, height: 250 });
    const part = await d.readRegion(1, { x: 70, y: 90, width: 128, height: 100 });
    for (let r = 0; r < 100; r++) {
      const a = whole.data.subarray(((90 + r) * 350 + 70) * 3, ((90 + r) * 350 + 198) * 3);
      expect(part.data.subarray(r * 384, (r + 1) * 384).equals(a)).toBe(true);
    }
  });
});

describe('ImageInfo', () => {
  it('levels follow the ceil rule and stop at the first that fits a 256 tile (extra DWT levels hidden)', async () => {
    const d = await dec('rgb-lrcp.jp2');
    expect(d.info).toMatchObject({
      format: 'jpeg2000',
      width: 700,
      height: 500,
      channels: 3,
      bitsPerSample: 8,
      colourSpace: 'srgb',
      compression: 'jpeg2000',
    });
    expect(d.info.levels.map((l) => [l.width, l.height, l.tileWidth, l.tileHeight])).toEqual([
      [700, 500, 256, 256],
      [350, 250, 256, 256],
      [175, 125, 256, 256],
    ]);
    expect(d.jpeg2000).toMatchObject({ kind: 'jp2', layers: 3, progression: 'LRCP', dwtLevels: 5, tiles: 1 });
  });

  it('image origin: sizes ceil(X1/2^k) − ceil(X0/2^k)', async () => {
    const d = await dec('origin.j2k');
    // X0 = 13, X1 = 713; Y0 = 7, Y1 = 507.
    expect(d.info.levels.map((l) => [l.width, l.height])).toEqual([
      [700, 500],
      [Math.ceil(713 / 2) - Math.ceil(13 / 2), Math.ceil(507 / 2) - Math.ceil(7 / 2)],
      [Math.ceil(713 / 4) - Math.ceil(13 / 4), Math.ceil(507 / 4) - Math.ceil(7 / 4)],
    ]);
  });

  it('grey 8/16-bit, 16-bit RGB', async () => {
    expect((await dec('grey8.jp2')).info).toMatchObject({ channels: 1, bitsPerSample: 8, colourSpace: 'grey', maxValues: [255] });
    expect((await dec('grey16.jp2')).info).toMatchObject({ channels: 1, bitsPerSample: 16, colourSpace: 'grey', maxValues: [65535] });
    expect((await dec('rgb16.j2k')).info).toMatchObject({ channels: 3, bitsPerSample: 16, colourSpace: 'srgb' });
  });

  it('the opj_compress comment is in metadata', async () => {
    expect((await dec('rgb-lrcp.jp2')).info.metadata.comment).toMatch(/OpenJPEG/);
  });
});

describe('synthesised levels (fewer DWT levels than needed, §13 #27)', () => {
  it('a codestream without DWT levels gets two levels made by downsampling by 2^n', async () => {
    const d = await dec('rgb-cprl-nodwt.jp2');
    expect(d.jpeg2000.dwtLevels).toBe(0);
    expect(d.info.levels.map((l) => [l.width, l.height])).toEqual([
      [700, 500],
      [350, 250],
      [175, 125],
    ]);
    for (const level of [1, 2]) {
      const l = d.info.levels[level];
      const raw = await d.readRegion(level, { x: 0, y: 0, width: l.width, height: l.height });
      expect([raw.width, raw.height, raw.channels]).toEqual([l.width, l.height, 3]);
      // Compared with the source reduced by 2^level by libvips: a filtered reduction, not
      // every 2·n-th pixel.
      const want = await sharp(source, { raw: { width: 700, height: 500, channels: 3 } })
        .resize(l.width, l.height, { fit: 'fill', kernel: 'lanczos3' })
        .raw()
        .toBuffer();
      expect(psnr(raw.data, want, 255)).toBeGreaterThan(40);
    }
    // A part of a virtual level equals the same part of the whole virtual level, nearly (the
    // filter sees a little less context at the part's edges).
    const whole = await d.readRegion(1, { x: 0, y: 0, width: 350, height: 250 });
    const part = await d.readRegion(1, { x: 100, y: 100, width: 128, height: 128 });
    const crop = Buffer.alloc(128 * 128 * 3);
    for (let r = 0; r < 128; r++) whole.data.copy(crop, r * 384, ((100 + r) * 350 + 100) * 3, ((100 + r) * 350 + 228) * 3);
    expect(psnr(part.data, crop, 255)).toBeGreaterThan(35);
  });
});

describe('quality layers', () => {
  it('MAX_LAYERS policy: 0 → ceil(L/2) unless asked; −1 → all; n caps', () => {
    expect(effectiveLayers(5, 0, undefined)).toBe(3);
    expect(effectiveLayers(4, 0, undefined)).toBe(2);
    expect(effectiveLayers(1, 0, undefined)).toBe(1);
    expect(effectiveLayers(5, 0, 5)).toBe(5);
    expect(effectiveLayers(5, 0, 9)).toBe(5);
    expect(effectiveLayers(5, -1, undefined)).toBe(5);
    expect(effectiveLayers(5, -1, 2)).toBe(2);
    expect(effectiveLayers(5, 2, undefined)).toBe(2);
    expect(effectiveLayers(5, 2, 4)).toBe(2);
    expect(effectiveLayers(5, 9, undefined)).toBe(5);
    expect(effectiveLayers(5, 0, 0)).toBe(3);
  });

  it('the default (MAX_LAYERS 0) decodes ceil(layers/2), equal to opj_decompress -l 2', async () => {
    const f = fx.files['rgb-lrcp.jp2'];
    const d = (await jpeg2000Decoder.open(f.path)) as Jpeg2000Decoder;
    const rect = { x: 0, y: 0, width: 256, height: 256 };
    const raw = await d.readRegion(0, rect);
    const { image } = await opjDecompress(f.path, fx.dir, { layers: 2, area: areaOf(f, 0, rect), channels: 3, tag: 'default-layers' });
    expect(raw.data.equals(Buffer.from(image.samples))).toBe(true);
    const all = await d.readRegion(0, rect, { layers: 3 });
    expect(all.data.equals(raw.data)).toBe(false);
  });

  it('fewer layers give fewer details', async () => {
    const d = await dec('rgb-lrcp.jp2');
    const rect = { x: 200, y: 100, width: 256, height: 256 };
    const one = await d.readRegion(0, rect, { layers: 1 });
    const two = await d.readRegion(0, rect, { layers: 2 });
    const three = await d.readRegion(0, rect, { layers: 3 });
    const p1 = psnr(one.data, three.data, 255);
    const p2 = psnr(two.data, three.data, 255);
    expect(p1).toBeGreaterThan(20);
    expect(p1).toBeLessThan(p2);
    expect(p2).toBeLessThan(Infinity);
  });
});

describe('bad requests and bad files', () => {
  it('level or rectangle out of range', async () => {
    const d = await dec('rgb-lrcp.jp2');
    await expect(d.readRegion(3, { x: 0, y: 0, width: 1, height: 1 })).rejects.toMatchObject({ code: 'BAD_TILE' });
    await expect(d.readRegion(0, { x: 600, y: 0, width: 200, height: 1 })).rejects.toMatchObject({ code: 'BAD_REGION' });
    await expect(d.readRegion(0, { x: 0, y: 0, width: 0, height: 1 })).rejects.toMatchObject({ code: 'BAD_REGION' });
  });

  it('a truncated file: header ok, missing tiles → CORRUPT_IMAGE without the path; the process lives', async () => {
    const buf = await readFile(fx.files['rgb-tiled-rpcl.jp2'].path);
    const path = join(fx.dir, 'hidden-truncated.jp2');
    await writeFile(path, buf.subarray(0, Math.floor(buf.length * 0.6)));
    const d = (await jpeg2000Decoder.open(path, { maxLayers: -1 })) as Jpeg2000Decoder;
    const err = (await d.readRegion(0, { x: 444, y: 244, width: 256, height: 256 }).catch((e: unknown) => e)) as ImageServerError;
    expect(err).toBeInstanceOf(ImageServerError);
    expect(err.code).toBe('CORRUPT_IMAGE');
    expect(err.message).not.toContain('hidden-truncated');
    expect(err.detail).toContain('hidden-truncated');
    // Still decodes afterwards.
    const ok = await (await dec('rgb-lrcp.jp2')).readRegion(0, { x: 0, y: 0, width: 64, height: 64 });
    expect(ok.width).toBe(64);
  });

  it('a file cut inside the main header cannot be opened', async () => {
    const buf = await readFile(fx.files['rgb-lrcp.jp2'].path);
    const path = join(fx.dir, 'hidden-cut.jp2');
    const jp2c = buf.indexOf(Buffer.from('jp2c', 'latin1'));
    await writeFile(path, buf.subarray(0, jp2c + 40));
    const err = (await jpeg2000Decoder.open(path).catch((e: unknown) => e)) as ImageServerError;
    expect(err).toBeInstanceOf(ImageServerError);
    expect(err.code).toBe('CORRUPT_IMAGE');
    expect(err.message).not.toContain('hidden-cut');
  });

  it('garbage in the packet data: an error or pixels, never a crash', async () => {
    const buf = Buffer.from(await readFile(fx.files['rgb-tiled-rpcl.jp2'].path));
    for (let i = Math.floor(buf.length / 3); i < buf.length - 100; i += 97) buf[i] = 0xff;
    const path = join(fx.dir, 'garbage.jp2');
    await writeFile(path, buf);
    const d = await jpeg2000Decoder.open(path, { maxLayers: -1 });
    const results = await Promise.allSettled([0, 1, 2].map((lvl) => d.readRegion(lvl, { x: 0, y: 0, width: 100, height: 100 })));
    for (const r of results) {
      if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ImageServerError);
      else expect(r.value.width).toBe(100);
    }
  });

  it('a file removed after opening → a clear error', async () => {
    const path = join(fx.dir, 'gone.jp2');
    await copyFile(fx.files['grey8.jp2'].path, path);
    const d = await jpeg2000Decoder.open(path);
    await rm(path);
    await expect(d.readRegion(0, { x: 0, y: 0, width: 10, height: 10 })).rejects.toMatchObject({
      code: 'CORRUPT_IMAGE',
      message: 'Unable to read the JPEG 2000 file',
    });
  });
});

describe('concurrency', () => {
  it('many decodes at once give the same pixels as one at a time', async () => {
    const d = await dec('rgb-tiled-rpcl.jp2');
    const rects: Rect[] = [];
    for (let y = 0; y < 500; y += 128)
      for (let x = 0; x < 700; x += 128) rects.push({ x, y, width: Math.min(128, 700 - x), height: Math.min(128, 500 - y) });
    const serial: Buffer[] = [];
    for (const r of rects) serial.push((await d.readRegion(0, r)).data);
    const parallel = await Promise.all(rects.map((r) => d.readRegion(0, r)));
    parallel.forEach((p, i) => expect(p.data.equals(serial[i])).toBe(true));
  });

  it('the event loop keeps running while decoding', async () => {
    const d = await dec('rgb-pcrl-lossy.jp2');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    await Promise.all(Array.from({ length: 8 }, () => d.readRegion(0, { x: 0, y: 0, width: 700, height: 500 })));
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0);
  });
});

describe('registry', () => {
  it('opens JP2 and J2K by magic bytes and passes MAX_LAYERS', async () => {
    const reg = new DecoderRegistry(undefined, { maxLayers: 1 });
    const d = (await reg.open(fx.files['rgb-tiled-rlcp.j2k'].path)) as Jpeg2000Decoder;
    expect(d.info.format).toBe('jpeg2000');
    const jp2 = await reg.open(fx.files['rgb-lrcp.jp2'].path);
    expect(jp2.info.format).toBe('jpeg2000');
    expect(reg.modules.map((m) => m.name)).toContain('jpeg2000');
    if (nativeBuilt) {
      const f = fx.files['rgb-lrcp.jp2'];
      const rect = { x: 0, y: 0, width: 128, height: 128 };
      const raw = await jp2.readRegion(0, rect);
      const { image } = await opjDecompress(f.path, fx.dir, { layers: 1, area: areaOf(f, 0, rect), channels: 3, tag: 'registry-layers' });
      expect(raw.data.equals(Buffer.from(image.samples))).toBe(true);
      expect(reg.notices()).toEqual([]);
    }
  });
});

describe('YCbCr', () => {
  let ycc: Awaited<ReturnType<typeof makeYccFixtures>>;
  beforeAll(async () => {
    ycc = await makeYccFixtures(fx.dir);
  });

  it('JP2 colr sYCC (EnumCS 18) is converted to RGB exactly as opj_decompress does', async () => {
    const d = (await jpeg2000Decoder.open(ycc.sycc.path, { maxLayers: -1 })) as Jpeg2000Decoder;
    expect(d.info).toMatchObject({ channels: 3, colourSpace: 'srgb' });
    for (const [level, rect] of [
      [0, { x: 100, y: 100, width: 256, height: 256 }],
      [1, { x: 0, y: 0, width: 350, height: 250 }],
    ] as Array<[number, Rect]>) {
      const raw = await d.readRegion(level, rect);
      const { image, command } = await opjDecompress(ycc.sycc.path, fx.dir, {
        reduce: level,
        area: areaOf(ycc.sycc, level, rect),
        channels: 3,
        tag: `sycc-${level}`,
      });
      expect(raw.data.equals(Buffer.from(image.samples)), command).toBe(true);
      // And close to the RGB source (YCbCr rounding only).
      if (level === 0) {
        const want = Buffer.alloc(256 * 256 * 3);
        for (let r = 0; r < 256; r++) source.copy(want, r * 768, ((100 + r) * 700 + 100) * 3, ((100 + r) * 700 + 356) * 3);
        expect(psnr(raw.data, want, 255)).toBeGreaterThan(40);
      }
    }
  });

  it('4:2:0 chroma-subsampled codestream: upsampled and converted, close to opj_decompress', async () => {
    const d = (await jpeg2000Decoder.open(ycc.ycc420.path, { maxLayers: -1 })) as Jpeg2000Decoder;
    expect(d.info).toMatchObject({ width: 700, height: 500, channels: 3, colourSpace: 'srgb' });
    const rect = { x: 0, y: 0, width: 700, height: 500 };
    const raw = await d.readRegion(0, rect);
    const { image } = await opjDecompress(ycc.ycc420.path, fx.dir, { channels: 3, tag: 'ycc420' });
    expect(psnr(raw.data, image.samples, 255)).toBeGreaterThan(40);
    const part = await d.readRegion(0, { x: 301, y: 99, width: 200, height: 150 });
    const crop = Buffer.alloc(200 * 150 * 3);
    for (let r = 0; r < 150; r++) raw.data.copy(crop, r * 600, ((99 + r) * 700 + 301) * 3, ((99 + r) * 700 + 501) * 3);
    expect(part.data.equals(crop)).toBe(true);
    expect(psnr(raw.data, source, 255)).toBeGreaterThan(30);
  });
});

describe('JPX', () => {
  it('a JPX-branded file (ftyp jpx) is served like its JP2', async () => {
    const buf = Buffer.from(await readFile(fx.files['rgb-lrcp.jp2'].path));
    const ftyp = buf.indexOf(Buffer.from('ftyp', 'latin1'));
    buf.write('jpx ', ftyp + 4, 'latin1'); // brand; the compatibility list keeps 'jp2 '
    const path = join(fx.dir, 'branded.jpx');
    await writeFile(path, buf);
    const d = (await jpeg2000Decoder.open(path, { maxLayers: -1 })) as Jpeg2000Decoder;
    expect(d.jpeg2000.kind).toBe('jpx');
    const rect = { x: 123, y: 45, width: 256, height: 256 };
    const a = await d.readRegion(0, rect);
    const b = await (await dec('rgb-lrcp.jp2')).readRegion(0, rect);
    expect(a.data.equals(b.data)).toBe(true);
  });
});

describe('whole-level cache for small levels', () => {
  it('tiles of a small level are crops of one decode, equal to region decodes', async () => {
    const name = 'rgb-tiled-rpcl.jp2';
    const regions = await dec(name);
    const rect = { x: 37, y: 11, width: 200, height: 150 };
    const want = await regions.readRegion(1, rect, { layers: 2 });
    process.env.IIPSRV_J2K_CACHE_LEVEL_PIXELS = String(1024 * 1024);
    try {
      clearLevelCache();
      const d = await dec(name);
      const first = await d.readRegion(1, rect, { layers: 2 });
      expect(first.data.equals(want.data)).toBe(true);
      const t = performance.now();
      const again = await d.readRegion(1, { x: 0, y: 0, width: 256, height: 250 }, { layers: 2 });
      expect(performance.now() - t).toBeLessThan(50);
      expect(again.width).toBe(256);
      // Another layer count is another level.
      const other = await d.readRegion(1, rect, { layers: 1 });
      expect(other.data.equals(first.data)).toBe(false);
      await d.close();
    } finally {
      process.env.IIPSRV_J2K_CACHE_LEVEL_PIXELS = '0';
    }
  });
});
