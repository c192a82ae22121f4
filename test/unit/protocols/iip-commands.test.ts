// IIP command parsing: tokenising as iipsrv does, every setter and output command into the
// neutral IipCommands (processing, member, QLT, region, size, rotation), the order rule, and
// the error lines (2 2 unsupported command, 2 1 malformed).

import { describe, expect, it } from 'vitest';
import {
  NAMED_KERNELS,
  decodeValue,
  parseIipCommands,
  parseKernel,
  parseRot,
  tokenise,
  type IipCommands,
} from '../../../src/protocols/iip-commands.js';

const FORMATS = ['jpg', 'png', 'webp', 'tif'];
const parse = (request: string, image?: string): IipCommands => parseIipCommands(request, { formats: FORMATS, image });

describe('tokenise (§3.2)', () => {
  it.each([
    [
      'FIF=a.tif&JTL=1,0',
      [
        ['FIF', 'a.tif'],
        ['JTL', '1,0'],
      ],
    ],
    // A token without `=` is name = value = token: a bare INV works.
    [
      'FIF=a.tif&INV&JTL=1,0',
      [
        ['FIF', 'a.tif'],
        ['INV', 'INV'],
        ['JTL', '1,0'],
      ],
    ],
    // Empty names and values are dropped.
    ['INV=&=5&&JTL=1,0', [['JTL', '1,0']]],
    // Split at the first `=` only.
    ['IIIF=a=b.tif/info.json', [['IIIF', 'a=b.tif/info.json']]],
    ['', []],
  ])('%s', (request, pairs) => {
    expect(tokenise(request)).toEqual(pairs);
  });
});

describe('decodeValue', () => {
  it('decodes a query value: + is a space, %XX is UTF-8', () => {
    expect(decodeValue('sub+dir%2Fa%2Bb.tif')).toBe('sub dir/a+b.tif');
    expect(decodeValue('caf%C3%A9.tif')).toBe('café.tif');
    expect(decodeValue('100%.tif')).toBe('100%.tif');
  });
  it('keeps + in a path', () => {
    expect(decodeValue('a+b.tif', false)).toBe('a+b.tif');
  });
  it('rejects bytes that are not UTF-8', () => {
    expect(() => decodeValue('%FF.tif')).toThrow(/UTF-8/);
  });
});

describe('setters', () => {
  it.each<[string, Partial<IipCommands>]>([
    ['FIF=dir%2Fimage+1.tif', { image: 'dir/image 1.tif' }],
    ['SDS=10,45', { member: { horizontal: 10, vertical: 45 } }],
    // One value leaves the vertical angle at its default 90 (§13 #14; iipsrv set 0).
    ['SDS=3', { member: { horizontal: 3, vertical: 90 } }],
    ['QLT=60', { encoderQuality: 60 }],
    ['QLT=deflate:6', { encoderQuality: 6, tiffCompression: 'deflate' }],
    ['QLT=foo:3', { encoderQuality: 3, tiffCompression: 'none' }],
    ['WID=300', { width: 300 }],
    ['HEI=200', { height: 200 }],
    ['RGN=0.1,0.2,0.5,0.25', { region: { x: 0.1, y: 0.2, w: 0.5, h: 0.25 } }],
    // Each value is clamped to [0, 1].
    ['RGN=-0.5,0.2,1.5,0.25', { region: { x: 0, y: 0.2, w: 1, h: 0.25 } }],
    ['ROT=90', { rotation: { degrees: 90, mirror: false } }],
    ['ROT=!180', { rotation: { degrees: 180, mirror: true } }],
    ['ROT=-90', { rotation: { degrees: 270, mirror: false } }],
    ['ROT=360', { rotation: { degrees: 0, mirror: false } }],
    ['LYR=3', { layers: 3 }],
    ['COL=grey', { quality: 'gray' }],
    ['COL=GRAY', { quality: 'gray' }],
    ['COL=binary', { quality: 'bitonal' }],
  ])('%s', (request, expected) => {
    const c = parse(request);
    expect(c).toMatchObject(expected);
    expect(c.errors).toEqual([]);
  });

  it.each([
    ['RGN=0.1,0.2,0,0.5', 'region'],
    ['RGN=0.1,0.2,0.5', 'region'],
    ['RGN=a,b,c,d', 'region'],
    ['WID=0', 'width'],
    ['WID=-3', 'width'],
    ['HEI=abc', 'height'],
    ['ROT=45', 'rotation'],
    ['LYR=0', 'layers'],
    ['SDS=x', 'member'],
    ['COL=sepia', 'quality'],
  ] as const)('ignores %s (noted, not an error)', (request, field) => {
    const c = parse(request);
    if (field === 'rotation') expect(c.rotation).toEqual({ degrees: 0, mirror: false });
    else expect(c[field]).toBeUndefined();
    expect(c.errors).toEqual([]);
    expect(c.notes.length).toBe(1);
  });

  it('lets the last of a repeated setter win', () => {
    expect(parse('QLT=10&QLT=90&WID=5&WID=7').encoderQuality).toBe(90);
    expect(parse('WID=5&WID=7').width).toBe(7);
    expect(parse('FIF=a.tif&FIF=b.tif').image).toBe('b.tif');
  });

  it('takes the image from a URI_MAP path, and a FIF in the query overrides it', () => {
    expect(parse('OBJ=Max-size', 'from/path.tif').image).toBe('from/path.tif');
    expect(parse('FIF=q.tif&OBJ=Max-size', 'from/path.tif').image).toBe('q.tif');
  });

  it('accepts ICC as a no-op', () => {
    const c = parse('ICC=whatever&JTL=0,0');
    expect(c.errors).toEqual([]);
    expect(c.processing).toEqual({});
  });
});

