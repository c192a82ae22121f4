// The IIP protocol's answers: OBJ bodies byte for byte (the §4.2 example), error bodies and
// headers, resolution/tile numbering (smallest first, row-major, cropped edges, rectangular
// tiles, rotated grids), TIL's FlashPix framing, CVT views, PFL/SPECTRA bodies, and IIP setters
// applied to delegated protocols.

import { describe, expect, it } from 'vitest';
import { ImageServerError } from '../../../src/core/errors.js';
import type { ImageInfo } from '../../../src/core/image-info.js';
import type { RegionView, TileView, ViewRequest } from '../../../src/core/view.js';
import { deepzoom } from '../../../src/protocols/deepzoom.js';
import { iiif } from '../../../src/protocols/iiif.js';
import { IipError, parseIipCommands } from '../../../src/protocols/iip-commands.js';
import { clampQuality, errorLine, formatProfile, formatSpectra, frameTiles, iip, withIipSetters } from '../../../src/protocols/iip.js';
import type { ProtocolAnswer, ProtocolInput, RawSamples } from '../../../src/protocols/protocol.js';
import { caught, IMAGE, OPTIONS, input as iiifInput, pyramid } from './fixtures.js';

/** A request as the handler hands an IIP query string over. */
function q(request: string, options: Partial<typeof OPTIONS> & { iipErrorStatus200?: boolean } = {}): ProtocolInput {
  return {
    argument: request,
    via: 'query',
    headers: { host: 'localhost' },
    https: false,
    requestUri: `/fcgi-bin/iipsrv.fcgi?${request}`,
    request,
    options: { ...OPTIONS, formats: ['jpg', 'png', 'webp', 'tif'], ...options },
  };
}

const answer = (request: string): ProtocolAnswer => iip.parse(q(request));

/** The error body and status the handler would send. */
function errorOf(
  request: string,
  options: { iipErrorStatus200?: boolean } = {},
): { status: number; body: string; type: string; headers: unknown } {
  const input = q(request, options);
  const err = caught(() => {
    const a = iip.parse(input);
    if (a.kind === 'info') a.format(IMAGE);
    if (a.kind === 'fixed') return;
    if (a.kind === 'image') a.view(IMAGE);
    if (a.kind === 'tiles') a.views(IMAGE);
    if (a.kind === 'samples') a.region(IMAGE);
  });
  const f = iip.formatError(err, input);
  return { status: f.status ?? err.status, body: f.body, type: f.contentType, headers: f.headers };
}

function objBody(request: string, info: ImageInfo = IMAGE): { body: string; type: string; headers: unknown } {
  const a = answer(request);
  const f = a.kind === 'info' ? a.format(info) : a.kind === 'fixed' ? a.body : null;
  if (!f) throw new Error(`expected an OBJ answer, got ${a.kind}`);
  return { body: f.body, type: f.contentType, headers: f.headers };
}

function viewOf(request: string, info: ImageInfo = IMAGE): ViewRequest {
  const a = answer(request);
  if (a.kind !== 'image') throw new Error(`expected an image answer, got ${a.kind}`);
  return a.view(info);
}

const GREY16: ImageInfo = {
  ...IMAGE,
  channels: 1,
  bitsPerSample: 16,
  colourSpace: 'grey',
  minValues: [0],
  maxValues: [65535],
};

