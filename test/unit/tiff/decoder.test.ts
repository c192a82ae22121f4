// The TIFF decoder (decoders/tiff/index.ts): ImageInfo from each layout, region reads compared
// with the synthetic source, and stored-tile passthrough compared with decoded tiles.

import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageDecoder } from '../../../decoders/decoder.js';
import { readSof, tiffDecoder } from '../../../decoders/tiff/index.js';
import { ImageServerError } from '../../../src/core/errors.js';
import { DEEP_HEIGHT, DEEP_WIDTH, grey16Value, rgb16Value } from '../../fixtures/make-tiffs.js';
import { diffStats, setupFixtures, sourceCrop, sourceHalf, type FixtureSet } from './helpers.js';

const run = promisify(execFile);

let fx: FixtureSet;
const open: ImageDecoder[] = [];
beforeAll(async () => {
  fx = await setupFixtures();
}, 60_000);
afterAll(async () => {
  await Promise.all(open.map((d) => d.close()));
  await fx?.cleanup();
});

async function dec(name: string): Promise<ImageDecoder> {
  const d = await tiffDecoder.open(fx.files[name]);
  open.push(d);
  return d;
}

const PYRAMID = [
  { width: 1100, height: 900, tileWidth: 256, tileHeight: 256 },
  { width: 550, height: 450, tileWidth: 256, tileHeight: 256 },
  { width: 275, height: 225, tileWidth: 256, tileHeight: 256 },
  { width: 137, height: 112, tileWidth: 256, tileHeight: 256 },
];

describe('tiffDecoder.sniff', () => {
  it('accepts the four TIFF magics and nothing else', () => {
    const head = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'latin1'), Buffer.alloc(12)]);
    expect(tiffDecoder.sniff(head('II*\0'))).toBe(true);
    expect(tiffDecoder.sniff(head('MM\0*'))).toBe(true);
    expect(tiffDecoder.sniff(head('II+\0'))).toBe(true);
    expect(tiffDecoder.sniff(head('MM\0+'))).toBe(true);
    expect(tiffDecoder.sniff(head('\x89PNG'))).toBe(false);
    expect(tiffDecoder.sniff(head('\xff\xd8\xff\xe0'))).toBe(false);
    expect(tiffDecoder.sniff(Buffer.from('II'))).toBe(false);
  });
});

