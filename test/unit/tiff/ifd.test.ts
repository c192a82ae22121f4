// The lazy TIFF structure reader (decoders/tiff/ifd.ts) on every fixture layout, cross-checked
// against libtiff's own tiffdump/tiffinfo, plus its guards against broken files.

import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Tag, TiffFile } from '../../../decoders/tiff/ifd.js';
import { ImageServerError } from '../../../src/core/errors.js';
import { tiffdumpArray } from '../../fixtures/make-tiffs.js';
import { setupFixtures, type FixtureSet } from './helpers.js';

const run = promisify(execFile);

let fx: FixtureSet;
beforeAll(async () => {
  fx = await setupFixtures();
}, 60_000);
afterAll(async () => {
  await fx?.cleanup();
});

const PYRAMID_SIZES = [
  [1100, 900],
  [550, 450],
  [275, 225],
  [137, 112],
];

interface Expect {
  fixture: string;
  little: boolean;
  big: boolean;
  sizes: number[][];
  tile: [number, number] | null;
  compression: number;
  photometric: number;
  bits: number[];
  sampleFormat?: number[];
}

const LAYOUTS: Expect[] = [
  {
    fixture: 'jpegPyramid',
    little: true,
    big: false,
    sizes: PYRAMID_SIZES,
    tile: [256, 256],
    compression: 7,
    photometric: 6,
    bits: [8, 8, 8],
  },
  {
    fixture: 'deflatePyramid',
    little: true,
    big: false,
    sizes: PYRAMID_SIZES,
    tile: [256, 256],
    compression: 8,
    photometric: 2,
    bits: [8, 8, 8],
  },
  { fixture: 'bigtiff', little: true, big: true, sizes: PYRAMID_SIZES, tile: [256, 256], compression: 7, photometric: 2, bits: [8, 8, 8] },
  {
    fixture: 'bigEndian',
    little: false,
    big: false,
    sizes: PYRAMID_SIZES,
    tile: [256, 256],
    compression: 8,
    photometric: 2,
    bits: [8, 8, 8],
  },
  {
    fixture: 'bigtiffBigEndian',
    little: false,
    big: true,
    sizes: PYRAMID_SIZES,
    tile: [256, 256],
    compression: 8,
    photometric: 2,
    bits: [8, 8, 8],
  },
  { fixture: 'subifd', little: true, big: false, sizes: [[1100, 900]], tile: [256, 256], compression: 7, photometric: 6, bits: [8, 8, 8] },
  {
    fixture: 'bigtiffSubifd',
    little: true,
    big: true,
    sizes: [[1100, 900]],
    tile: [256, 256],
    compression: 8,
    photometric: 2,
    bits: [8, 8, 8],
  },
  {
    fixture: 'nonSquare',
    little: true,
    big: false,
    sizes: PYRAMID_SIZES,
    tile: [256, 128],
    compression: 8,
    photometric: 2,
    bits: [8, 8, 8],
  },
  {
    fixture: 'odd',
    little: true,
    big: false,
    sizes: [
      [1001, 777],
      [500, 388],
      [250, 194],
    ],
    tile: [256, 256],
    compression: 8,
    photometric: 2,
    bits: [8, 8, 8],
  },
  { fixture: 'striped', little: true, big: false, sizes: [[1100, 900]], tile: null, compression: 5, photometric: 2, bits: [8, 8, 8] },
  {
    fixture: 'grey16',
    little: true,
    big: false,
    sizes: [
      [600, 500],
      [300, 250],
      [150, 125],
    ],
    tile: [256, 256],
    compression: 8,
    photometric: 1,
    bits: [16],
  },
  { fixture: 'rgb16', little: true, big: false, sizes: [[600, 500]], tile: [256, 256], compression: 8, photometric: 2, bits: [16, 16, 16] },
  {
    fixture: 'float',
    little: true,
    big: false,
    sizes: [[1100, 900]],
    tile: [256, 256],
    compression: 8,
    photometric: 2,
    bits: [32, 32, 32],
    sampleFormat: [3, 3, 3],
  },
  {
    fixture: 'greyFloat',
    little: true,
    big: false,
    sizes: [[1100, 900]],
    tile: [256, 256],
    compression: 1,
    photometric: 1,
    bits: [32],
    sampleFormat: [3],
  },
  { fixture: 'greyU32', little: true, big: false, sizes: [[1100, 900]], tile: [256, 256], compression: 1, photometric: 1, bits: [32] },
  {
    fixture: 'int16',
    little: true,
    big: false,
    sizes: [[1100, 900]],
    tile: [256, 256],
    compression: 1,
    photometric: 1,
    bits: [16],
    sampleFormat: [2],
  },
  {
    fixture: 'webp',
    little: true,
    big: false,
    sizes: PYRAMID_SIZES,
    tile: [256, 256],
    compression: 50001,
    photometric: 2,
    bits: [8, 8, 8],
  },
  { fixture: 'greyJpeg', little: true, big: false, sizes: PYRAMID_SIZES, tile: [256, 256], compression: 7, photometric: 1, bits: [8] },
  { fixture: 'bilevel', little: true, big: false, sizes: [[1100, 900]], tile: [256, 256], compression: 4, photometric: 1, bits: [1] },
];