describe('OBJ bodies (§4.2)', () => {
  it("answers OpenSeadragon's IIPTileSource request byte for byte, with the IIP header", () => {
    const { body, type, headers } = objBody(
      'FIF=deflate_pyr.tif&OBJ=IIP,1.0&OBJ=Max-size&OBJ=Tile-size&OBJ=Resolution-number&OBJ=Resolutions',
    );
    expect(body).toBe(
      'Max-size:2000 1400\r\nTile-size:256 256\r\nResolution-number:4\r\nResolutions:250 175,500 350,1000 700,2000 1400\r\n',
    );
    expect(type).toBe('application/vnd.netfpx');
    expect(headers).toEqual([['IIP', '1.3']]);
  });

  it.each<[string, string, ImageInfo?]>([
    ['IIP-server', 'IIP-server:3.65\r\n'],
    ['IIP-opt-comm', 'IIP-opt-comm:CVT CNT QLT JTL JTLS WID HEI RGN MINMAX SHD CMP INV CTW\r\n'],
    ['IIP-opt-obj', 'IIP-opt-obj:Horizontal-views Vertical-views Tile-size Bits-per-channel Min-Max-sample-values Resolutions\r\n'],
    ['Max-size', 'Max-size:2000 1400\r\n'],
    ['Resolution-number', 'Resolution-number:4\r\n'],
    ['Tile-size', 'Tile-size:256 256\r\n'],
    ['Bits-per-channel', 'Bits-per-channel:8\r\n'],
    ['Bits-per-channel', 'Bits-per-channel:16\r\n', GREY16],
    ['Horizontal-views', 'Horizontal-views:0\r\n'],
    ['Vertical-views', 'Vertical-views:90\r\n'],
    ['Horizontal-views', 'Horizontal-views:0 10\r\n', { ...IMAGE, views: { horizontal: [0, 10], vertical: [45, 90] } }],
    ['Vertical-views', 'Vertical-views:45 90\r\n', { ...IMAGE, views: { horizontal: [0, 10], vertical: [45, 90] } }],
    ['Min-Max-sample-values', 'Min-Max-sample-values: 0  255  0  255  0  255\r\n'],
    ['Min-Max-sample-values', 'Min-Max-sample-values: 0  65535\r\n', GREY16],
    ['Min-Max-sample-values', 'Min-Max-sample-values: 0  1\r\n', { ...GREY16, bitsPerSample: 32, sampleFormat: 'float', maxValues: [1] }],
    ['Min-Max-sample-values', 'Min-Max-sample-values: -0.5  123456789\r\n', { ...GREY16, minValues: [-0.5], maxValues: [123456789] }],
    [
      'Min-Max-sample-values',
      'Min-Max-sample-values: 1e-05  1.23456789e+10\r\n',
      { ...GREY16, minValues: [0.00001], maxValues: [12345678901] },
    ],
    ['Resolutions', 'Resolutions:250 175,500 350,1000 700,2000 1400\r\n'],
    ['Colorspace', 'Colorspace,0-3,0:0 0 3 3 0 1 2\r\n'],
    ['colorspace,0-3,0', 'Colorspace,0-3,0:0 0 3 3 0 1 2\r\n'],
    ['Colorspace', 'Colorspace,0-3,0:0 0 1 1 0\r\n', GREY16],
    [
      'Colorspace',
      'Colorspace,0-4,0:1 0 4 3 0 1 2\r\n',
      { ...IMAGE, colourSpace: 'cielab', levels: pyramid([[4000, 2800], ...IMAGE.levels.map((l) => [l.width, l.height] as const)]) },
    ],
    ['basic-info', 'IIP-server:3.65\r\nMax-size:2000 1400\r\nResolution-number:4\r\nColorspace,0-3,0:0 0 3 3 0 1 2\r\n'],
    // Pixels per metre, %f.
    ['DPI', 'DPI:1000.000000 1000.000000\r\n', { ...IMAGE, resolution: { x: 10, y: 10, unit: 'cm' } }],
    ['DPI', 'DPI:11811.023622 11811.023622\r\n', { ...IMAGE, resolution: { x: 300, y: 300, unit: 'in' } }],
  ])('OBJ=%s', (obj, expected, info) => {
    expect(objBody(`FIF=a.tif&OBJ=${obj}`, info ?? IMAGE).body).toBe(expected);
  });

  it('writes no DPI line when the resolution is unknown, and no IIP header without OBJ=IIP', () => {
    const { body, headers } = objBody('FIF=a.tif&OBJ=DPI&OBJ=Max-size');
    expect(body).toBe('Max-size:2000 1400\r\n');
    expect(headers).toBeUndefined();
  });

  it('reads rectangular tiles as they are (Tile-size:256 128)', () => {
    const info: ImageInfo = { ...IMAGE, levels: IMAGE.levels.map((l) => ({ ...l, tileHeight: 128 })) };
    expect(objBody('FIF=a.tif&OBJ=Tile-size', info).body).toBe('Tile-size:256 128\r\n');
  });

  it('swaps Max-size under ROT=90/270 only', () => {
    expect(objBody('FIF=a.tif&ROT=90&OBJ=Max-size').body).toBe('Max-size:1400 2000\r\n');
    expect(objBody('FIF=a.tif&OBJ=Max-size&ROT=!270').body).toBe('Max-size:1400 2000\r\n');
    expect(objBody('FIF=a.tif&ROT=180&OBJ=Max-size').body).toBe('Max-size:2000 1400\r\n');
  });

  it('answers a metadata field with its raw value as text/plain (application/xml for xmp)', () => {
    const info: ImageInfo = { ...IMAGE, metadata: { title: 'A "quoted" title', xmp: '<x:xmpmeta/>', rights: 'CC-BY' } };
    expect(objBody('FIF=a.tif&OBJ=title', info)).toMatchObject({ body: 'A "quoted" title\r\n', type: 'text/plain' });
    expect(objBody('FIF=a.tif&OBJ=xmp', info)).toMatchObject({ body: '<x:xmpmeta/>\r\n', type: 'application/xml' });
    expect(objBody('FIF=a.tif&OBJ=summary-info', info).body).toBe('CC-BY\r\n');
  });

  it('uses COPYRIGHT for rights when the image has none', () => {
    const a = iip.parse(q('FIF=a.tif&OBJ=rights', { copyright: 'Some museum' }));
    if (a.kind !== 'info') throw new Error('expected info');
    expect(a.format(IMAGE).body).toBe('Some museum\r\n');
  });

  it('builds OBJ=metadata as escaped JSON in iipsrv layout, without icc/xmp', () => {
    const info: ImageInfo = {
      ...IMAGE,
      metadata: { title: 'A "quoted"\ttitle', creator: 'Ruven', xmp: '<x/>', icc: 'binary', date: '' },
    };
    const { body, type } = objBody('FIF=a.tif&OBJ=metadata', info);
    expect(type).toBe('application/json');
    expect(body).toBe('{\n\t"creator": "Ruven",\n\t"title": "A \\"quoted\\"\\ttitle"\n}\r\n');
    expect(JSON.parse(body)).toEqual({ creator: 'Ruven', title: 'A "quoted"\ttitle' });
    expect(objBody('FIF=a.tif&OBJ=metadata').body).toBe('{\n}\r\n');
  });

  it('answers image-free objects without FIF and without an image', () => {
    const a = answer('OBJ=IIP,1.0&OBJ=IIP-server');
    expect(a.kind).toBe('fixed');
    if (a.kind === 'fixed') expect(a.body).toMatchObject({ body: 'IIP-server:3.65\r\n', headers: [['IIP', '1.3']] });
  });

  it('keys the cached body by objects and rotation', () => {
    const a = answer('FIF=a.tif&OBJ=Max-size&ROT=90');
    const b = answer('FIF=a.tif&OBJ=Max-size');
    if (a.kind !== 'info' || b.kind !== 'info') throw new Error('expected info');
    expect(a.variant).not.toBe(b.variant);
    expect(a.identifier).toBe('a.tif');
  });
});

