// DeepZoom: the .dzi document, iipsrv's level mapping inside the pyramid, levels below the
// pyramid rendered at the true DeepZoom size, honoured tile extensions, virtual square tiles
// for rectangular tilings, and errors.

import { describe, expect, it } from 'vitest';
import { ImageServerError } from '../../../src/core/errors.js';
import type { ImageInfo } from '../../../src/core/image-info.js';
import type { ViewRequest } from '../../../src/core/view.js';
import { deepzoom, dziDocument, parseTilePath } from '../../../src/protocols/deepzoom.js';
import { deepZoomLevelSize, deepZoomMaxLevel } from '../../../src/core/geometry.js';
import { IMAGE, OPTIONS, input, pyramid } from './fixtures.js';

const parse = (argument: string, formats: readonly string[] = OPTIONS.formats) =>
  deepzoom.parse(input(argument, { via: 'query', options: { formats } }));

function viewOf(argument: string, info: ImageInfo = IMAGE): ViewRequest {
  const a = parse(argument);
  if (a.kind !== 'image') throw new Error(`expected an image answer, got ${a.kind}`);
  return a.view(info);
}

const STYLE = { quality: 'default', rotation: { degrees: 0, mirror: false } };

describe('.dzi', () => {
  it("is iipsrv's body for the example image", () => {
    const a = parse('deflate_pyr.tif.dzi');
    if (a.kind !== 'info') throw new Error('expected info');
    expect(a.identifier).toBe('deflate_pyr.tif');
    expect(a.format(IMAGE)).toEqual({
      contentType: 'application/xml',
      body: '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" TileSize="256" Overlap="0" Format="jpg"><Size Width="2000" Height="1400"/></Image>',
    });
  });

  it('declares the tile width as TileSize and the format given', () => {
    expect(dziDocument({ ...IMAGE, levels: pyramid([[2000, 1400]], 512) }, 'png')).toContain('TileSize="512" Overlap="0" Format="png"');
  });

  it('decodes the identifier as a query value', () => {
    expect(parse('sub+dir/a%2Bb.tif.dzi')).toMatchObject({ identifier: 'sub dir/a+b.tif' });
    expect(parse('a.tif.DZI')).toMatchObject({ kind: 'info', identifier: 'a.tif' });
  });
});