describe('ImageInfo', () => {
  it('JPEG pyramid', async () => {
    const d = await dec('jpegPyramid');
    expect(d.info).toMatchObject({
      format: 'tiff',
      width: 1100,
      height: 900,
      levels: PYRAMID,
      channels: 3,
      bitsPerSample: 8,
      sampleFormat: 'uint',
      colourSpace: 'srgb',
      compression: 'jpeg',
      minValues: [0, 0, 0],
      maxValues: [255, 255, 255],
    });
    expect(d.info.resolution?.unit).toBe('in');
    expect(d.info.resolution?.x).toBeCloseTo(25.4, 4);
  });

  it.each([
    ['deflatePyramid', 'deflate'],
    ['bigtiff', 'jpeg'],
    ['bigEndian', 'deflate'],
    ['bigtiffBigEndian', 'deflate'],
    ['subifd', 'jpeg'],
    ['bigtiffSubifd', 'deflate'],
    ['webp', 'webp'],
    ['rgbJpeg', 'jpeg'],
  ])('%s has the four-level pyramid, %s', async (name, compression) => {
    const d = await dec(name);
    expect(d.info.levels).toEqual(PYRAMID);
    expect(d.info.compression).toBe(compression);
    expect(d.info.channels).toBe(3);
  });

  it('non-square tiles: tile height from TileLength', async () => {
    const d = await dec('nonSquare');
    expect(d.info.levels.map((l) => [l.tileWidth, l.tileHeight])).toEqual([
      [256, 128],
      [256, 128],
      [256, 128],
      [256, 128],
    ]);
  });

  it('odd size keeps the file’s own level sizes', async () => {
    const d = await dec('odd');
    expect(d.info.levels.map((l) => [l.width, l.height])).toEqual([
      [1001, 777],
      [500, 388],
      [250, 194],
    ]);
  });

  it('striped file: one level with virtual 256×256 tiles', async () => {
    const d = await dec('striped');
    expect(d.info.levels).toEqual([{ width: 1100, height: 900, tileWidth: 256, tileHeight: 256 }]);
    expect(d.info.compression).toBe('lzw');
    expect(await d.readEncodedTile!(0, 1, 1)).toBeNull();
  });

  it('skips untiled IFDs (SVS-like thumbnail) and same-size pages (stack)', async () => {
    expect((await dec('svsLike')).info.levels.map((l) => l.width)).toEqual([1100, 550]);
    expect((await dec('stack')).info.levels.map((l) => l.width)).toEqual([1100]);
  });

  it('16-bit, float, grey and bilevel sample descriptions', async () => {
    expect((await dec('grey16')).info).toMatchObject({ channels: 1, bitsPerSample: 16, colourSpace: 'grey', maxValues: [65535] });
    expect((await dec('rgb16')).info).toMatchObject({
      channels: 3,
      bitsPerSample: 16,
      colourSpace: 'srgb',
      maxValues: [65535, 65535, 65535],
    });
    expect((await dec('float')).info).toMatchObject({
      channels: 3,
      bitsPerSample: 32,
      sampleFormat: 'float',
      minValues: [0, 0, 0],
      maxValues: [1, 1, 1],
    });
    expect((await dec('greyJpeg')).info).toMatchObject({ channels: 1, bitsPerSample: 8, colourSpace: 'grey' });
    expect((await dec('bilevel')).info).toMatchObject({ channels: 1, bitsPerSample: 1, colourSpace: 'binary', compression: 'ccittfax4' });
  });

  it('metadata by iipsrv names and resolution in cm', async () => {
    const d = await dec('tagged');
    expect(d.info.metadata).toEqual({
      title: 'The Title',
      creator: 'A. Artist',
      rights: '(c) Someone',
      description: 'A description',
    });
    expect(d.info.resolution?.unit).toBe('cm');
    expect(d.info.resolution?.x).toBeCloseTo(118.11, 2);
  });
});