describe('IIP errors (§4.3, §13 #3, #4)', () => {
  const disposition = [['Content-Disposition', 'inline;filename="IIPisAMadGameClosedToOurUnderstanding.netfpx"']];

  it.each([
    ['FIF=deflate_pyr.tif&XYZ=1', 'Error/7:2 2 XYZ\r\n'],
    ['FIF=deflate_pyr.tif&foo', 'Error/7:2 2 foo\r\n'],
    // Complete, not cut to 31 characters; the length counts what follows the colon.
    ['FIF=deflate_pyr.tif', 'Error/23:2 1 FIF=deflate_pyr.tif\r\n'],
    ['FIF=a.tif&OBJ=Unknown-thing', 'Error/17:3 2 unknown-thing\r\n'],
    ['OBJ=IIP,1.0&OBJ=Max-size&OBJ=Tile-size', 'Error/12:1 3 max-size\r\nError/13:1 3 tile-size\r\n'],
    ['JTL=1,0', 'Error/7:1 3 1,0\r\n'],
    ['CVT=jpeg', 'Error/8:1 3 jpeg\r\n'],
    // PFL without FIF crashed iipsrv (§13 #22).
    ['PFL=0:1,1-5,1', 'Error/13:1 3 0:1,1-5,1\r\n'],
    ['XYZ=1&ABC', 'Error/7:2 2 XYZ\r\nError/7:2 2 ABC\r\n'],
    // An empty metadata field writes nothing, which ends in 2 1.
    ['FIF=a.tif&OBJ=title', 'Error/23:2 1 FIF=a.tif&OBJ=title\r\n'],
  ])('%s → %j, status 400', (request, body) => {
    const e = errorOf(request);
    expect(e).toEqual({ status: 400, body, type: 'application/vnd.netfpx', headers: disposition });
  });

  it('reports an invalid resolution or tile as 400 with error 2 1', () => {
    expect(errorOf('FIF=a.tif&JTL=4,0')).toMatchObject({ status: 400, body: 'Error/21:2 1 FIF=a.tif&JTL=4,0\r\n' });
    expect(errorOf('FIF=a.tif&JTL=3,48')).toMatchObject({ status: 400, body: 'Error/22:2 1 FIF=a.tif&JTL=3,48\r\n' });
    expect(errorOf('FIF=a.tif&JTL=0,-1').status).toBe(400);
    expect(errorOf('FIF=a.tif&TIL=1,0-9').status).toBe(400);
  });

  it('keeps status 200 for the classic codes with IIP_ERROR_STATUS_200', () => {
    expect(errorOf('FIF=a.tif&XYZ=1', { iipErrorStatus200: true })).toMatchObject({ status: 200, body: 'Error/7:2 2 XYZ\r\n' });
    // An invalid tile is not one of them: iipsrv never sent it as an IIP error.
    expect(errorOf('FIF=a.tif&JTL=9,0', { iipErrorStatus200: true }).status).toBe(400);
  });

  it('formats other errors as text/plain with their own status (never a path)', () => {
    const f = iip.formatError(
      new ImageServerError('NOT_FOUND', 'Image not found: a.tif', '/srv/images/a.tif: ENOENT'),
      q('FIF=a.tif&JTL=0,0'),
    );
    expect(f).toEqual({ contentType: 'text/plain; charset=utf-8', body: 'Image not found: a.tif' });
  });

  it('counts UTF-8 bytes in the length', () => {
    expect(errorLine({ code: '2 2', argument: 'é' })).toBe('Error/6:2 2 é\r\n');
  });

  it('IipError carries its lines and a registered code', () => {
    const e = new IipError('IIP_UNSUPPORTED_COMMAND', [{ code: '2 2', argument: 'X' }]);
    expect([e.status, e.code, e.lines]).toEqual([400, 'IIP_UNSUPPORTED_COMMAND', [{ code: '2 2', argument: 'X' }]]);
  });
});