describe('processing commands → Processing', () => {
  it.each<[string, object]>([
    ['CNT=1.5', { contrast: 1.5 }],
    ['CNT=0', { contrast: 0 }],
    ['CNT=st', { contrast: 'stretch' }],
    ['CNT=stretch', { contrast: 'stretch' }],
    ['CNT=eq', { contrast: 'equalization' }],
    ['CNT=Equalization', { contrast: 'equalization' }],
    // A contrast or gamma of 1 is no change: left out, so passthrough and cache keys stay.
    ['CNT=1', {}],
    ['CNT=-2', {}],
    ['BIT=16', { bitDepth: 16 }],
    ['BIT=8', {}],
    ['BIT=12', {}],
    ['GAM=2.2', { gamma: 2.2 }],
    ['GAM=log', { gamma: 'log' }],
    ['GAM=logarithm', { gamma: 'log' }],
    ['GAM=1', {}],
    ['GAM=0', {}],
    ['INV', { invert: true }],
    ['INV=1', { invert: true }],
    ['INV=', {}],
    ['CMP=hot', { colormap: 'hot' }],
    ['CMP=JET', { colormap: 'jet' }],
    ['CMP=cold', { colormap: 'cold' }],
    ['CMP=blue', { colormap: 'blue' }],
    ['CMP=green', { colormap: 'green' }],
    ['CMP=red', { colormap: 'red' }],
    ['CMP=rainbow', {}],
    ['SHD=30,45', { hillshade: { horizontal: 30, vertical: 45 } }],
    ['SHD=30', {}],
    [
      'CTW=[0.5,0.5,0;0,1,0;0,0,1]',
      {
        twist: [
          [0.5, 0.5, 0],
          [0, 1, 0],
          [0, 0, 1],
        ],
      },
    ],
    // URL-encoded as clients send it.
    [
      'CTW=%5B1,0,0%3B0,1,0%3B0,0,1%5D',
      {
        twist: [
          [1, 0, 0],
          [0, 1, 0],
          [0, 0, 1],
        ],
      },
    ],
    // Fewer rows than inputs: a channel-reducing twist.
    ['CTW=[0.2126,0.7152,0.0722]', { twist: [[0.2126, 0.7152, 0.0722]] }],
    ['CTW=[1,0;0,1,0]', {}],
    ['CTW=[a,b]', {}],
    ['MINMAX=0:10,200', { minmax: [{ channel: 0, min: 10, max: 200 }] }],
    ['MINMAX=-:0,4095', { minmax: [{ channel: -1, min: 0, max: 4095 }] }],
    [
      'MINMAX=1:0.5,1.5&MINMAX=2:1,2',
      {
        minmax: [
          { channel: 1, min: 0.5, max: 1.5 },
          { channel: 2, min: 1, max: 2 },
        ],
      },
    ],
    ['MINMAX=1:0,1&MINMAX=1:5,6', { minmax: [{ channel: 1, min: 5, max: 6 }] }],
    ['MINMAX=0:1,2&MINMAX=-:3,4', { minmax: [{ channel: -1, min: 3, max: 4 }] }],
    ['MINMAX=0:abc', {}],
  ])('%s', (request, processing) => {
    const c = parse(request);
    expect(c.processing).toEqual(processing);
    expect(c.errors).toEqual([]);
  });

  it.each(Object.entries(NAMED_KERNELS))('CNV=%s is its 3×3 kernel', (name, kernel) => {
    expect(parse(`CNV=${name}`).processing.convolution).toEqual(kernel);
    expect(parse(`CNV=${name.toUpperCase()}`).processing.convolution).toEqual(kernel);
    expect(kernel).toHaveLength(9);
  });

  it('defines the standard kernels', () => {
    expect(NAMED_KERNELS.sobel).toEqual([-1, 0, 1, -2, 0, 2, -1, 0, 1]);
    expect(NAMED_KERNELS.laplace.reduce((a, b) => a + b, 0)).toBe(0);
    expect(NAMED_KERNELS.gaussian.reduce((a, b) => a + b, 0)).toBe(16);
    expect(NAMED_KERNELS.sharpen.reduce((a, b) => a + b, 0)).toBe(1);
  });

  it.each<[string, number[] | null]>([
    ['[1,2,1,2,4,2,1,2,1]', [1, 2, 1, 2, 4, 2, 1, 2, 1]],
    ['%5B0,0,0,0,1,0,0,0,0%5D', [0, 0, 0, 0, 1, 0, 0, 0, 0]],
    ['[1]', [1]],
    [`[${Array(25).fill(1).join(',')}]`, Array(25).fill(1)],
    ['[1,2,3,4]', null], // even side
    ['[1,2,3]', null], // not square
    [`[${Array(49).fill(1).join(',')}]`, null], // 7×7 is beyond 5×5
    ['[1,x,3]', null],
    ['unknown', null],
  ])('CNV=%s', (value, kernel) => {
    expect(parseKernel(decodeValue(value))).toEqual(kernel);
    expect(parse(`CNV=${value}`).processing.convolution).toEqual(kernel ?? undefined);
  });

  it('collects processing wherever it appears in the request', () => {
    const c = parse('FIF=a.tif&JTL=1,0&CNT=2&GAM=0.5&INV&CMP=hot&QLT=5');
    expect(c.processing).toEqual({ contrast: 2, gamma: 0.5, invert: true, colormap: 'hot' });
    expect(c.encoderQuality).toBe(5);
  });
});

