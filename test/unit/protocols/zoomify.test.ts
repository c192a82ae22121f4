// Zoomify: ImageProperties.xml (exact attributes, NUMTILES counting exactly the levels served),
// tile paths with any TileGroup number, the `discard` level rule, square virtual tiles for
// rectangular tilings, and errors.

import { describe, expect, it } from 'vitest';
import { ImageServerError } from '../../../src/core/errors.js';
import type { ImageInfo } from '../../../src/core/image-info.js';
import type { ViewRequest } from '../../../src/core/view.js';
import { zoomifyDiscard, zoomifyTileCount } from '../../../src/core/geometry.js';
import { imageProperties, parseTileName, zoomify } from '../../../src/protocols/zoomify.js';
import { IMAGE, input, pyramid } from './fixtures.js';

const parse = (argument: string, via: 'query' | 'path' = 'query') => zoomify.parse(input(argument, { via }));

function viewOf(argument: string, info: ImageInfo = IMAGE): ViewRequest {
  const a = parse(argument);
  if (a.kind !== 'image') throw new Error(`expected an image answer, got ${a.kind}`);
  return a.view(info);
}

const image = (sizes: Array<[number, number]>, tile = 256): ImageInfo => ({
  ...IMAGE,
  width: sizes[0][0],
  height: sizes[0][1],
  levels: pyramid(sizes, tile),
});

describe('ImageProperties.xml', () => {
  it("is iipsrv's body for the example image: NUMTILES 1 + 48 + 12 + 4 = 65", () => {
    const a = parse('deflate_pyr.tif/ImageProperties.xml');
    if (a.kind !== 'info') throw new Error('expected info');
    expect(a.identifier).toBe('deflate_pyr.tif');
    expect(a.format(IMAGE)).toEqual({
      contentType: 'application/xml',
      body: '<IMAGE_PROPERTIES WIDTH="2000" HEIGHT="1400" NUMTILES="65" NUMIMAGES="1" VERSION="1.8" TILESIZE="256"/>',
    });
  });

  it('counts exactly the levels served when no level fits in one tile (§13 #30)', () => {
    // 2000×1400 and 1000×700 only: 48 + 12 tiles; iipsrv said 61.
    expect(
      zoomifyTileCount(
        image([
          [2000, 1400],
          [1000, 700],
        ]),
        256,
      ),
    ).toBe(60);
    // A level of exactly one tile that is not "smaller" than the tile is counted once.
    expect(
      zoomifyTileCount(
        image([
          [512, 512],
          [256, 256],
        ]),
        256,
      ),
    ).toBe(5);
  });

  it('reports the tile width as TILESIZE', () => {
    expect(imageProperties(image([[600, 400]], 512))).toContain('TILESIZE="512"');
  });

  it('decodes the identifier as a query value, or as a path under URI_MAP', () => {
    expect(parse('sub+dir/a%2Bb.tif/ImageProperties.xml')).toMatchObject({ identifier: 'sub dir/a+b.tif' });
    expect(parse('sub dir/a+b.tif/ImageProperties.xml', 'path')).toMatchObject({ identifier: 'sub dir/a+b.tif' });
  });
});

describe('discard rule', () => {
  it.each<[Array<[number, number]>, number]>([
    // 250×175 is the one level smaller than a tile: it stays (discard 0).
    [
      [
        [2000, 1400],
        [1000, 700],
        [500, 350],
        [250, 175],
      ],
      0,
    ],
    // Three levels fit: the largest of them stays, two are discarded.
    [
      [
        [2000, 1400],
        [1000, 700],
        [500, 350],
        [250, 175],
        [125, 88],
        [63, 44],
      ],
      2,
    ],
    [
      [
        [2000, 1400],
        [1000, 700],
      ],
      0,
    ],
    // Both sides must be smaller: 300×100 does not fit.
    [
      [
        [600, 200],
        [300, 100],
        [150, 50],
      ],
      0,
    ],
  ])('%j → %d', (sizes, discard) => {
    expect(zoomifyDiscard(pyramid(sizes), 256)).toBe(discard);
  });
});