describe('tile numbering (§4.5)', () => {
  it.each<[string, Partial<TileView>]>([
    // Resolution 0 is the smallest level; Resolution-number − 1 is full resolution.
    ['JTL=0,0', { level: 3, col: 0, row: 0 }],
    ['JTL=3,0', { level: 0, col: 0, row: 0 }],
    // Row-major: 2000/256 → 8 columns, so tile 9 is column 1 of row 1.
    ['JTL=3,9', { level: 0, col: 1, row: 1 }],
    ['JTL=3,47', { level: 0, col: 7, row: 5 }],
    ['JTL=2,3', { level: 1, col: 3, row: 0 }],
    ['JTL=2,4', { level: 1, col: 0, row: 1 }],
    ['PTL=1,1', { level: 2, col: 1, row: 0, format: 'png' }],
    ['TTL=1,1', { level: 2, col: 1, row: 0, format: 'tif' }],
    ['JTLS=0,3,9,90', { level: 0, col: 1, row: 1 }],
  ])('%s', (cmd, expected) => {
    const v = viewOf(`FIF=a.tif&${cmd}`);
    expect(v).toMatchObject({ kind: 'tile', quality: 'default', rotation: { degrees: 0, mirror: false }, format: 'jpg', ...expected });
  });

  it('marks IIP tiles as tiles (no Content-Disposition) and keeps the member', () => {
    const a = answer('FIF=a.tif&SDS=10&JTL=0,0');
    expect(a).toMatchObject({ kind: 'image', isTile: true, identifier: 'a.tif', member: { horizontal: 10, vertical: 90 } });
  });

  it('numbers rectangular tiles by their real height', () => {
    const info: ImageInfo = { ...IMAGE, levels: IMAGE.levels.map((l) => ({ ...l, tileHeight: 128 })) };
    // 1400/128 → 11 rows of 8 columns: tile 87 is the last.
    expect(viewOf('FIF=a.tif&JTL=3,87', info)).toMatchObject({ kind: 'tile', level: 0, col: 7, row: 10 });
    expect(() => viewOf('FIF=a.tif&JTL=3,88', info)).toThrow(ImageServerError);
  });

  it('carries processing, COL, QLT (clamped per encoder) and LYR into the view', () => {
    expect(viewOf('FIF=a.tif&JTL=3,0&CNT=2&COL=grey&QLT=150&LYR=2&MINMAX=0:1,2&MINMAX=5:1,2')).toMatchObject({
      kind: 'tile',
      quality: 'gray',
      encoderQuality: 100,
      layers: 2,
      processing: { contrast: 2, minmax: [{ channel: 0, min: 1, max: 2 }] },
    });
    expect(viewOf('FIF=a.tif&PTL=3,0&QLT=75')).toMatchObject({ encoderQuality: 9 });
    expect(viewOf('FIF=a.tif&JTL=3,0&QLT=0')).toMatchObject({ encoderQuality: 1 });
    expect(viewOf('FIF=a.tif&JTL=3,0')).not.toHaveProperty('processing');
  });

  it.each([
    ['jpg', 0, 1],
    ['jpg', 75, 75],
    ['png', 75, 9],
    ['png', 1, 1],
    ['webp', -5, -1],
    ['avif', 200, 100],
  ] as const)('clampQuality(%s, %d) = %d', (format, q, expected) => {
    expect(clampQuality(q, format)).toBe(expected);
  });
});

