// Decoded tile blocks (decoders/tiff/tile-blocks.ts), the row copier (decoders/copy-rows.ts) and
// the sample pool (decoders/sample-pool.ts): regions served from cached blocks hold exactly the
// samples a fresh decode gives, tiles are decoded once, handed-out samples never alias the cache,
// and through the TIFF decoder the cached and uncached paths agree on real pyramids.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageDecoder, RawImage } from '../../../decoders/decoder.js';
import { copyRows } from '../../../decoders/copy-rows.js';
import { loadNativeAddon } from '../../../decoders/jpeg2000/native.js';
import type { DecodedLevel } from '../../../decoders/level-cache.js';
import { borrow, giveBack } from '../../../decoders/sample-pool.js';
import { clearTileCache, tiffDecoder } from '../../../decoders/tiff/index.js';
import { TileBlocks, type LevelGrid } from '../../../decoders/tiff/tile-blocks.js';
import type { Rect } from '../../../src/core/view.js';
import { setupFixtures, type FixtureSet } from './helpers.js';

/** A synthetic level whose sample at (x, y, band) is a known function. */
const GRID: LevelGrid = { level: 2, width: 1000, height: 700, tileWidth: 128, tileHeight: 64 };
const value = (x: number, y: number, b: number): number => (x * 7 + y * 13 + b * 101) & 255;

function expected(rect: Rect, ch = 3): Buffer {
  const out = Buffer.alloc(rect.width * rect.height * ch);
  for (let y = 0; y < rect.height; y++)
    for (let x = 0; x < rect.width; x++) for (let b = 0; b < ch; b++) out[(y * rect.width + x) * ch + b] = value(rect.x + x, rect.y + y, b);
  return out;
}

function counter(): { decode: (r: Rect) => Promise<DecodedLevel>; calls: Rect[] } {
  const calls: Rect[] = [];
  return {
    calls,
    decode: async (r) => {
      calls.push(r);
      return { data: expected(r), width: r.width, height: r.height, channels: 3, bits: 8 };
    },
  };
}

async function samples(blocks: TileBlocks, rect: Rect, decode: (r: Rect) => Promise<DecodedLevel>): Promise<Buffer> {
  const got = await blocks.region(GRID, rect, decode);
  if (got.assembled) return got.assembled;
  const b = got.block;
  const out = Buffer.alloc(rect.width * rect.height * 3);
  for (let y = 0; y < rect.height; y++) {
    const from = ((rect.y - b.y + y) * b.width + (rect.x - b.x)) * 3;
    b.data.copy(out, y * rect.width * 3, from, from + rect.width * 3);
  }
  return out;
}

describe('TileBlocks', () => {
  it('decodes the tile-aligned rectangle of the missing tiles once, then serves from it', async () => {
    const blocks = new TileBlocks();
    const { decode, calls } = counter();
    const a = { x: 130, y: 70, width: 300, height: 100 };
    expect((await samples(blocks, a, decode)).equals(expected(a))).toBe(true);
    // Tiles 1–3 across, 1–2 down: one decode of exactly those tiles.
    expect(calls).toEqual([{ x: 128, y: 64, width: 384, height: 128 }]);
    // A region inside the same tiles: no decode, and no copy (the cached block itself).
    const inside = { x: 140, y: 100, width: 200, height: 60 };
    const got = await blocks.region(GRID, inside, decode);
    expect(got.block).toBeDefined();
    expect((await samples(blocks, inside, decode)).equals(expected(inside))).toBe(true);
    expect(calls.length).toBe(1);
    blocks.clear();
  });

  it('assembles regions over several blocks and decodes only the missing tiles', async () => {
    const blocks = new TileBlocks();
    const { decode, calls } = counter();
    await samples(blocks, { x: 0, y: 0, width: 256, height: 128 }, decode); // tiles (0–1, 0–1)
    await samples(blocks, { x: 512, y: 0, width: 128, height: 64 }, decode); // tile (4, 0)
    calls.length = 0;
    const r = { x: 100, y: 10, width: 500, height: 100 }; // tiles 0–4 across, 0–1 down
    const out = await blocks.region(GRID, r, decode);
    expect(out.assembled).toBeDefined();
    expect(out.assembled!.equals(expected(r))).toBe(true);
    // Missing: (2–3, 0–1) and (4, 1): one rectangle, tiles 2–4 × 0–1.
    expect(calls).toEqual([{ x: 256, y: 0, width: 384, height: 128 }]);
    blocks.clear();
  });

  it('handles the level edges (partial tiles) and many random regions exactly', async () => {
    const blocks = new TileBlocks();
    const { decode } = counter();
    let seed = 5;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed % n;
    };
    for (let i = 0; i < 60; i++) {
      const w = 1 + rnd(400);
      const h = 1 + rnd(300);
      const r = { x: rnd(GRID.width - w + 1), y: rnd(GRID.height - h + 1), width: w, height: h };
      expect((await samples(blocks, r, decode)).equals(expected(r)), JSON.stringify(r)).toBe(true);
    }
    const corner = { x: GRID.width - 37, y: GRID.height - 21, width: 37, height: 21 };
    expect((await samples(blocks, corner, decode)).equals(expected(corner))).toBe(true);
    blocks.clear();
  });

  it('concurrent regions over the same missing tiles share one decode', async () => {
    const blocks = new TileBlocks();
    const { decode, calls } = counter();
    const slow = async (r: Rect): Promise<DecodedLevel> => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return decode(r);
    };
    const a = { x: 300, y: 200, width: 200, height: 100 };
    const b = { x: 320, y: 210, width: 150, height: 60 }; // inside a's tiles
    const [ra, rb] = await Promise.all([blocks.region(GRID, a, slow), blocks.region(GRID, b, slow)]);
    expect(calls.length).toBe(1);
    expect(ra.block).toBeDefined();
    expect(rb.block).toBe(ra.block);
    expect((await samples(blocks, b, slow)).equals(expected(b))).toBe(true);
    // A failed decode is not shared forever: the next region decodes again.
    const failing = async (): Promise<DecodedLevel> => {
      throw new Error('disk on fire');
    };
    const c = { x: 0, y: 600, width: 100, height: 50 };
    await expect(blocks.region(GRID, c, failing)).rejects.toThrow('disk on fire');
    expect((await samples(blocks, c, decode)).equals(expected(c))).toBe(true);
    blocks.clear();
  });

  it('hands out copies: changing them does not change the cache', async () => {
    const blocks = new TileBlocks();
    const { decode, calls } = counter();
    const r = { x: 10, y: 10, width: 50, height: 40 };
    const first = await blocks.copy(GRID, r, decode);
    first.data.fill(0);
    const again = await blocks.copy(GRID, r, decode);
    expect(again.data.equals(expected(r))).toBe(true);
    expect(calls.length).toBe(1);
    blocks.clear();
  });
});