describe('level mapping', () => {
  it('dzi_max = ceil(log2(max(W, H)))', () => {
    expect(deepZoomMaxLevel(2000, 1400)).toBe(11);
    expect(deepZoomMaxLevel(2048, 10)).toBe(11);
    expect(deepZoomMaxLevel(2049, 10)).toBe(12);
    expect(deepZoomMaxLevel(1, 1)).toBe(0);
  });

  it.each<[number, number, number]>([
    [11, 2000, 1400],
    [10, 1000, 700],
    [8, 250, 175],
    [7, 125, 88],
    [3, 8, 6],
    [0, 1, 1],
  ])('level %d is %d×%d', (L, w, h) => {
    expect(deepZoomLevelSize(2000, 1400, L)).toMatchObject({ width: w, height: h });
  });

  it.each<[string, object]>([
    // r = L − (dzi_max − numRes) − 1: L 11 → r 3 (full), 10 → 2, 9 → 1, 8 → 0.
    ['a.tif_files/11/0_0.jpg', { kind: 'tile', level: 0, col: 0, row: 0 }],
    ['a.tif_files/11/7_5.jpg', { kind: 'tile', level: 0, col: 7, row: 5 }],
    ['a.tif_files/10/3_2.jpg', { kind: 'tile', level: 1, col: 3, row: 2 }],
    ['a.tif_files/9/1_1.jpg', { kind: 'tile', level: 2, col: 1, row: 1 }],
    ['a.tif_files/8/0_0.jpg', { kind: 'tile', level: 3, col: 0, row: 0 }],
  ])('%s is a stored tile', (path, expected) => {
    expect(viewOf(path)).toEqual({ format: 'jpg', ...STYLE, ...expected });
  });

  it('renders levels below the pyramid at their true DeepZoom size (§13 #29)', () => {
    // L 7: 125×88, the whole image scaled down; iipsrv answered 250×175 here.
    expect(viewOf('a.tif_files/7/0_0.jpg')).toEqual({
      kind: 'region',
      region: { type: 'pixels', x: 0, y: 0, w: 2000, h: 1400 },
      size: { type: 'exact', w: 125, h: 88, upscale: false },
      upscaleRule: 'allowed',
      format: 'jpg',
      ...STYLE,
    });
    expect(viewOf('a.tif_files/0/0_0.jpg')).toMatchObject({ kind: 'region', size: { w: 1, h: 1 } });
    expect(viewOf('a.tif_files/3/0_0.jpg')).toMatchObject({ kind: 'region', size: { w: 8, h: 6 } });
  });

  it('renders virtual levels with several tiles from the right full-resolution pixels', () => {
    // A pyramid that stops at 1000×700: level 9 (500×350) is 2×2 tiles of 256.
    const shallow: ImageInfo = { ...IMAGE, levels: IMAGE.levels.slice(0, 2) };
    expect(viewOf('a.tif_files/9/1_1.jpg', shallow)).toMatchObject({
      kind: 'region',
      // DeepZoom pixels 256..500 × 256..350 are full-resolution 1024..2000 × 1024..1400.
      region: { type: 'pixels', x: 1024, y: 1024, w: 976, h: 376 },
      size: { type: 'exact', w: 244, h: 94 },
    });
    expect(() => viewOf('a.tif_files/9/2_0.jpg', shallow)).toThrow(ImageServerError);
  });

  it('renders levels a non-halving pyramid does not have at the DeepZoom size', () => {
    const thirds: ImageInfo = {
      ...IMAGE,
      levels: pyramid([
        [2000, 1400],
        [667, 467],
        [222, 156],
      ]),
    };
    expect(viewOf('a.tif_files/10/0_0.jpg', thirds)).toMatchObject({ kind: 'region', size: { w: 256, h: 256 } });
    // A floor-rounded level within a pixel of the DeepZoom size keeps iipsrv's mapping.
    const floors: ImageInfo = {
      ...IMAGE,
      width: 2001,
      levels: pyramid([
        [2001, 1400],
        [1000, 700],
      ]),
    };
    expect(viewOf('a.tif_files/10/0_0.jpg', floors)).toMatchObject({ kind: 'tile', level: 1 });
  });

  it('serves rectangular tilings from square virtual tiles', () => {
    const rect: ImageInfo = { ...IMAGE, levels: IMAGE.levels.map((l) => ({ ...l, tileHeight: 128 })) };
    expect(viewOf('a.tif_files/11/1_1.jpg', rect)).toMatchObject({
      kind: 'region',
      region: { type: 'pixels', x: 256, y: 256, w: 256, h: 256 },
      size: { type: 'exact', w: 256, h: 256 },
    });
  });
});

describe('tile requests', () => {
  it('honours the extension: .png is PNG', () => {
    expect(viewOf('a.tif_files/11/0_0.png')).toMatchObject({ kind: 'tile', format: 'png' });
    expect(viewOf('a.tif_files/11/0_0.jpeg')).toMatchObject({ kind: 'tile', format: 'jpg' });
    expect(viewOf('a.tif_files/11/0_0.webp')).toMatchObject({ kind: 'tile', format: 'webp' });
  });

  it('refuses extensions it cannot encode with 400', () => {
    for (const path of ['a.tif_files/11/0_0.gif', 'a.tif_files/11/0_0.avif']) {
      let err: unknown;
      try {
        parse(path);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ status: 400, code: 'BAD_FORMAT' });
    }
  });

  it('names the image before the last _files/ and marks tiles as tiles', () => {
    expect(parse('my_files/a.tif_files/8/0_0.jpg')).toMatchObject({ kind: 'image', identifier: 'my_files/a.tif', isTile: true });
  });

  it.each(['a.tif_files/12/0_0.jpg', 'a.tif_files/11/8_0.jpg', 'a.tif_files/11/0_6.jpg', 'a.tif_files/8/1_0.jpg'])(
    '%s is a 400',
    (path) => {
      let err: unknown;
      try {
        viewOf(path);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ status: 400 });
    },
  );

  it.each(['a.tif', 'a.tif_files/11/0-0.jpg', 'a.tif_files/x/0_0.jpg', 'a.tif_files/11/0_0', '_files/1/0_0.jpg'])(
    '%s is malformed',
    (path) => {
      expect(() => parse(path)).toThrow(ImageServerError);
    },
  );

  it('parses L/x_y.ext', () => {
    expect(parseTilePath('9/3_4.PNG')).toEqual({ level: 9, x: 3, y: 4, ext: 'png' });
    expect(parseTilePath('9/3_4')).toBeNull();
  });
});