describe('tiles of a rotated grid (§13 #21: remapped)', () => {
  const L3 = pyramid([[600, 300]]); // one level: 3×2 tiles of 256, the last column 88 wide, the last row 44 high
  const SMALL: ImageInfo = { ...IMAGE, width: 600, height: 300, levels: L3 };

  it('ROT=180: tile 0 of the rotated grid is the bottom-right corner of the image', () => {
    // Rotated 180 the grid is the same 3×2, but the top-left 256×256 tile covers x 344..600, y 44..300.
    const v = viewOf('FIF=a.tif&ROT=180&JTL=0,0', SMALL) as RegionView;
    expect(v.kind).toBe('region');
    expect(v.region).toEqual({ type: 'fraction', x: 344 / 600, y: 44 / 300, w: 256 / 600, h: 256 / 300 });
    expect(v.size).toEqual({ type: 'exact', w: 256, h: 256, upscale: false });
    expect(v.rotation).toEqual({ degrees: 180, mirror: false });
  });

  it('ROT=90: the rotated level is 300×600 (2×3 tiles) and tiles map back to source rectangles', () => {
    // Rotated tile (0,0) = rotated x 0..256, y 0..256 → source x 0..256, y 300−256..300.
    expect((viewOf('FIF=a.tif&ROT=90&JTL=0,0', SMALL) as RegionView).region).toEqual({
      type: 'fraction',
      x: 0,
      y: 44 / 300,
      w: 256 / 600,
      h: 256 / 300,
    });
    // Rotated tile 1 = (col 1, row 0): rotated x 256..300 (44 wide) → source y 0..44.
    const t1 = viewOf('FIF=a.tif&ROT=90&JTL=0,1', SMALL) as RegionView;
    expect(t1.region).toEqual({ type: 'fraction', x: 0, y: 0, w: 256 / 600, h: 44 / 300 });
    expect(t1.size).toMatchObject({ w: 256, h: 44 }); // before rotation: turned it is 44×256
    // Rotated grid has 2 columns × 3 rows = 6 tiles.
    expect(() => viewOf('FIF=a.tif&ROT=90&JTL=0,6', SMALL)).toThrow(ImageServerError);
    // Tile 5 = (col 1, row 2): rotated x 256..300, y 512..600 → source x 512..600, y 0..44: a stored tile? No: 88×44.
    expect((viewOf('FIF=a.tif&ROT=90&JTL=0,5', SMALL) as RegionView).region).toEqual({
      type: 'fraction',
      x: 512 / 600,
      y: 0,
      w: 88 / 600,
      h: 44 / 300,
    });
  });

  it('ROT=270 and mirrored rotations map back too', () => {
    // 270: rotated (X, Y) comes from source (W − Y, X); rotated tile (0,0) → source x 600−256..600, y 0..256.
    expect((viewOf('FIF=a.tif&ROT=270&JTL=0,0', SMALL) as RegionView).region).toMatchObject({ x: 344 / 600, y: 0 });
    // !0 is a horizontal flip: rotated tile (0,0) is the source's top-right 256×256.
    expect((viewOf('FIF=a.tif&ROT=!0&JTL=0,0', SMALL) as RegionView).region).toMatchObject({ x: 344 / 600, y: 0 });
    // !180 is a vertical flip: the source's bottom-left.
    expect((viewOf('FIF=a.tif&ROT=!180&JTL=0,0', SMALL) as RegionView).region).toMatchObject({ x: 0, y: 44 / 300 });
  });

  it('keeps stored tiles where the rotated tile is one (square grid that divides evenly)', () => {
    const even: ImageInfo = { ...IMAGE, width: 512, height: 512, levels: pyramid([[512, 512]]) };
    // 180: rotated tile 0 is source tile (1,1).
    expect(viewOf('FIF=a.tif&ROT=180&JTL=0,0', even)).toMatchObject({ kind: 'tile', col: 1, row: 1, rotation: { degrees: 180 } });
    // 90: rotated (0,0) is source x 0..256, y 256..512 → tile (0,1).
    expect(viewOf('FIF=a.tif&ROT=90&JTL=0,0', even)).toMatchObject({ kind: 'tile', col: 0, row: 1 });
  });
});