describe('parseRot', () => {
  it.each<[string, object | null]>([
    ['0', { degrees: 0, mirror: false }],
    ['90', { degrees: 90, mirror: false }],
    ['270', { degrees: 270, mirror: false }],
    ['!0', { degrees: 0, mirror: true }],
    ['!90', { degrees: 90, mirror: true }],
    ['450', { degrees: 90, mirror: false }],
    ['90.0', { degrees: 90, mirror: false }],
    ['-0', { degrees: 0, mirror: false }],
    ['30', null],
    ['abc', null],
  ])('ROT=%s', (v, rot) => {
    expect(parseRot(v)).toEqual(rot);
  });
});

describe('output commands', () => {
  it.each<[string, object]>([
    ['JTL=3,12', { command: 'JTL', format: 'jpg', resolution: 3, tile: 12 }],
    ['jtl=0,0', { command: 'JTL', format: 'jpg', resolution: 0, tile: 0 }],
    ['PTL=2,5', { command: 'PTL', format: 'png', resolution: 2, tile: 5 }],
    ['WTL=2,5', { command: 'WTL', format: 'webp', resolution: 2, tile: 5 }],
    ['TTL=2,5', { command: 'TTL', format: 'tif', resolution: 2, tile: 5 }],
    ['JTLS=10,2,5,45', { command: 'JTLS', format: 'jpg', resolution: 2, tile: 5 }],
    ['TIL=1,0-3', { command: 'TIL', resolution: 1, start: 0, end: 3 }],
    ['TIL=1,5', { command: 'TIL', resolution: 1, start: 5, end: 5 }],
    ['CVT=jpeg', { command: 'CVT', format: 'jpg' }],
    ['CVT=JPG', { command: 'CVT', format: 'jpg' }],
    ['CVT=png', { command: 'CVT', format: 'png' }],
    ['CVT=webp', { command: 'CVT', format: 'webp' }],
    ['CVT=tiff', { command: 'CVT', format: 'tif' }],
    // Anything else, or a format this build cannot encode, falls back to JPEG.
    ['CVT=gif', { command: 'CVT', format: 'jpg' }],
    ['CVT=avif', { command: 'CVT', format: 'jpg' }],
    ['PFL=0:10,20-14,20', { command: 'PFL', resolution: 0, x1: 10, y1: 20, x2: 14, y2: 20 }],
    ['PFL=2:7,9', { command: 'PFL', resolution: 2, x1: 7, y1: 9, x2: 7, y2: 9 }],
    ['SPECTRA=0,1,5,6', { command: 'SPECTRA', resolution: 0, tile: 1, x: 5, y: 6 }],
    ['IIIF=a.tif/info.json', { command: 'IIIF', argument: 'a.tif/info.json' }],
    ['zoomify=a.tif/ImageProperties.xml', { command: 'Zoomify', argument: 'a.tif/ImageProperties.xml' }],
    ['DEEPZOOM=a.tif.dzi', { command: 'DeepZoom', argument: 'a.tif.dzi' }],
  ])('%s', (request, output) => {
    const c = parse(request);
    expect(c.output).toMatchObject(output);
    expect(c.errors).toEqual([]);
  });

  it('JTLS sets the member to its own angles', () => {
    expect(parse('SDS=1,2&JTLS=10,2,5,45').member).toEqual({ horizontal: 10, vertical: 45 });
  });

  it('collects OBJ arguments lower-cased, in order, as one output', () => {
    const c = parse('FIF=a.tif&OBJ=IIP,1.0&obj=Max-size&OBJ=Tile-size&OBJ=Resolution-number&OBJ=Resolutions');
    expect(c.output).toEqual({ command: 'OBJ' });
    expect(c.objects).toEqual(['iip,1.0', 'max-size', 'tile-size', 'resolution-number', 'resolutions']);
  });

  it.each([
    ['JTL=1', 'FIF=a.tif&JTL=1'],
    ['JTL=a,b', 'FIF=a.tif&JTL=a,b'],
    ['TIL=1', 'FIF=a.tif&TIL=1'],
    ['PFL=0:1', 'FIF=a.tif&PFL=0:1'],
    ['SPECTRA=0,1,5', 'FIF=a.tif&SPECTRA=0,1,5'],
    ['JTLS=1,2,3', 'FIF=a.tif&JTLS=1,2,3'],
  ])('a malformed %s is error 2 1 with the whole request', (_cmd, request) => {
    expect(parse(request).errors).toEqual([{ code: '2 1', argument: request }]);
  });

  it('PTL/WTL/ATL exist only for formats the encoder has (else 2 2)', () => {
    const c = parseIipCommands('FIF=a.tif&WTL=0,0', { formats: ['jpg', 'png'] });
    expect(c.errors).toEqual([{ code: '2 2', argument: 'WTL' }]);
    expect(parse('FIF=a.tif&ATL=0,0').errors).toEqual([{ code: '2 2', argument: 'ATL' }]);
  });
});

