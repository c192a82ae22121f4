import { describe, expect, it } from 'vitest';
import {
  chooseLevel,
  clampToLimits,
  iiifSizes,
  matchTile,
  regionAtLevel,
  resolveRegion,
  resolveSize,
  scaleFactors,
  tileGrid,
  tileRect,
  type SizeLimits,
} from '../../../src/core/geometry.js';
import type { Level } from '../../../src/core/image-info.js';

const pyramid = (sizes: Array<[number, number]>, tw = 256, th = tw): Level[] =>
  sizes.map(([width, height]) => ({ width, height, tileWidth: tw, tileHeight: th }));

const EXAMPLE = pyramid([
  [2000, 1400],
  [1000, 700],
  [500, 350],
  [250, 175],
]);
const ODD = pyramid([
  [2001, 1399],
  [1001, 700],
  [501, 350],
  [251, 175],
]);
const NOLIMIT: SizeLimits = { maxWidth: -1, maxHeight: -1, maxArea: 0, allowUpscaling: true };
const CVT500: SizeLimits = { maxWidth: 500, maxHeight: 500, maxArea: 0, allowUpscaling: true };

describe('tile grids', () => {
  it('counts tiles with ceil and crops edge tiles', () => {
    expect(tileGrid(EXAMPLE[0])).toEqual({ cols: 8, rows: 6 });
    expect(tileRect(EXAMPLE[0], 7, 5)).toEqual({ x: 1792, y: 1280, width: 208, height: 120 });
    expect(tileGrid(EXAMPLE[3])).toEqual({ cols: 1, rows: 1 });
  });
  it('handles rectangular tiles', () => {
    const l = pyramid([[1000, 700]], 256, 128)[0];
    expect(tileGrid(l)).toEqual({ cols: 4, rows: 6 });
    expect(tileRect(l, 3, 5)).toEqual({ x: 768, y: 640, width: 232, height: 60 });
  });
});

describe('IIIF sizes and scale factors', () => {
  it('uses real ratios, rounding odd pyramids to the factors clients need', () => {
    expect(scaleFactors(EXAMPLE)).toEqual([1, 2, 4, 8]);
    expect(scaleFactors(ODD)).toEqual([1, 2, 4, 8]);
    expect(
      scaleFactors(
        pyramid([
          [900, 900],
          [300, 300],
        ]),
      ),
    ).toEqual([1, 3]);
  });
  it('lists every level but full resolution, smallest first', () => {
    expect(iiifSizes(EXAMPLE)).toEqual([
      { width: 250, height: 175 },
      { width: 500, height: 350 },
      { width: 1000, height: 700 },
    ]);
    expect(iiifSizes(pyramid([[100, 50]]))).toEqual([{ width: 100, height: 50 }]);
  });
});

describe('resolveRegion', () => {
  it.each([
    [{ type: 'full' }, { x: 0, y: 0, width: 2000, height: 1400 }],
    [{ type: 'square' }, { x: 300, y: 0, width: 1400, height: 1400 }],
    [
      { type: 'pixels', x: 10, y: 20, w: 30, h: 40 },
      { x: 10, y: 20, width: 30, height: 40 },
    ],
    [
      { type: 'pixels', x: 1900, y: 1300, w: 500, h: 500 },
      { x: 1900, y: 1300, width: 100, height: 100 },
    ],
    [
      { type: 'fraction', x: 0.5, y: 0.5, w: 0.5, h: 0.5 },
      { x: 1000, y: 700, width: 1000, height: 700 },
    ],
  ] as const)('%j → %j', (spec, rect) => {
    expect(resolveRegion(spec, 2000, 1400)).toEqual(rect);
  });
  it.each([
    { type: 'pixels', x: 0, y: 0, w: 0, h: 10 },
    { type: 'pixels', x: 0, y: 0, w: 10, h: -1 },
    { type: 'pixels', x: 2000, y: 0, w: 10, h: 10 },
    { type: 'pixels', x: 0, y: 1400, w: 10, h: 10 },
    { type: 'fraction', x: 1.2, y: 0, w: 0.1, h: 0.1 },
    { type: 'pixels', x: Number.NaN, y: 0, w: 10, h: 10 },
  ] as const)('rejects %j with BAD_REGION', (spec) => {
    expect(() => resolveRegion(spec, 2000, 1400)).toThrow(expect.objectContaining({ code: 'BAD_REGION', status: 400 }));
  });
});