describe('TIL (§4.4)', () => {
  function tiles(request: string): { views: ViewRequest[]; combine: (b: Buffer[]) => Buffer } {
    const a = answer(request);
    if (a.kind !== 'tiles') throw new Error(`expected tiles, got ${a.kind}`);
    return { views: [...a.views(IMAGE)], combine: (b) => a.combine(b, IMAGE).body };
  }

  it('sends the rectangle column-major: TIL=1,0-3 on a 2×2 level is 0, 2, 1, 3', () => {
    const { views } = tiles('FIF=a.tif&TIL=1,0-3');
    expect(views.map((v) => (v.kind === 'tile' ? [v.level, v.col, v.row, v.format] : null))).toEqual([
      [2, 0, 0, 'jpg'],
      [2, 0, 1, 'jpg'],
      [2, 1, 0, 'jpg'],
      [2, 1, 1, 'jpg'],
    ]);
  });

  it('frames each tile as Tile,<res>,<n>,0/<len+8>: + type + subtype + JPEG + CRLF', () => {
    const { combine } = tiles('FIF=a.tif&TIL=1,0-3');
    const jpegs = [0, 1, 2, 3].map((i) => Buffer.from([0xff, 0xd8, i, 0xff, 0xd9]));
    const body = combine(jpegs);
    const one = (n: number, jpeg: Buffer): Buffer =>
      Buffer.concat([Buffer.from(`Tile,1,${n},0/13:`), Buffer.from([2, 0, 0, 0, 0, 0x11, 0, 0]), jpeg, Buffer.from('\r\n')]);
    expect(body.equals(Buffer.concat([one(0, jpegs[0]), one(2, jpegs[1]), one(1, jpegs[2]), one(3, jpegs[3])]))).toBe(true);
    expect(
      frameTiles(0, [0], [Buffer.alloc(2781)])
        .subarray(0, 24)
        .toString('latin1'),
    ).toBe('Tile,0,0,0/2789:\x02\x00\x00\x00\x00\x11\x00\x00');
  });

  it('swaps x when the end column is left of the start; end < start becomes start', () => {
    // Full resolution, 8 columns: tile 10 = (2,1), tile 16 = (0,2).
    const swapped = tiles('FIF=a.tif&TIL=3,10-16').views;
    expect(swapped.map((v) => (v.kind === 'tile' ? `${v.col},${v.row}` : ''))).toEqual(['0,1', '0,2', '1,1', '1,2', '2,1', '2,2']);
    expect(tiles('FIF=a.tif&TIL=3,10-4').views).toHaveLength(1);
    expect(tiles('FIF=a.tif&TIL=3,10').views).toHaveLength(1);
  });

  it('is always JPEG and carries the setters', () => {
    const [v] = tiles('FIF=a.tif&TIL=0,0&CNT=2&QLT=20').views;
    expect(v).toMatchObject({ format: 'jpg', encoderQuality: 20, processing: { contrast: 2 } });
  });

  it('refuses more than 1024 tiles with 413', () => {
    const big: ImageInfo = { ...IMAGE, width: 20000, height: 20000, levels: pyramid([[20000, 20000]]) };
    const a = answer('FIF=a.tif&TIL=0,0-6240');
    if (a.kind !== 'tiles') throw new Error('expected tiles');
    expect(caught(() => a.views(big)).status).toBe(413);
  });
});