describe('copyRows', () => {
  const src = Buffer.from(Array.from({ length: 40 * 30 }, (_, i) => i & 255));
  const js = (dst: Buffer): void => {
    for (let r = 0; r < 7; r++) src.copy(dst, 5 + r * 20, 43 + r * 40, 43 + r * 40 + 11);
  };
  it('copies a rectangle of rows like a row-by-row copy (native addon and fallback)', () => {
    const want = Buffer.alloc(200);
    js(want);
    const got = Buffer.alloc(200);
    copyRows(got, 5, 20, src, 43, 40, 11, 7);
    expect(got.equals(want)).toBe(true);
  });

  it('the native addon refuses rectangles outside either buffer', () => {
    const native = loadNativeAddon().addon?.copyRows;
    expect(native, 'the addon is built by npm install').toBeDefined();
    expect(() => native!(Buffer.alloc(10), 0, 5, src, 0, 40, 6, 2)).toThrow(RangeError);
    expect(() => native!(Buffer.alloc(100), 0, 10, src, src.length - 5, 40, 6, 1)).toThrow(RangeError);
    expect(() => native!(Buffer.alloc(100), -1, 10, src, 0, 40, 6, 1)).toThrow(RangeError);
  });
});

describe('sample pool', () => {
  it('hands a given-back buffer out again, sized as asked', () => {
    const a = borrow(1000);
    expect(a.length).toBe(1000);
    giveBack(a);
    const b = borrow(500);
    expect(b.length).toBe(500);
    expect(b.buffer).toBe(a.buffer);
    giveBack(b);
  });
});

describe('TIFF regions through the tile cache', () => {
  let fx: FixtureSet;
  const open: ImageDecoder[] = [];
  const saved = process.env.IIPSRV_DECODED_CACHE_MB;
  beforeAll(async () => {
    fx = await setupFixtures();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(open.map((d) => d.close()));
    await fx?.cleanup();
    if (saved === undefined) delete process.env.IIPSRV_DECODED_CACHE_MB;
    else process.env.IIPSRV_DECODED_CACHE_MB = saved;
  });

  /** readRegion and regionPipeline samples, with the tile cache on or off (read per call). */
  async function read(d: ImageDecoder, cached: boolean, level: number, rect: Rect): Promise<{ raw: RawImage; piped: Buffer }> {
    if (cached) delete process.env.IIPSRV_DECODED_CACHE_MB;
    else process.env.IIPSRV_DECODED_CACHE_MB = '0';
    const raw = await d.readRegion(level, rect);
    const pipe = await d.regionPipeline!(level, rect);
    const piped = await pipe!.image.raw().toBuffer();
    pipe!.release?.();
    return { raw, piped };
  }

  it('gives the same samples as the uncached path, for overlapping regions on every level', async () => {
    clearTileCache();
    const rects: Array<[number, Rect]> = [
      [0, { x: 0, y: 0, width: 300, height: 300 }],
      [0, { x: 200, y: 100, width: 500, height: 400 }], // overlaps the first: assembled
      [0, { x: 250, y: 150, width: 100, height: 100 }], // inside one block
      [0, { x: 1000, y: 800, width: 100, height: 100 }], // edge tiles
      [1, { x: 17, y: 33, width: 500, height: 400 }],
      [2, { x: 0, y: 0, width: 275, height: 225 }],
    ];
    for (const name of ['jpegPyramid', 'deflatePyramid']) {
      const plain = await tiffDecoder.open(fx.files[name]);
      const cached = await tiffDecoder.open(fx.files[name]);
      open.push(plain, cached);
      for (const [level, rect] of rects) {
        const want = await read(plain, false, level, rect);
        const got = await read(cached, true, level, rect);
        const what = `${name} level ${level} ${JSON.stringify(rect)}`;
        expect(got.raw.data.equals(want.raw.data), what).toBe(true);
        expect(got.piped.equals(want.raw.data), what).toBe(true);
      }
    }
  });
});