describe('readRegion', () => {
  it.each(['deflatePyramid', 'bigEndian', 'bigtiffBigEndian', 'bigtiffSubifd', 'nonSquare', 'striped'])(
    '%s: a tile and an unaligned 4-tile rect equal the source exactly',
    async (name) => {
      const d = await dec(name);
      for (const r of [
        { x: 256, y: 256, width: 256, height: 256 },
        { x: 200, y: 180, width: 150, height: 120 }, // crosses x=256 and y=256 (and y=128 for 256×128 tiles)
        { x: 1024, y: 768, width: 76, height: 132 }, // bottom-right edge tile
      ]) {
        const img = await d.readRegion(0, r);
        expect([img.width, img.height, img.channels, img.bitsPerSample, img.sampleFormat]).toEqual([r.width, r.height, 3, 8, 'uint']);
        expect(diffStats(img.data, sourceCrop(fx.source, r.x, r.y, r.width, r.height)).max).toBe(0);
      }
    },
  );

  it.each(['jpegPyramid', 'bigtiff', 'subifd', 'rgbJpeg', 'nonSquareJpeg', 'webp'])(
    '%s (lossy): a tile and an unaligned rect are close to the source',
    async (name) => {
      const d = await dec(name);
      for (const r of [
        { x: 256, y: 256, width: 256, height: 256 },
        { x: 200, y: 180, width: 150, height: 120 },
      ]) {
        const img = await d.readRegion(0, r);
        expect([img.width, img.height, img.channels]).toEqual([r.width, r.height, 3]);
        // WebP at quality 90 is a little less faithful than JPEG on this synthetic image.
        expect(diffStats(img.data, sourceCrop(fx.source, r.x, r.y, r.width, r.height)).mean).toBeLessThan(name === 'webp' ? 3 : 2);
      }
    },
  );

  it('a crop from another place differs (the comparison is meaningful)', async () => {
    const d = await dec('jpegPyramid');
    const img = await d.readRegion(0, { x: 256, y: 256, width: 256, height: 256 });
    expect(diffStats(img.data, sourceCrop(fx.source, 0, 256, 256, 256)).mean).toBeGreaterThan(20);
  });

  it.each(['deflatePyramid', 'bigEndian', 'bigtiffSubifd', 'nonSquare'])('%s: level 1 is the 2×2 mean of the source', async (name) => {
    const d = await dec(name);
    const r = { x: 100, y: 90, width: 300, height: 200 };
    const img = await d.readRegion(1, r);
    expect(diffStats(img.data, sourceHalf(fx.source, r.x, r.y, r.width, r.height)).max).toBeLessThanOrEqual(0.5);
  });

  it.each(['jpegPyramid', 'subifd'])('%s: level 1 is close to the 2×2 mean of the source', async (name) => {
    const d = await dec(name);
    const r = { x: 256, y: 0, width: 256, height: 256 };
    const img = await d.readRegion(1, r);
    // Level 1 has twice the detail per pixel, so 4:2:0 JPEG loses a little more (a wrong level
    // or place gives a mean difference above 20).
    expect(diffStats(img.data, sourceHalf(fx.source, r.x, r.y, r.width, r.height)).mean).toBeLessThan(3);
  });

  it('odd size: the bottom-right corner', async () => {
    const d = await dec('odd');
    const r = { x: 990, y: 760, width: 11, height: 17 };
    const img = await d.readRegion(0, r);
    expect(diffStats(img.data, sourceCrop(fx.source, r.x, r.y, r.width, r.height)).max).toBe(0);
    const small = await d.readRegion(2, { x: 0, y: 0, width: 250, height: 194 });
    expect([small.width, small.height]).toEqual([250, 194]);
  });

  it('16-bit grey returns the stored 16-bit values', async () => {
    const d = await dec('grey16');
    const r = { x: 250, y: 240, width: 300, height: 100 };
    const img = await d.readRegion(0, r);
    expect([img.channels, img.bitsPerSample, img.sampleFormat, img.data.length]).toEqual([1, 16, 'uint', 300 * 100 * 2]);
    const a = new Uint16Array(img.data.buffer, img.data.byteOffset, img.data.length / 2);
    for (let y = 0; y < r.height; y += 7)
      for (let x = 0; x < r.width; x += 5) expect(a[y * r.width + x]).toBe(grey16Value(r.x + x, r.y + y));
    expect(a[a.length - 1]).toBe(grey16Value(549, 339));
  });

  it('16-bit RGB returns the stored 16-bit values', async () => {
    const d = await dec('rgb16');
    const r = { x: DEEP_WIDTH - 100, y: DEEP_HEIGHT - 60, width: 100, height: 60 };
    const img = await d.readRegion(0, r);
    expect([img.channels, img.bitsPerSample]).toEqual([3, 16]);
    const a = new Uint16Array(img.data.buffer, img.data.byteOffset, img.data.length / 2);
    for (let y = 0; y < r.height; y += 3) {
      for (let x = 0; x < r.width; x += 3) {
        const i = (y * r.width + x) * 3;
        expect([a[i], a[i + 1], a[i + 2]]).toEqual(rgb16Value(r.x + x, r.y + y));
      }
    }
  });

  it('float returns the stored floats (no scRGB gamma)', async () => {
    const d = await dec('float');
    const r = { x: 300, y: 200, width: 40, height: 30 };
    const img = await d.readRegion(0, r);
    expect([img.channels, img.bitsPerSample, img.sampleFormat]).toEqual([3, 32, 'float']);
    const f = new Float32Array(img.data.buffer, img.data.byteOffset, img.data.length / 4);
    const expected = Array.from(sourceCrop(fx.source, r.x, r.y, r.width, r.height), (v) => v / 255);
    expect(diffStats(f, expected).max).toBeLessThan(1e-6);
  });

  it('grey float and grey uint32 return their stored values as float', async () => {
    const r = { x: 250, y: 200, width: 100, height: 50 };
    const red = Array.from(sourceCrop(fx.source, r.x, r.y, r.width, r.height).filter((_, i) => i % 3 === 0));
    const f = await (await dec('greyFloat')).readRegion(0, r);
    expect([f.channels, f.bitsPerSample, f.sampleFormat]).toEqual([1, 32, 'float']);
    const fv = new Float32Array(f.data.buffer, f.data.byteOffset, f.data.length / 4);
    expect(
      diffStats(
        fv,
        red.map((v) => 0.5 * v + 0.25),
      ).max,
    ).toBe(0);
    const u = await (await dec('greyU32')).readRegion(0, r);
    expect([u.channels, u.bitsPerSample, u.sampleFormat]).toEqual([1, 32, 'float']);
    const uv = new Float32Array(u.data.buffer, u.data.byteOffset, u.data.length / 4);
    expect(
      diffStats(
        uv,
        red.map((v) => v * 1_000_000),
      ).max,
    ).toBe(0);
    expect((await dec('greyU32')).info).toMatchObject({ bitsPerSample: 32, sampleFormat: 'uint', maxValues: [4294967295] });
  });

  it('signed integer samples are refused up front as UNSUPPORTED_IMAGE', async () => {
    const err = await tiffDecoder.open(fx.files.int16).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageServerError);
    expect((err as ImageServerError).code).toBe('UNSUPPORTED_IMAGE');
    expect((err as ImageServerError).message).not.toContain(fx.dir);
  });

  it('grey JPEG and bilevel return one channel', async () => {
    const g = await (await dec('greyJpeg')).readRegion(0, { x: 0, y: 0, width: 64, height: 64 });
    expect([g.channels, g.data.length]).toEqual([1, 64 * 64]);
    // Spans the black triangle and white background: 1-bit samples come unpacked to 0/255.
    const b = await (await dec('bilevel')).readRegion(0, { x: 0, y: 500, width: 600, height: 400 });
    expect([b.channels, b.bitsPerSample]).toEqual([1, 8]);
    expect(new Set(b.data)).toEqual(new Set([0, 255]));
  });

  it('rejects out-of-range levels and rects', async () => {
    const d = await dec('deflatePyramid');
    await expect(d.readRegion(4, { x: 0, y: 0, width: 1, height: 1 })).rejects.toMatchObject({ code: 'BAD_TILE' });
    await expect(d.readRegion(1, { x: 500, y: 0, width: 51, height: 1 })).rejects.toMatchObject({ code: 'BAD_REGION' });
    await expect(d.readRegion(0, { x: 0, y: 0, width: 0, height: 1 })).rejects.toMatchObject({ code: 'BAD_REGION' });
  });

  it('a corrupt tile is a CORRUPT_IMAGE error without the path in its message', async () => {
    const d = await dec('badTile');
    const err = await d.readRegion(0, { x: 0, y: 0, width: 16, height: 16 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageServerError);
    expect((err as ImageServerError).code).toBe('CORRUPT_IMAGE');
    expect((err as ImageServerError).message).not.toContain(fx.dir);
    // Other tiles still decode.
    const ok = await d.readRegion(0, { x: 256, y: 256, width: 16, height: 16 });
    expect(diffStats(ok.data, sourceCrop(fx.source, 256, 256, 16, 16)).max).toBe(0);
  });
});