describe('CVT (§4.6, §13 #13)', () => {
  it.each<[string, Partial<RegionView>]>([
    ['CVT=jpeg', { region: { type: 'full' }, size: { type: 'max', upscale: false }, format: 'jpg' }],
    ['WID=300&HEI=300&CVT=jpeg', { size: { type: 'fit', w: 300, h: 300, upscale: false } }],
    ['WID=300&CVT=png', { size: { type: 'width', w: 300, upscale: false }, format: 'png' }],
    ['HEI=100&CVT=webp', { size: { type: 'height', h: 100, upscale: false }, format: 'webp' }],
    // RGN without WID/HEI: the region at its own full-resolution size (then MAX_CVT), not upscaled.
    ['RGN=0,0,0.5,0.5&CVT=jpeg', { region: { type: 'fraction', x: 0, y: 0, w: 0.5, h: 0.5 }, size: { type: 'max', upscale: false } }],
    ['CVT=tiff&ROT=!90&COL=binary', { format: 'tif', rotation: { degrees: 90, mirror: true }, quality: 'bitonal' }],
    ['CVT=gif', { format: 'jpg' }],
  ])('%s', (cmds, expected) => {
    const v = viewOf(`FIF=a.tif&${cmds}`);
    expect(v).toMatchObject({ kind: 'region', upscaleRule: 'allowed', ...expected });
  });

  it('is not a tile answer (the handler adds Content-Disposition)', () => {
    expect(answer('FIF=a.tif&CVT=jpeg')).not.toHaveProperty('isTile');
  });
});

describe('PFL and SPECTRA (§4.9)', () => {
  const samples = (request: string, info: ImageInfo = IMAGE): { level: number; rect: object } => {
    const a = answer(request);
    if (a.kind !== 'samples') throw new Error(`expected samples, got ${a.kind}`);
    return a.region(info);
  };
  const raw = (values: number[], channels: number, bits: 8 | 16 | 32 = 8, float = false): RawSamples => {
    const data =
      bits === 8
        ? Buffer.from(values)
        : bits === 16
          ? Buffer.from(new Uint16Array(values).buffer)
          : Buffer.from((float ? new Float32Array(values) : new Uint32Array(values)).buffer);
    return { data, width: values.length / channels, height: 1, channels, bitsPerSample: bits, sampleFormat: float ? 'float' : 'uint' };
  };

  it.each([
    ['PFL=0:10,20-14,20', { level: 3, rect: { x: 10, y: 20, width: 4, height: 1 } }],
    ['PFL=3:5,20-5,120', { level: 0, rect: { x: 5, y: 20, width: 1, height: 100 } }],
    ['PFL=3:7,9', { level: 0, rect: { x: 7, y: 9, width: 1, height: 1 } }],
    ['PFL=0:0,0-250,0', { level: 3, rect: { x: 0, y: 0, width: 250, height: 1 } }],
    // SPECTRA: tile 9 of full resolution is (1,1); the point is inside it.
    ['SPECTRA=3,9,5,6', { level: 0, rect: { x: 261, y: 262, width: 1, height: 1 } }],
  ])('%s reads %j', (cmd, expected) => {
    expect(samples(`FIF=a.tif&${cmd}`)).toEqual(expected);
  });

  it.each(['PFL=0:10,20-251,20', 'PFL=0:-1,0-4,0', 'PFL=0:0,175', 'SPECTRA=3,7,208,0', 'SPECTRA=0,0,250,0'])(
    '%s is a 400 outside the image',
    (cmd) => {
      expect(caught(() => samples(`FIF=a.tif&${cmd}`))).toMatchObject({ status: 400, code: 'BAD_REGION' });
    },
  );

  it('rejects an invalid resolution or tile', () => {
    expect(caught(() => samples('FIF=a.tif&PFL=4:0,0-1,0')).status).toBe(400);
    expect(caught(() => samples('FIF=a.tif&SPECTRA=3,48,0,0')).status).toBe(400);
  });

  it('formats the profile as iipsrv: interleaved samples in native depth', () => {
    expect(formatProfile(raw([11, 30, 34, 12, 30, 34, 13, 30, 35, 14, 30, 35], 3))).toBe(
      '{\n\t"profile": [11,30,34,12,30,34,13,30,35,14,30,35]\n}',
    );
    expect(formatProfile(raw([1000, 65535], 1, 16))).toBe('{\n\t"profile": [1000,65535]\n}');
    expect(formatProfile(raw([0.5, 0.25], 1, 32, true))).toBe('{\n\t"profile": [0.500000000,0.250000000]\n}');
  });

  it('formats SPECTRA as iipsrv: normalised to /255 or /65535, six decimals', () => {
    expect(formatSpectra([{ horizontal: 0, samples: raw([2, 9, 9], 3) }])).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<spectra>\n\t<point>\n\t\t<wavelength>0</wavelength>\n\t\t<reflectance>0.007843</reflectance>\n\t</point>\n</spectra>',
    );
    expect(formatSpectra([{ horizontal: 0, samples: raw([65535], 1, 16) }])).toContain('<reflectance>1.000000</reflectance>');
    expect(formatSpectra([{ horizontal: 0, samples: raw([0.125], 1, 32, true) }])).toContain('<reflectance>0.125000</reflectance>');
  });

  it('lists one SPECTRA point per view, the horizontal angle as the wavelength', () => {
    const body = formatSpectra([
      { horizontal: 400, samples: raw([51], 1) },
      { horizontal: 450, samples: raw([102], 1) },
    ]);
    expect(body.match(/<point>/g)).toHaveLength(2);
    expect(body).toContain('<wavelength>400</wavelength>\n\t\t<reflectance>0.200000</reflectance>');
    expect(body).toContain('<wavelength>450</wavelength>\n\t\t<reflectance>0.400000</reflectance>');
    const a = answer('FIF=a.tif&SPECTRA=0,0,1,1');
    const p = answer('FIF=a.tif&PFL=0:1,1-5,1');
    expect(a.kind === 'samples' && a.everyView).toBe(true);
    expect(p.kind === 'samples' && p.everyView).toBeFalsy();
  });

  it('keys samples by command and arguments', () => {
    const a = answer('FIF=a.tif&PFL=0:1,1-5,1');
    const b = answer('FIF=a.tif&SPECTRA=0,0,1,1');
    expect(a.kind === 'samples' && b.kind === 'samples' && a.variant !== b.variant).toBe(true);
  });
});