describe('tiles', () => {
  it.each<[string, object]>([
    // Zoomify level 0 = IIP resolution 0 = our smallest level.
    ['a.tif/TileGroup0/0-0-0.jpg', { kind: 'tile', level: 3, col: 0, row: 0 }],
    ['a.tif/TileGroup0/3-7-5.jpg', { kind: 'tile', level: 0, col: 7, row: 5 }],
    ['a.tif/TileGroup0/2-3-2.jpg', { kind: 'tile', level: 1, col: 3, row: 2 }],
    // The TileGroup number and the extension are ignored; tiles are always JPEG.
    ['a.tif/TileGroup17/3-1-1.png', { kind: 'tile', level: 0, col: 1, row: 1, format: 'jpg' }],
    ['a.tif/TileGroup/3-1-1.jpg', { kind: 'tile', level: 0, col: 1, row: 1 }],
    ['dir/TileGroup/x.tif/TileGroup2/1-0-0.jpg', { kind: 'tile', level: 2 }],
  ])('%s', (path, expected) => {
    expect(viewOf(path)).toMatchObject({ format: 'jpg', quality: 'default', ...expected });
  });

  it('applies the discard offset', () => {
    const deep = image([
      [2000, 1400],
      [1000, 700],
      [500, 350],
      [250, 175],
      [125, 88],
      [63, 44],
    ]);
    // discard 2: Zoomify 0 is IIP resolution 2 = our level 3 (250×175).
    expect(viewOf('a.tif/TileGroup0/0-0-0.jpg', deep)).toMatchObject({ kind: 'tile', level: 3 });
    expect(viewOf('a.tif/TileGroup0/3-0-0.jpg', deep)).toMatchObject({ kind: 'tile', level: 0 });
    expect(() => viewOf('a.tif/TileGroup0/4-0-0.jpg', deep)).toThrow(ImageServerError);
  });

  it('is a tile answer for the image before /TileGroup', () => {
    expect(parse('dir/a.tif/TileGroup0/0-0-0.jpg')).toMatchObject({ kind: 'image', identifier: 'dir/a.tif', isTile: true });
  });

  it('serves rectangular tilings from square virtual tiles of the tile width', () => {
    const rect: ImageInfo = { ...IMAGE, levels: IMAGE.levels.map((l) => ({ ...l, tileHeight: 128 })) };
    // Square tile (1,1) of full resolution: x 256..512, y 256..512 of the 2000×1400 level.
    expect(viewOf('a.tif/TileGroup0/3-1-1.jpg', rect)).toEqual({
      kind: 'region',
      region: { type: 'fraction', x: 256 / 2000, y: 256 / 1400, w: 256 / 2000, h: 256 / 1400 },
      size: { type: 'exact', w: 256, h: 256, upscale: false },
      upscaleRule: 'allowed',
      format: 'jpg',
      quality: 'default',
      rotation: { degrees: 0, mirror: false },
    });
    // The last row is cropped to 1400 − 5·256 = 120 high, which is exactly stored tile (0, 10).
    expect(viewOf('a.tif/TileGroup0/3-0-5.jpg', rect)).toMatchObject({ kind: 'tile', level: 0, col: 0, row: 10 });
  });

  it.each(['a.tif/TileGroup0/3-8-0.jpg', 'a.tif/TileGroup0/3-0-6.jpg', 'a.tif/TileGroup0/4-0-0.jpg'])('%s is a 400', (path) => {
    let err: unknown;
    try {
      viewOf(path);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ImageServerError);
    expect((err as ImageServerError).status).toBe(400);
  });

  it.each(['a.tif', 'a.tif/TileGroup0/1-2.jpg', 'a.tif/TileGroup0/a-b-c.jpg', '/ImageProperties.xml', 'a.tif/foo.xml'])(
    '%s is malformed',
    (path) => {
      expect(() => parse(path)).toThrow(ImageServerError);
    },
  );

  it('parses z-x-y names', () => {
    expect(parseTileName('3-12-7.jpg')).toEqual({ z: 3, x: 12, y: 7 });
    expect(parseTileName('3-12-7')).toEqual({ z: 3, x: 12, y: 7 });
    expect(parseTileName('3-12.jpg')).toBeNull();
  });

  it('formats errors as text', () => {
    expect(zoomify.formatError(new ImageServerError('BAD_TILE', 'Zoomify: level 9 does not exist'), undefined)).toEqual({
      contentType: 'text/plain; charset=utf-8',
      body: 'Zoomify: level 9 does not exist',
    });
  });
});