describe('order rule', () => {
  it('applies setters that come after the output command (JTL=1,0&QLT=5 uses QLT)', () => {
    const c = parse('FIF=a.tif&JTL=1,0&QLT=5');
    expect(c.output).toMatchObject({ command: 'JTL', resolution: 1, tile: 0 });
    expect(c.encoderQuality).toBe(5);
  });

  it('answers only the first output command and notes the others', () => {
    const c = parse('FIF=a.tif&JTL=1,0&JTL=1,1&CVT=jpeg');
    expect(c.output).toMatchObject({ command: 'JTL', tile: 0 });
    expect(c.notes).toHaveLength(2);
    expect(c.notes[0]).toMatch(/^JTL=1,1 ignored/);
  });

  it('combines OBJs around other output commands when OBJ comes first, and drops them when it does not', () => {
    const first = parse('FIF=a.tif&OBJ=Max-size&JTL=0,0&OBJ=Tile-size');
    expect(first.output).toEqual({ command: 'OBJ' });
    expect(first.objects).toEqual(['max-size', 'tile-size']);
    const later = parse('FIF=a.tif&JTL=0,0&OBJ=Max-size');
    expect(later.output).toMatchObject({ command: 'JTL' });
    expect(later.objects).toEqual([]);
  });

  it('gives the same commands whatever the order', () => {
    const a = parse('FIF=a.tif&CNT=2&WID=300&RGN=0,0,0.5,0.5&CVT=png&QLT=3');
    const b = parse('CVT=png&QLT=3&RGN=0,0,0.5,0.5&WID=300&CNT=2&FIF=a.tif');
    const strip = ({ request: _r, ...rest }: IipCommands): object => rest;
    expect(strip(a)).toEqual(strip(b));
  });

  it('applies setters around a delegated output too', () => {
    const c = parse('CNT=1.5&DeepZoom=a.tif_files/9/0_0.jpg&GAM=2');
    expect(c.output).toEqual({ command: 'DeepZoom', argument: 'a.tif_files/9/0_0.jpg' });
    expect(c.processing).toEqual({ contrast: 1.5, gamma: 2 });
  });
});

describe('errors', () => {
  it('reports an unsupported command as 2 2 with its name as sent', () => {
    expect(parse('FIF=a.tif&XYZ=1').errors).toEqual([{ code: '2 2', argument: 'XYZ' }]);
    expect(parse('FIF=a.tif&foo').errors).toEqual([{ code: '2 2', argument: 'foo' }]);
  });

  it('accumulates several errors', () => {
    expect(parse('aa=1&FIF=a.tif&bb=2&OBJ=Max-size').errors).toEqual([
      { code: '2 2', argument: 'aa' },
      { code: '2 2', argument: 'bb' },
    ]);
  });

  it('throws for a FIF that does not decode', () => {
    expect(() => parse('FIF=%C3%28.tif&OBJ=Max-size')).toThrow(/UTF-8/);
  });
});