describe('IIP setters applied to delegated protocols', () => {
  const setters = (request: string) => parseIipCommands(request, { formats: OPTIONS.formats });

  it('adds processing, COL, QLT and LYR to a DeepZoom tile, and SDS as the member', () => {
    const base = deepzoom.parse({ ...iiifInput('a.tif_files/11/0_0.jpg', { via: 'query' }) });
    const a = withIipSetters(base, setters('CNT=1.5&COL=gray&QLT=30&LYR=4&SDS=5,10&ROT=90&DeepZoom=a.tif_files/11/0_0.jpg'));
    if (a.kind !== 'image') throw new Error('expected image');
    expect(a.member).toEqual({ horizontal: 5, vertical: 10 });
    expect(a.view(IMAGE)).toEqual({
      kind: 'tile',
      level: 0,
      col: 0,
      row: 0,
      format: 'jpg',
      quality: 'gray',
      // ROT is not applied to a delegated protocol.
      rotation: { degrees: 0, mirror: false },
      encoderQuality: 30,
      layers: 4,
      processing: { contrast: 1.5 },
    });
  });

  it("keeps the IIIF view's own quality and adds processing", () => {
    const base = iiif.parse(iiifInput('a.tif/full/max/0/bitonal.jpg'));
    const a = withIipSetters(base, setters('INV&COL=gray&IIIF=a.tif/full/max/0/bitonal.jpg'));
    if (a.kind !== 'image') throw new Error('expected image');
    expect(a.view(IMAGE)).toMatchObject({ quality: 'bitonal', processing: { invert: true } });
  });

  it('changes nothing without setters', () => {
    const base = iiif.parse(iiifInput('a.tif/full/max/0/default.jpg'));
    const a = withIipSetters(base, setters('IIIF=a.tif/full/max/0/default.jpg'));
    if (a.kind !== 'image' || base.kind !== 'image') throw new Error('expected image');
    expect(a.view(IMAGE)).toEqual(base.view(IMAGE));
  });

  it('passes info answers through with the member', () => {
    const base = deepzoom.parse(iiifInput('a.tif.dzi', { via: 'query' }));
    expect(withIipSetters(base, setters('SDS=3&DeepZoom=a.tif.dzi'))).toMatchObject({
      kind: 'info',
      member: { horizontal: 3, vertical: 90 },
    });
  });
});

describe('URI_MAP with IIP', () => {
  it('takes the image from the path (a literal +) and the commands from the query string', () => {
    const a = iip.parse({ ...q('OBJ=Max-size'), via: 'path', argument: 'dir/a+b.tif', request: 'OBJ=Max-size' });
    expect(a).toMatchObject({ kind: 'info', identifier: 'dir/a+b.tif' });
  });
  it('is error 2 1 with no commands', () => {
    expect(() => iip.parse({ ...q(''), via: 'path', argument: 'a.tif', request: '' })).toThrow(IipError);
  });
});