describe('resolveSize', () => {
  it.each([
    [{ type: 'max', upscale: false }, 2000, 1400, { width: 2000, height: 1400 }],
    [{ type: 'width', w: 300, upscale: false }, 2000, 1400, { width: 300, height: 210 }],
    [{ type: 'height', h: 210, upscale: false }, 2000, 1400, { width: 300, height: 210 }],
    [{ type: 'percent', pct: 10, upscale: false }, 2000, 1400, { width: 200, height: 140 }],
    [{ type: 'exact', w: 300, h: 300, upscale: false }, 2000, 1400, { width: 300, height: 300 }],
    [{ type: 'fit', w: 300, h: 300, upscale: false }, 2000, 1400, { width: 300, height: 210 }],
    [{ type: 'fit', w: 300, h: 100, upscale: false }, 2000, 1400, { width: 143, height: 100 }],
    [{ type: 'width', w: 1, upscale: false }, 2000, 10, { width: 1, height: 1 }],
  ] as const)('%j of %d×%d → %j', (spec, rw, rh, out) => {
    expect(resolveSize(spec, rw, rh, NOLIMIT, 'caret')).toEqual(out);
  });
  it('requires ^ for upscaling under the IIIF 3 rule only', () => {
    expect(() => resolveSize({ type: 'width', w: 400, upscale: false }, 200, 100, NOLIMIT, 'caret')).toThrow(
      expect.objectContaining({ code: 'UPSCALE_NOT_ALLOWED' }),
    );
    expect(resolveSize({ type: 'width', w: 400, upscale: true }, 200, 100, NOLIMIT, 'caret')).toEqual({ width: 400, height: 200 });
    expect(resolveSize({ type: 'width', w: 400, upscale: false }, 200, 100, NOLIMIT, 'allowed')).toEqual({ width: 400, height: 200 });
  });
  it('clamps upscaling to the region when ALLOW_UPSCALING is off', () => {
    const limits = { ...NOLIMIT, allowUpscaling: false };
    expect(resolveSize({ type: 'width', w: 400, upscale: true }, 200, 100, limits, 'caret')).toEqual({ width: 200, height: 100 });
  });
  it('scales sizes beyond MAX_CVT down keeping their distortion (not squared)', () => {
    expect(resolveSize({ type: 'exact', w: 1000, h: 100, upscale: false }, 2000, 1400, CVT500, 'caret')).toEqual({
      width: 500,
      height: 50,
    });
    expect(resolveSize({ type: 'max', upscale: false }, 2000, 1400, CVT500, 'caret')).toEqual({ width: 500, height: 350 });
    expect(clampToLimits({ width: 6000, height: 4200 }, { ...NOLIMIT, maxWidth: 5000, maxHeight: 5000 })).toEqual({
      width: 5000,
      height: 3500,
    });
    expect(clampToLimits({ width: 100, height: 100 }, { ...NOLIMIT, maxArea: 2500 })).toEqual({ width: 50, height: 50 });
  });
  it('grows ^max up to the limits', () => {
    expect(resolveSize({ type: 'max', upscale: true }, 200, 100, CVT500, 'caret')).toEqual({ width: 500, height: 250 });
  });
  it('rejects non-positive sizes', () => {
    expect(() => resolveSize({ type: 'width', w: 0, upscale: false }, 10, 10, NOLIMIT, 'caret')).toThrow(
      expect.objectContaining({ code: 'BAD_SIZE' }),
    );
    expect(() => resolveSize({ type: 'percent', pct: -5, upscale: false }, 10, 10, NOLIMIT, 'caret')).toThrow(
      expect.objectContaining({ code: 'BAD_SIZE' }),
    );
  });
});