describe('readEncodedTile', () => {
  /** Decodes a passed-through tile and compares it with readRegion of the same tile. */
  async function checkPassthrough(name: string, level: number, col: number, row: number, channels = 3): Promise<Buffer> {
    const d = await dec(name);
    const lv = d.info.levels[level];
    const tile = await d.readEncodedTile!(level, col, row);
    expect(tile?.format).toBe('jpg');
    const data = tile!.data;
    expect([data[0], data[1], data[2]]).toEqual([0xff, 0xd8, 0xff]);
    expect([data[data.length - 2], data[data.length - 1]]).toEqual([0xff, 0xd9]);
    const decoded = await sharp(data)
      .toColourspace(channels === 1 ? 'b-w' : 'srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([decoded.info.width, decoded.info.height, decoded.info.channels]).toEqual([lv.tileWidth, lv.tileHeight, channels]);
    const region = await d.readRegion(level, { x: col * lv.tileWidth, y: row * lv.tileHeight, width: lv.tileWidth, height: lv.tileHeight });
    expect(diffStats(decoded.data, region.data).mean).toBeLessThan(1);
    return data;
  }

  it('JPEG pyramid (YCbCr): interior tile is a standalone JPEG equal to the decoded tile', async () => {
    const data = await checkPassthrough('jpegPyramid', 0, 1, 1);
    expect(data.includes(Buffer.from('Adobe'))).toBe(false);
    expect([data[2], data[3]]).toEqual([0xff, 0xdb]); // tables first, no JFIF APP0 (as iipsrv)
  });

  it('JPEG pyramid: other interior tiles and level 1', async () => {
    await checkPassthrough('jpegPyramid', 0, 3, 2);
    await checkPassthrough('jpegPyramid', 1, 0, 0);
    await checkPassthrough('jpegPyramid', 1, 1, 0);
  });

  it('BigTIFF (RGB photometric): passthrough with an Adobe transform-0 marker', async () => {
    const data = await checkPassthrough('bigtiff', 0, 2, 1);
    expect(data.subarray(2, 2 + 16)).toEqual(
      Buffer.from([0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00]),
    );
    expect(readSof(data)?.components).toEqual([0x11, 0x11, 0x11]);
  });

  it('RGB-JPEG written by tiffcp, SubIFD level and non-square tiles pass through', async () => {
    await checkPassthrough('rgbJpeg', 0, 1, 2);
    await checkPassthrough('subifd', 1, 1, 0);
    const data = await checkPassthrough('nonSquareJpeg', 0, 2, 5);
    expect(readSof(data)).toMatchObject({ width: 256, height: 128 });
  });

  it('grey JPEG passes through as a one-component JPEG', async () => {
    const data = await checkPassthrough('greyJpeg', 0, 1, 1, 1);
    expect(readSof(data)?.components).toHaveLength(1);
  });

  it('djpeg accepts the spliced streams and decodes the same pixels', async () => {
    for (const name of ['jpegPyramid', 'bigtiff']) {
      const d = await dec(name);
      const tile = (await d.readEncodedTile!(0, 1, 1))!;
      const file = join(fx.dir, `passthrough-${name}.jpg`);
      await writeFile(file, tile.data);
      const { stdout } = await run('djpeg', ['-ppm', file], { encoding: 'buffer', maxBuffer: 1 << 24 });
      // P6\n256 256\n255\n + pixels
      const header = 'P6\n256 256\n255\n';
      expect(stdout.subarray(0, header.length).toString('latin1')).toBe(header);
      const region = await d.readRegion(0, { x: 256, y: 256, width: 256, height: 256 });
      expect(diffStats(stdout.subarray(header.length), region.data).mean).toBeLessThan(1);
    }
  });

  it('edge tiles, deflate and striped files give null', async () => {
    const d = await dec('jpegPyramid');
    expect(await d.readEncodedTile!(0, 4, 0)).toBeNull(); // right edge (1100 = 4×256 + 76)
    expect(await d.readEncodedTile!(0, 0, 3)).toBeNull(); // bottom edge (900 = 3×256 + 132)
    expect(await d.readEncodedTile!(0, 4, 3)).toBeNull();
    expect(await d.readEncodedTile!(3, 0, 0)).toBeNull(); // 137×112 in a 256² tile
    expect(await (await dec('deflatePyramid')).readEncodedTile!(0, 1, 1)).toBeNull();
    expect(await (await dec('grey16')).readEncodedTile!(0, 0, 0)).toBeNull();
    expect(await (await dec('striped')).readEncodedTile!(0, 0, 0)).toBeNull();
  });

  it('an exact-multiple level passes its last column and row through', async () => {
    // jpeg-pyramid level 0 cropped to 1024×768 (4×3 tiles, no partial tiles).
    const path = join(fx.dir, 'exact.tif');
    await sharp(fx.files.source)
      .extract({ left: 0, top: 0, width: 1024, height: 768 })
      .tiff({ tile: true, compression: 'jpeg', quality: 85, tileWidth: 256, tileHeight: 256 })
      .toFile(path);
    const d = await tiffDecoder.open(path);
    open.push(d);
    expect((await d.readEncodedTile!(0, 3, 2))?.format).toBe('jpg');
  });

  it('out-of-range tiles are BAD_TILE', async () => {
    const d = await dec('jpegPyramid');
    await expect(d.readEncodedTile!(0, 5, 0)).rejects.toMatchObject({ code: 'BAD_TILE' });
    await expect(d.readEncodedTile!(9, 0, 0)).rejects.toMatchObject({ code: 'BAD_TILE' });
  });

  it('WebP tiles pass through as WebP files identical to the decoded tile', async () => {
    const d = await dec('webp');
    const tile = await d.readEncodedTile!(0, 1, 1);
    expect(tile?.format).toBe('webp');
    expect(tile!.data.toString('latin1', 0, 4)).toBe('RIFF');
    const decoded = await sharp(tile!.data).raw().toBuffer({ resolveWithObject: true });
    expect([decoded.info.width, decoded.info.height]).toEqual([256, 256]);
    const region = await d.readRegion(0, { x: 256, y: 256, width: 256, height: 256 });
    expect(diffStats(decoded.data, region.data).mean).toBeLessThan(1);
    expect(await d.readEncodedTile!(0, 4, 1)).toBeNull();
    // Asked for another format, nothing is read.
    expect(await d.readEncodedTile!(0, 1, 1, 'jpg')).toBeNull();
    expect((await d.readEncodedTile!(0, 1, 1, 'webp'))?.format).toBe('webp');
    expect(await (await dec('jpegPyramid')).readEncodedTile!(0, 1, 1, 'webp')).toBeNull();
  });
});

describe('regionPipeline (one libvips pipeline for plain 8-bit views)', () => {
  it('yields the same samples as readRegion for 8-bit layouts', async () => {
    for (const name of ['jpegPyramid', 'deflatePyramid']) {
      const d = await dec(name);
      const rect = { x: 200, y: 130, width: 300, height: 260 };
      const pipe = await d.regionPipeline!(1, rect);
      expect(pipe).not.toBeNull();
      const { data, info } = await pipe!.image.raw().toBuffer({ resolveWithObject: true });
      pipe!.release?.();
      const region = await d.readRegion(1, rect);
      expect([info.width, info.height, info.channels]).toEqual([region.width, region.height, region.channels]);
      expect(diffStats(data, region.data).max).toBe(0);
    }
  });

  it('declines layouts whose samples need decoding by hand, and rectangles outside the level', async () => {
    expect(await (await dec('grey16')).regionPipeline!(0, { x: 0, y: 0, width: 10, height: 10 })).toBeNull();
    expect((await dec('jpegPyramid')).regionPipeline!(3, { x: 100, y: 100, width: 100, height: 100 })).toBeNull();
  });
});
