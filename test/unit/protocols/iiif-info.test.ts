// info.json (IIIF 3 and 2) and the id it carries: golden documents for the spec's example
// image, pyramid and limit variations, rights escaping, and every way the id is built.

import { describe, expect, it } from 'vitest';
import type { ImageInfo } from '../../../src/core/image-info.js';
import { iiif } from '../../../src/protocols/iiif.js';
import { iiifBaseUri, rightsOf } from '../../../src/protocols/iiif-info.js';
import type { FormattedBody } from '../../../src/protocols/protocol.js';
import { IMAGE, OPTIONS, input, pyramid, type InputOverrides } from './fixtures.js';

// --- helpers ---------------------------------------------------------------------------------

/** 10 px/cm stored in the file, as in the spec's observed example. */
const WITH_RES: ImageInfo = { ...IMAGE, resolution: { x: 10, y: 10, unit: 'cm' } };

function infoBody(argument: string, info: ImageInfo = WITH_RES, o: InputOverrides = {}): FormattedBody {
  const answer = iiif.parse(input(argument, o));
  if (answer.kind !== 'info') throw new Error(`expected an info answer, got ${answer.kind}`);
  return answer.format(info);
}

/** A parsed info.json; tests reach into it freely and compare with toEqual. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = Record<string, any>;

function infoJson(argument: string, info: ImageInfo = WITH_RES, o: InputOverrides = {}): Doc {
  return JSON.parse(infoBody(argument, info, o).body) as Doc;
}

const V2: InputOverrides = { options: { iiifVersion: 2 } };

const FEATURES3 = [
  'regionByPct',
  'regionSquare',
  'sizeByPct',
  'sizeByConfinedWh',
  'sizeByWh',
  'sizeUpscaling',
  'rotationBy90s',
  'rotationArbitrary',
  'mirroring',
  'baseUriRedirect',
  'canonicalLinkHeader',
  'profileLinkHeader',
  'cors',
  'jsonldMediaType',
];

const SUPPORTS2 = [
  'regionByPct',
  'regionSquare',
  'sizeByConfinedWh',
  'sizeByForcedWh',
  'sizeByDistortedWh',
  'sizeByWh',
  'sizeAboveFull',
  'rotationBy90s',
  'rotationArbitrary',
  'mirroring',
  'baseUriRedirect',
  'canonicalLinkHeader',
  'profileLinkHeader',
  'cors',
  'jsonldMediaType',
];

const PHYSDIM = [
  {
    '@context': 'http://iiif.io/api/annex/services/physdim/1/context.json',
    profile: 'http://iiif.io/api/annex/services/physdim',
    physicalScale: 0.1,
    physicalUnits: 'cm',
  },
];

const SIZES = [
  { width: 250, height: 175 },
  { width: 500, height: 350 },
  { width: 1000, height: 700 },
];

// --- tests -----------------------------------------------------------------------------------

describe('info.json, version 3', () => {
  const GOLDEN = {
    '@context': 'http://iiif.io/api/image/3/context.json',
    protocol: 'http://iiif.io/api/image',
    width: 2000,
    height: 1400,
    sizes: SIZES,
    tiles: [{ width: 256, height: 256, scaleFactors: [1, 2, 4, 8] }],
    id: 'http://localhost:8080/iiif/deflate_pyr.tif',
    type: 'ImageService3',
    profile: 'level2',
    maxWidth: 5000,
    maxHeight: 5000,
    maxArea: 25000000,
    extraQualities: ['color', 'gray', 'bitonal'],
    extraFormats: ['webp'],
    extraFeatures: FEATURES3,
    service: PHYSDIM,
  };

  it('matches the golden document, keys in iipsrv order', () => {
    const doc = infoJson('deflate_pyr.tif/info.json');
    expect(doc).toEqual(GOLDEN);
    expect(Object.keys(doc)).toEqual(Object.keys(GOLDEN));
  });

  it('is pretty-printed JSON-LD with a profile Link header', () => {
    const body = infoBody('deflate_pyr.tif/info.json');
    expect(body.contentType).toBe('application/ld+json;profile="http://iiif.io/api/image/3/context.json"');
    expect(body.headers).toEqual([['Link', '<http://iiif.io/api/image/3/level2.json>;rel="profile"']]);
    expect(body.body.startsWith('{\n  "@context": "http://iiif.io/api/image/3/context.json",\n')).toBe(true);
  });

  it('has no service without a physical resolution and uses inches when the file does', () => {
    expect(infoJson('a.tif/info.json', IMAGE)).not.toHaveProperty('service');
    const inches = infoJson('a.tif/info.json', { ...IMAGE, resolution: { x: 300, y: 300, unit: 'in' } });
    expect(inches.service).toEqual([{ ...PHYSDIM[0], physicalScale: 1 / 300, physicalUnits: 'in' }]);
    expect(infoJson('a.tif/info.json', { ...IMAGE, resolution: { x: 0, y: 0, unit: 'cm' } })).not.toHaveProperty('service');
  });

  it('omits maxWidth, maxHeight and maxArea when MAX_CVT is unlimited', () => {
    const doc = infoJson('a.tif/info.json', IMAGE, { options: { maxCvt: -1 } });
    expect(doc).not.toHaveProperty('maxWidth');
    expect(doc).not.toHaveProperty('maxHeight');
    expect(doc).not.toHaveProperty('maxArea');
    expect(doc.profile).toBe('level2');
  });

  it('advertises exactly the formats the encoder writes', () => {
    const formats = (f: string[]) => infoJson('a.tif/info.json', IMAGE, { options: { formats: f } }).extraFormats;
    expect(formats(['jpg', 'png', 'webp', 'tif', 'avif'])).toEqual(['webp', 'tif', 'avif']);
    expect(formats(['jpg', 'png'])).toEqual([]);
    expect(formats(['jpg', 'png', 'gif', 'tif'])).toEqual(['tif']); // gif is no output format of ours
  });

  it('leaves color out for a grey image', () => {
    const grey: ImageInfo = { ...IMAGE, channels: 1, colourSpace: 'grey', minValues: [0], maxValues: [255] };
    expect(infoJson('a.tif/info.json', grey).extraQualities).toEqual(['gray', 'bitonal']);
    expect(infoJson('a.tif/info.json', { ...IMAGE, channels: 4 }).extraQualities).toEqual(['color', 'gray', 'bitonal']);
  });

  it('does not claim sizeUpscaling when upscaling is off', () => {
    const features = infoJson('a.tif/info.json', IMAGE, { options: { allowUpscaling: false } }).extraFeatures;
    expect(features).toEqual(FEATURES3.filter((f) => f !== 'sizeUpscaling'));
  });

  it('uses real-ratio scale factors for an odd-sized pyramid', () => {
    const odd: ImageInfo = {
      ...IMAGE,
      width: 2001,
      height: 1399,
      levels: pyramid([
        [2001, 1399],
        [1001, 700],
        [501, 350],
        [251, 175],
      ]),
    };
    const doc = infoJson('odd.tif/info.json', odd);
    expect([doc.width, doc.height]).toEqual([2001, 1399]);
    expect(doc.tiles).toEqual([{ width: 256, height: 256, scaleFactors: [1, 2, 4, 8] }]);
    expect(doc.sizes).toEqual([
      { width: 251, height: 175 },
      { width: 501, height: 350 },
      { width: 1001, height: 700 },
    ]);
  });

  it('reports rectangular tiles and a single-level image correctly', () => {
    const single: ImageInfo = {
      ...IMAGE,
      width: 640,
      height: 480,
      levels: [{ width: 640, height: 480, tileWidth: 256, tileHeight: 128 }],
    };
    const doc = infoJson('s.tif/info.json', single);
    expect(doc.sizes).toEqual([{ width: 640, height: 480 }]);
    expect(doc.tiles).toEqual([{ width: 256, height: 128, scaleFactors: [1] }]);
  });
});

describe('info.json, version 2', () => {
  const GOLDEN = {
    '@context': 'http://iiif.io/api/image/2/context.json',
    protocol: 'http://iiif.io/api/image',
    width: 2000,
    height: 1400,
    sizes: SIZES,
    tiles: [{ width: 256, height: 256, scaleFactors: [1, 2, 4, 8] }],
    '@id': 'http://localhost:8080/iiif/deflate_pyr.tif',
    profile: [
      'http://iiif.io/api/image/2/level2.json',
      {
        formats: ['jpg', 'png', 'webp'],
        qualities: ['default', 'color', 'gray', 'bitonal'],
        supports: SUPPORTS2,
        maxWidth: 5000,
        maxHeight: 5000,
        maxArea: 25000000,
      },
    ],
    service: PHYSDIM,
  };

  it('matches the golden document, keys in iipsrv order', () => {
    const doc = infoJson('deflate_pyr.tif/info.json', WITH_RES, V2);
    expect(doc).toEqual(GOLDEN);
    expect(Object.keys(doc)).toEqual(Object.keys(GOLDEN));
  });

  it('has the v2 content type and no extra headers', () => {
    const body = infoBody('deflate_pyr.tif/info.json', WITH_RES, V2);
    expect(body.contentType).toBe('application/ld+json;profile="http://iiif.io/api/image/2/context.json"');
    expect(body.headers).toEqual([]);
  });

  it('omits the limits when MAX_CVT is unlimited, and color for grey images', () => {
    const grey: ImageInfo = { ...IMAGE, channels: 1, colourSpace: 'grey' };
    const doc = infoJson('a.tif/info.json', grey, { options: { iiifVersion: 2, maxCvt: -1, allowUpscaling: false } });
    expect(doc.profile[1]).toEqual({
      formats: ['jpg', 'png', 'webp'],
      qualities: ['default', 'gray', 'bitonal'],
      supports: SUPPORTS2.filter((s) => s !== 'sizeAboveFull'),
    });
  });

  it('carries rights as license', () => {
    const doc = infoJson('a.tif/info.json', { ...IMAGE, metadata: { rights: 'https://creativecommons.org/licenses/by/4.0/' } }, V2);
    expect(doc.license).toBe('https://creativecommons.org/licenses/by/4.0/');
    expect(Object.keys(doc).slice(-1)).toEqual(['license']);
  });
});

describe('info.json rights', () => {
  it('escapes quotes, backslashes and newlines in the rights value', () => {
    const rights = 'Copyright "Museum" C:\\images\nAll rights reserved';
    const body = infoBody('a.tif/info.json', { ...IMAGE, metadata: { rights } });
    expect(body.body).toContain('"rights": "Copyright \\"Museum\\" C:\\\\images\\nAll rights reserved"');
    expect(JSON.parse(body.body).rights).toBe(rights);
  });

  it.each<[string, Record<string, string>, string, string | undefined]>([
    [
      'image rights first',
      { rights: 'http://rightsstatements.org/vocab/InC/1.0/' },
      'https://c.org/x',
      'http://rightsstatements.org/vocab/InC/1.0/',
    ],
    [
      'COPYRIGHT when it is a URI',
      {},
      'https://creativecommons.org/publicdomain/zero/1.0/',
      'https://creativecommons.org/publicdomain/zero/1.0/',
    ],
    ['not a free-text COPYRIGHT', {}, 'Copyright 2024 The Museum', undefined],
    ['nothing', {}, '', undefined],
    ['blank image rights fall back', { rights: '  ' }, 'urn:example:rights', 'urn:example:rights'],
  ])('%s', (_name, metadata, copyright, expected) => {
    expect(rightsOf({ ...IMAGE, metadata }, { ...OPTIONS, copyright })).toBe(expected);
    const doc = infoJson('a.tif/info.json', { ...IMAGE, metadata }, { options: { copyright } });
    if (expected === undefined) expect(doc).not.toHaveProperty('rights');
    else expect(Object.entries(doc).slice(-1)).toEqual([['rights', expected]]);
  });
});

describe('info.json id', () => {
  it.each<[string, string, InputOverrides, string]>([
    ['URI_MAP', 'deflate_pyr.tif/info.json', {}, 'http://localhost:8080/iiif/deflate_pyr.tif'],
    ['https', 'deflate_pyr.tif/info.json', { https: true }, 'https://localhost:8080/iiif/deflate_pyr.tif'],
    ['no Host', 'a.tif/info.json', { headers: {} }, 'http://localhost/iiif/a.tif'],
    ['query string', 'image.tif/info.json', { via: 'query', headers: { host: 'host' } }, 'http://host/fcgi-bin/iipsrv.fcgi?IIIF=image.tif'],
    [
      'query string with commands before IIIF',
      'image.tif/info.json',
      { via: 'query', headers: { host: 'host' }, requestUri: '/iipsrv?GAM=2&IIIF=image.tif/info.json' },
      'http://host/iipsrv?GAM=2&IIIF=image.tif',
    ],
    [
      'encoded identifier kept as sent, never decoded or %-rewritten',
      'sub%2Fa%2Bb%25.tif/info.json',
      {},
      'http://localhost:8080/iiif/sub%2Fa%2Bb%25.tif',
    ],
    ['identifier with slashes', 'sub/dir/a.tif/info.json', {}, 'http://localhost:8080/iiif/sub/dir/a.tif'],
    ['cache buster', 'a.tif/info.json?t=1', { requestUri: '/iiif/a.tif/info.json?t=1' }, 'http://localhost:8080/iiif/a.tif'],
    [
      'BASE_URL + identifier as sent',
      'sub%2Fa.tif/info.json',
      { options: { baseUrl: 'https://images.example.org/iiif/' } },
      'https://images.example.org/iiif/sub%2Fa.tif',
    ],
    [
      'X-IIIF-ID verbatim, before BASE_URL',
      'a.tif/info.json',
      { headers: { 'x-iiif-id': 'https://iiif.example.org/ark:/123/x%20y' }, options: { baseUrl: 'https://b/' } },
      'https://iiif.example.org/ark:/123/x%20y',
    ],
    [
      'an unusual mount path',
      'a.tif/info.json',
      { requestUri: '/images/iiif//a.tif/info.json?x' },
      'http://localhost:8080/images/iiif//a.tif',
    ],
  ])('%s', (_name, argument, o, id) => {
    expect(infoJson(argument, IMAGE, o).id).toBe(id);
    expect(infoJson(argument, IMAGE, { ...o, options: { ...o.options, iiifVersion: 2 } })['@id']).toBe(id);
    const answer = iiif.parse(input(argument, o));
    expect(answer.kind === 'info' && answer.variant).toBe(`iiif3|${id}`);
  });

  it('escapes an id with quotes through JSON, not by rewriting', () => {
    const body = infoBody('a.tif/info.json', IMAGE, { headers: { 'x-iiif-id': 'https://x.org/a"b\\c%d' } });
    expect(body.body).toContain('"id": "https://x.org/a\\"b\\\\c%d"');
  });

  it('falls back to the path segments when the argument is not the end of the path', () => {
    const i = input('a.tif/info.json', { requestUri: '/iiif/A.TIF/info.json' });
    expect(iiifBaseUri({ input: i, rawIdentifier: 'a.tif', argument: 'a.tif/info.json', trailingSegments: 1 })).toBe(
      'http://localhost:8080/iiif/A.TIF',
    );
  });
});

describe('the cors feature', () => {
  it('is listed only when CORS headers are configured', () => {
    const features = (cors: boolean): string[] => infoJson('a.tif/info.json', WITH_RES, { options: { cors } }).extraFeatures;
    expect(features(true)).toContain('cors');
    expect(features(false)).not.toContain('cors');
    expect(infoJson('a.tif/info.json', WITH_RES, { options: { cors: false, iiifVersion: 2 } }).profile[1].supports).not.toContain('cors');
  });
});