describe('TiffFile on every layout', () => {
  it.each(LAYOUTS)('$fixture: header, IFD chain, tags', async (e) => {
    const t = await TiffFile.open(fx.files[e.fixture]);
    try {
      expect(t.littleEndian).toBe(e.little);
      expect(t.bigTiff).toBe(e.big);
      expect(t.ifds.map((d) => [d.width, d.height])).toEqual(e.sizes);
      for (const d of t.ifds) {
        expect(d.compression).toBe(e.compression);
        expect(d.photometric).toBe(e.photometric);
        expect(d.bitsPerSample).toEqual(e.bits);
        expect(d.samplesPerPixel).toBe(e.bits.length);
        expect(d.sampleFormat).toEqual(e.sampleFormat ?? e.bits.map(() => 1));
        expect(d.planarConfig).toBe(1);
        if (e.tile) {
          expect(d.isTiled).toBe(true);
          expect([d.tileWidth, d.tileHeight]).toEqual(e.tile);
          expect(d.tilesAcross).toBe(Math.ceil(d.width / e.tile[0]));
          expect(d.tilesDown).toBe(Math.ceil(d.height / e.tile[1]));
        } else {
          expect(d.isTiled).toBe(false);
          expect(d.tileWidth).toBeUndefined();
        }
      }
      // Reduced levels of a classic pyramid are flagged as such.
      t.ifds.slice(1).forEach((d) => expect(d.newSubfileType & 1).toBe(1));
    } finally {
      await t.close();
    }
  });

  it.each(LAYOUTS.map((e) => e.fixture))('%s: tile/strip locations equal tiffdump, first and last IFD', async (name) => {
    const path = fx.files[name];
    const t = await TiffFile.open(path);
    try {
      for (const dir of [0, t.ifds.length - 1]) {
        const d = t.ifds[dir];
        const [offName, lenName] = d.isTiled ? ['TileOffsets', 'TileByteCounts'] : ['StripOffsets', 'StripByteCounts'];
        const offsets = await tiffdumpArray(path, dir, offName);
        const lengths = await tiffdumpArray(path, dir, lenName);
        expect(d.tileCount).toBe(offsets.length);
        for (let i = 0; i < d.tileCount; i++) {
          expect(await d.tileLocation(i)).toEqual({ offset: offsets[i], length: lengths[i] });
        }
      }
    } finally {
      await t.close();
    }
  });

  it('reads non-square tile sizes from TileWidth and TileLength (iipsrv bug #1)', async () => {
    const t = await TiffFile.open(fx.files.nonSquare);
    const d = t.ifds[0];
    expect(d.entries.get(Tag.TileWidth)).toBeDefined();
    expect([d.tileWidth, d.tileHeight, d.tilesAcross, d.tilesDown, d.tileCount]).toEqual([256, 128, 5, 8, 40]);
    await t.close();
  });

  it('reads strips of an untiled file', async () => {
    const t = await TiffFile.open(fx.files.striped);
    const d = t.ifds[0];
    expect([d.isTiled, d.rowsPerStrip, d.tilesAcross, d.tilesDown, d.tileCount]).toEqual([false, 256, 1, 4, 4]);
    await t.close();
  });

  it.each(['jpegPyramid', 'bigtiff', 'subifd', 'greyJpeg', 'nonSquareJpeg', 'rgbJpeg'])(
    '%s: JPEGTables length equals tiffinfo and every tile is a JPEG stream',
    async (name) => {
      const path = fx.files[name];
      const { stdout } = await run('tiffinfo', [path]);
      const tiffinfoLengths = [...stdout.matchAll(/JPEG Tables: \((\d+) bytes\)/g)].map((m) => Number(m[1]));
      const t = await TiffFile.open(path);
      try {
        const ifds = [...t.ifds, ...(await t.subIfds(t.ifds[0]))];
        const lengths: number[] = [];
        for (const d of ifds) {
          const tables = await d.jpegTables();
          expect(tables).toBeDefined();
          lengths.push(tables!.length);
          expect(tables!.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
          expect(tables!.subarray(-2)).toEqual(Buffer.from([0xff, 0xd9]));
          for (let i = 0; i < d.tileCount; i++) {
            const loc = await d.tileLocation(i);
            expect(loc.offset + loc.length).toBeLessThanOrEqual(t.size);
            const tile = await d.readTile(i);
            expect(tile.length).toBe(loc.length);
            expect([tile[0], tile[1]]).toEqual([0xff, 0xd8]);
            expect([tile[tile.length - 2], tile[tile.length - 1]]).toEqual([0xff, 0xd9]);
          }
        }
        // tiffinfo prints main-chain IFDs and (for SubIFD files) the SubIFDs too.
        expect(lengths.length).toBeGreaterThan(0);
        expect(lengths.every((n) => n > 0)).toBe(true);
        expect(tiffinfoLengths.slice(0, lengths.length)).toEqual(lengths);
      } finally {
        await t.close();
      }
    },
  );

  it.each(['subifd', 'bigtiffSubifd'])('%s: SubIFD offsets equal tiffdump, levels are the SubIFDs', async (name) => {
    const path = fx.files[name];
    const t = await TiffFile.open(path);
    try {
      expect(t.ifds).toHaveLength(1);
      expect(t.ifds[0].subIfdOffsets).toEqual(await tiffdumpArray(path, 0, 'SubIFD'));
      const subs = await t.subIfds(t.ifds[0]);
      expect(subs.map((d) => [d.width, d.height])).toEqual(PYRAMID_SIZES.slice(1));
      for (const d of subs) {
        expect(d.newSubfileType & 1).toBe(1);
        expect([d.tileWidth, d.tileHeight]).toEqual([256, 256]);
        const loc = await d.tileLocation(d.tileCount - 1);
        expect(loc.length).toBeGreaterThan(0);
        expect(loc.offset + loc.length).toBeLessThanOrEqual(t.size);
      }
      // Cached: the same objects come back.
      expect(await t.subIfds(t.ifds[0])).toBe(subs);
    } finally {
      await t.close();
    }
  });

  it('reads text tags and resolution', async () => {
    const t = await TiffFile.open(fx.files.tagged);
    const d = t.ifds[0];
    expect(await d.textTags()).toEqual({
      artist: 'A. Artist',
      copyright: '(c) Someone',
      documentName: 'The Title',
      imageDescription: 'A description',
    });
    expect(await d.text(Tag.Artist)).toBe('A. Artist');
    expect(await d.text(Tag.Make)).toBeUndefined();
    expect(d.resolutionUnit).toBe(3);
    expect(d.xResolution).toBeCloseTo(118.11, 2);
    expect(d.yResolution).toBeCloseTo(118.11, 2);
    await t.close();
  });

  it('is lazy: opening a pyramid reads a few KB and no tile arrays', async () => {
    const spy = vi.spyOn(TiffFile.prototype, 'read');
    try {
      const t = await TiffFile.open(fx.files.jpegPyramid);
      const bytes = spy.mock.calls.reduce((n, [, len]) => n + len, 0);
      expect(bytes).toBeLessThan(16 * 1024);
      const tileOffsets = t.ifds[0].entries.get(Tag.TileOffsets)!;
      expect(tileOffsets.inline).toBeNull();
      const readOffsets = spy.mock.calls.map(([off]) => off);
      expect(readOffsets).not.toContain(tileOffsets.valueOffset);
      // First use loads it.
      await t.ifds[0].tileLocation(0);
      expect(
        spy.mock.calls.some(
          ([off, len]) => off <= tileOffsets.valueOffset && off + len >= tileOffsets.valueOffset + tileOffsets.byteLength,
        ),
      ).toBe(true);
      await t.close();
    } finally {
      spy.mockRestore();
    }
  });
});

/** A minimal little-endian classic TIFF with one IFD at offset 8 holding `entries`. */
function buildTiff(entries: [tag: number, type: number, count: number, value: number][], next = 0, pad = 64): Buffer {
  const b = Buffer.alloc(8 + 2 + entries.length * 12 + 4 + pad);
  b.write('II*\0', 0, 'latin1');
  b.writeUInt32LE(8, 4);
  b.writeUInt16LE(entries.length, 8);
  entries.forEach(([tag, type, count, value], i) => {
    const o = 10 + i * 12;
    b.writeUInt16LE(tag, o);
    b.writeUInt16LE(type, o + 2);
    b.writeUInt32LE(count, o + 4);
    if (type === 3 && count === 1) b.writeUInt16LE(value, o + 8);
    else b.writeUInt32LE(value, o + 8);
  });
  b.writeUInt32LE(next, 10 + entries.length * 12);
  return b;
}

describe('TiffFile guards', () => {
  const expectCorrupt = async (path: string, reason: RegExp): Promise<void> => {
    const err = await TiffFile.open(path).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ImageServerError);
    const e = err as ImageServerError;
    expect(e.code).toBe('CORRUPT_IMAGE');
    expect(e.message).toMatch(reason);
    expect(e.message).not.toContain(fx.dir);
    expect(e.detail).toContain(path);
  };

  it('rejects an IFD loop', () => expectCorrupt(fx.files.loop, /loops/));
  it('rejects an IFD offset beyond the end of the file', () => expectCorrupt(fx.files.badOffset, /beyond end of file/));
  it('rejects a truncated file', () => expectCorrupt(fx.files.truncated, /beyond end of file/));
  it('rejects a file that is not a TIFF', () => expectCorrupt(fx.files.source, /byte order|not a TIFF/));

  it('rejects an absurd entry count', async () => {
    const b = buildTiff([[256, 3, 1, 10]]);
    b.writeUInt16LE(4000, 8);
    const path = join(fx.dir, 'absurd-entries.tif');
    await writeFile(path, b);
    await expectCorrupt(path, /IFD beyond end of file/);
  });

  it('rejects an absurd value count', async () => {
    const b = buildTiff([
      [256, 3, 1, 10],
      [257, 3, 1, 10],
      [258, 3, 0x40000000, 100],
    ]);
    const path = join(fx.dir, 'absurd-count.tif');
    await writeFile(path, b);
    await expectCorrupt(path, /too large/);
  });

  it('rejects a value beyond the end of the file', async () => {
    const b = buildTiff([
      [256, 3, 1, 10],
      [257, 3, 1, 10],
      [258, 3, 3, 100000],
    ]);
    const path = join(fx.dir, 'value-beyond.tif');
    await writeFile(path, b);
    await expectCorrupt(path, /beyond end of file/);
  });

  it('reports tile data beyond the end of the file on use, not on open', async () => {
    const b = buildTiff([
      [256, 3, 1, 10],
      [257, 3, 1, 10],
      [273, 4, 1, 1000],
      [279, 4, 1, 100],
    ]);
    const path = join(fx.dir, 'strip-beyond.tif');
    await writeFile(path, b);
    const t = await TiffFile.open(path);
    expect(t.ifds[0].tileCount).toBe(1);
    await expect(t.ifds[0].tileLocation(0)).rejects.toMatchObject({ code: 'CORRUPT_IMAGE' });
    await expect(t.ifds[0].tileLocation(1)).rejects.toMatchObject({ code: 'BAD_TILE' });
    await t.close();
  });

  it('rejects a missing image size', async () => {
    const path = join(fx.dir, 'no-size.tif');
    await writeFile(path, buildTiff([[259, 3, 1, 1]]));
    await expectCorrupt(path, /image size/);
  });
});