describe('level choice', () => {
  it('picks the smallest level with enough pixels', () => {
    const full = { x: 0, y: 0, width: 2000, height: 1400 };
    expect(chooseLevel(EXAMPLE, full, { width: 250, height: 175 })).toBe(3);
    expect(chooseLevel(EXAMPLE, full, { width: 251, height: 176 })).toBe(3);
    expect(chooseLevel(EXAMPLE, full, { width: 252, height: 177 })).toBe(2);
    expect(chooseLevel(EXAMPLE, full, { width: 300, height: 210 })).toBe(2);
    expect(chooseLevel(EXAMPLE, full, { width: 2000, height: 1400 })).toBe(0);
    expect(chooseLevel(EXAMPLE, { x: 0, y: 0, width: 512, height: 512 }, { width: 256, height: 256 })).toBe(1);
    expect(chooseLevel(EXAMPLE, full, { width: 4000, height: 2800 })).toBe(0);
  });
  it('tolerates levels rounded down by less than a pixel', () => {
    const floorPyramid = pyramid([
      [2001, 1399],
      [1000, 699],
    ]);
    expect(chooseLevel(floorPyramid, { x: 0, y: 0, width: 2001, height: 1399 }, { width: 1001, height: 700 })).toBe(1);
  });
  it('maps regions to level coordinates covering every source pixel', () => {
    expect(regionAtLevel(EXAMPLE, 1, { x: 512, y: 256, width: 512, height: 512 })).toEqual({ x: 256, y: 128, width: 256, height: 256 });
    expect(regionAtLevel(ODD, 1, { x: 1537, y: 1, width: 464, height: 3 })).toEqual({ x: 768, y: 0, width: 233, height: 3 });
    const r = regionAtLevel(ODD, 3, { x: 2000, y: 1398, width: 1, height: 1 });
    expect(r.x + r.width).toBeLessThanOrEqual(251);
    expect(r.y + r.height).toBeLessThanOrEqual(175);
    expect(r.width).toBeGreaterThan(0);
  });
  it('never reads outside any level for random regions (property)', () => {
    let seed = 7;
    const rnd = (n: number): number => Math.floor(((seed = (seed * 16807) % 2147483647) / 2147483647) * n);
    for (let i = 0; i < 2000; i++) {
      const x = rnd(2001);
      const y = rnd(1399);
      const rect = { x, y, width: 1 + rnd(2001 - x), height: 1 + rnd(1399 - y) };
      const out = { width: 1 + rnd(600), height: 1 + rnd(600) };
      const level = chooseLevel(ODD, rect, out);
      const r = regionAtLevel(ODD, level, rect);
      expect(r.x).toBeGreaterThanOrEqual(0);
      expect(r.y).toBeGreaterThanOrEqual(0);
      expect(r.width).toBeGreaterThan(0);
      expect(r.height).toBeGreaterThan(0);
      expect(r.x + r.width).toBeLessThanOrEqual(ODD[level].width);
      expect(r.y + r.height).toBeLessThanOrEqual(ODD[level].height);
    }
  });
});

describe('matchTile (the IIIF tile fast path)', () => {
  it.each([
    [
      { x: 0, y: 0, width: 256, height: 256 },
      { width: 256, height: 256 },
      { level: 0, col: 0, row: 0 },
    ],
    [
      { x: 0, y: 0, width: 512, height: 512 },
      { width: 256, height: 256 },
      { level: 1, col: 0, row: 0 },
    ],
    [
      { x: 0, y: 0, width: 2000, height: 1400 },
      { width: 250, height: 175 },
      { level: 3, col: 0, row: 0 },
    ],
    [
      { x: 1792, y: 1280, width: 208, height: 120 },
      { width: 208, height: 120 },
      { level: 0, col: 7, row: 5 },
    ],
    [
      { x: 1024, y: 1024, width: 976, height: 376 },
      { width: 244, height: 94 },
      { level: 2, col: 1, row: 1 },
    ],
  ])('%j at %j is a tile', (rect, out, tile) => {
    expect(matchTile(EXAMPLE, rect, out)).toEqual(tile);
  });
  it('matches edge tiles of odd pyramids at their cropped size', () => {
    expect(matchTile(ODD, { x: 1536, y: 0, width: 465, height: 512 }, { width: 233, height: 256 })).toEqual({ level: 1, col: 3, row: 0 });
  });
  it.each([
    [
      { x: 1, y: 0, width: 256, height: 256 },
      { width: 256, height: 256 },
    ],
    [
      { x: 0, y: 0, width: 256, height: 256 },
      { width: 128, height: 128 },
    ],
    [
      { x: 0, y: 0, width: 300, height: 256 },
      { width: 300, height: 256 },
    ],
    [
      { x: 0, y: 0, width: 2000, height: 1400 },
      { width: 2000, height: 1400 },
    ],
  ])('%j at %j is not a tile', (rect, out) => {
    expect(matchTile(EXAMPLE, rect, out)).toBeNull();
  });
});
