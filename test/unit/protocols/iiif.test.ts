// IIIF request parsing: identifiers, parameters (v2 and v3 rules), version negotiation, the
// base-URI redirect, canonical/profile Link headers and error bodies.

import { describe, expect, it } from 'vitest';
import { ImageServerError } from '../../../src/core/errors.js';
import type { ErrorCode } from '../../../src/core/errors.js';
import type { ImageInfo } from '../../../src/core/image-info.js';
import type { RegionView, ViewRequest } from '../../../src/core/view.js';
import { iiif, negotiateVersion } from '../../../src/protocols/iiif.js';
import type { ProtocolAnswer } from '../../../src/protocols/protocol.js';
import { caught, IMAGE, input, type InputOverrides } from './fixtures.js';

// --- helpers ---------------------------------------------------------------------------------

function expectError(fn: () => unknown, code: ErrorCode, message: string): void {
  const err = caught(fn);
  expect({ code: err.code, status: err.status, message: err.message }).toEqual({ code, status: 400, message });
}

function image(answer: ProtocolAnswer): Extract<ProtocolAnswer, { kind: 'image' }> {
  if (answer.kind !== 'image') throw new Error(`expected an image answer, got ${answer.kind}`);
  return answer;
}

function viewOf(argument: string, o: InputOverrides = {}): RegionView {
  const v = image(iiif.parse(input(argument, o))).view(IMAGE);
  if (v.kind !== 'region') throw new Error('expected a region view');
  return v;
}

const parseParams = (params: string, o: InputOverrides = {}): RegionView => viewOf(`a.tif/${params}`, o);
const V2: InputOverrides = { options: { iiifVersion: 2 } };

function headersOf(argument: string, o: InputOverrides = {}, info: ImageInfo = IMAGE, view?: ViewRequest) {
  const answer = image(iiif.parse(input(argument, o)));
  return answer.headers!(info, view ?? answer.view(info));
}

// --- tests -----------------------------------------------------------------------------------

describe('IIIF protocol identity', () => {
  it('is named IIIF', () => {
    expect(iiif.name).toBe('IIIF');
  });
});

describe('IIIF region', () => {
  it.each([
    ['full', { type: 'full' }],
    ['FULL', { type: 'full' }],
    ['square', { type: 'square' }],
    ['0,0,256,256', { type: 'pixels', x: 0, y: 0, w: 256, h: 256 }],
    ['10.5,20.25,100.5,.5', { type: 'pixels', x: 10.5, y: 20.25, w: 100.5, h: 0.5 }],
    ['5000,5000,10,10', { type: 'pixels', x: 5000, y: 5000, w: 10, h: 10 }], // judged later, against the image
    ['pct:10,20,50,25', { type: 'fraction', x: 0.1, y: 0.2, w: 0.5, h: 0.25 }],
    ['PCT:0,0,100,100', { type: 'fraction', x: 0, y: 0, w: 1, h: 1 }],
    ['pct%3A0,0,50,50', { type: 'fraction', x: 0, y: 0, w: 0.5, h: 0.5 }],
    ['0%2C0%2C256%2C256', { type: 'pixels', x: 0, y: 0, w: 256, h: 256 }],
  ])('%s', (region, spec) => {
    expect(parseParams(`${region}/max/0/default.jpg`).region).toEqual(spec);
  });

  it.each([
    ['0,0,256', '0,0,256'],
    ['0,0,256,256,1', '0,0,256,256,1'],
    ['a,0,256,256', 'a,0,256,256'],
    ['-1,0,256,256', '-1,0,256,256'],
    ['0,0,-5,256', '0,0,-5,256'],
    ['0,0,0,256', '0,0,0,256'],
    ['0,0,256,0', '0,0,256,0'],
    ['0,0,1e3,256', '0,0,1e3,256'],
    ['0,0,,256', '0,0,,256'],
    ['pct:0,0,0,50', 'pct:0,0,0,50'],
    ['pct:0,0,50', 'pct:0,0,50'],
    ['pct:', 'pct:'],
    ['squares', 'squares'],
    ['FULLY', 'fully'],
  ])('rejects %s', (region, shown) => {
    expectError(() => parseParams(`${region}/max/0/default.jpg`), 'BAD_REGION', `IIIF: incorrect region format: ${shown}`);
  });
});

describe('IIIF size, version 3', () => {
  it.each([
    ['max', { type: 'max', upscale: false }],
    ['full', { type: 'max', upscale: false }],
    ['MAX', { type: 'max', upscale: false }],
    ['^max', { type: 'max', upscale: true }],
    ['^full', { type: 'max', upscale: true }],
    ['256,', { type: 'width', w: 256, upscale: false }],
    ['^3000,', { type: 'width', w: 3000, upscale: true }],
    [',175', { type: 'height', h: 175, upscale: false }],
    ['^,2000', { type: 'height', h: 2000, upscale: true }],
    ['pct:50', { type: 'percent', pct: 50, upscale: false }],
    ['pct:12.5', { type: 'percent', pct: 12.5, upscale: false }],
    ['^pct:150', { type: 'percent', pct: 150, upscale: true }],
    ['300,200', { type: 'exact', w: 300, h: 200, upscale: false }],
    ['^3000,2000', { type: 'exact', w: 3000, h: 2000, upscale: true }],
    ['!300,300', { type: 'fit', w: 300, h: 300, upscale: false }],
    ['^!3000,3000', { type: 'fit', w: 3000, h: 3000, upscale: true }],
    ['%5E!3000,3000', { type: 'fit', w: 3000, h: 3000, upscale: true }],
    ['%21300,300', { type: 'fit', w: 300, h: 300, upscale: false }],
    ['0256,', { type: 'width', w: 256, upscale: false }],
  ])('%s', (size, spec) => {
    const v = parseParams(`full/${size}/0/default.jpg`);
    expect(v.size).toEqual(spec);
    expect(v.upscaleRule).toBe('caret');
  });

  it.each([
    ['', 'IIIF: invalid size: '],
    [',', 'IIIF: invalid size: ,'],
    ['abc', 'IIIF: invalid size: abc'],
    ['256', 'IIIF: invalid size: 256'],
    ['256,256,256', 'IIIF: invalid size: 256,256,256'],
    ['0,', 'IIIF: invalid size: 0, (width and height must be positive integers)'],
    [',0', 'IIIF: invalid size: ,0 (width and height must be positive integers)'],
    ['-100,', 'IIIF: invalid size: -100, (width and height must be positive integers)'],
    ['100,-5', 'IIIF: invalid size: 100,-5 (width and height must be positive integers)'],
    ['256.5,', 'IIIF: invalid size: 256.5, (width and height must be positive integers)'],
    ['w,', 'IIIF: invalid size: w,'],
    ['!300,', 'IIIF: invalid size: !300,'],
    ['!,300', 'IIIF: invalid size: !,300'],
    ['!max', 'IIIF: invalid size: !max'],
    ['!^300,300', 'IIIF: invalid size: !^300,300'],
    ['^^max', 'IIIF: invalid size: ^^max'],
    ['^', 'IIIF: invalid size: ^'],
    ['pct:0', 'IIIF: invalid size: pct:0 (the percentage must be positive)'],
    ['pct:-10', 'IIIF: invalid size: pct:-10 (the percentage must be positive)'],
    ['pct:', 'IIIF: invalid size: pct:'],
    ['pct:abc', 'IIIF: invalid size: pct:abc'],
    ['pct:50,50', 'IIIF: invalid size: pct:50,50'],
    ['99999999999999999999,', 'IIIF: invalid size: 99999999999999999999, (too large)'],
  ])('rejects %j', (size, message) => {
    expectError(() => parseParams(`full/${size}/0/default.jpg`), 'BAD_SIZE', message);
  });
});

describe('IIIF size, version 2', () => {
  it.each([
    ['full', { type: 'max', upscale: false }],
    ['max', { type: 'max', upscale: false }],
    ['256,', { type: 'width', w: 256, upscale: false }],
    ['3000,', { type: 'width', w: 3000, upscale: false }],
    [',175', { type: 'height', h: 175, upscale: false }],
    ['pct:50', { type: 'percent', pct: 50, upscale: false }],
    ['pct:200', { type: 'percent', pct: 200, upscale: false }],
    ['300,200', { type: 'exact', w: 300, h: 200, upscale: false }],
    ['!300,300', { type: 'fit', w: 300, h: 300, upscale: false }],
  ])('%s', (size, spec) => {
    const v = parseParams(`full/${size}/0/default.jpg`, V2);
    expect(v.size).toEqual(spec);
    // Without `^`, upscaling is judged by ALLOW_UPSCALING alone.
    expect(v.upscaleRule).toBe('allowed');
  });

  it.each(['^max', '^300,', '^,300', '^pct:150', '^300,200', '^!300,300', '%5Emax'])('rejects %s', (size) => {
    const shown = size.replace('%5E', '^').toLowerCase();
    expectError(
      () => parseParams(`full/${size}/0/default.jpg`, V2),
      'BAD_SIZE',
      `IIIF: invalid size: ${shown} (the ^ prefix is only defined in IIIF 3)`,
    );
  });

  it('rejects zero sizes too', () => {
    expectError(
      () => parseParams('full/0,0/0/default.jpg', V2),
      'BAD_SIZE',
      'IIIF: invalid size: 0,0 (width and height must be positive integers)',
    );
  });
});

describe('IIIF rotation', () => {
  it.each([
    ['0', { degrees: 0, mirror: false }],
    ['90', { degrees: 90, mirror: false }],
    ['180', { degrees: 180, mirror: false }],
    ['270', { degrees: 270, mirror: false }],
    ['360', { degrees: 0, mirror: false }],
    ['90.0', { degrees: 90, mirror: false }],
    ['-0', { degrees: 0, mirror: false }],
    ['!0', { degrees: 0, mirror: true }],
    ['!90', { degrees: 90, mirror: true }],
    ['!180', { degrees: 180, mirror: true }],
    ['!270', { degrees: 270, mirror: true }],
    ['!360', { degrees: 0, mirror: true }],
    ['%2190', { degrees: 90, mirror: true }],
    // rotationArbitrary
    ['45', { degrees: 45, mirror: false }],
    ['22.5', { degrees: 22.5, mirror: false }],
    ['!45', { degrees: 45, mirror: true }],
    ['1', { degrees: 1, mirror: false }],
    ['359.99', { degrees: 359.99, mirror: false }],
    ['.5', { degrees: 0.5, mirror: false }],
  ])('%s', (rotation, spec) => {
    expect(parseParams(`full/max/${rotation}/default.jpg`).rotation).toEqual(spec);
  });

  it.each(['-90', '450', '360.5', '!-1', '-0.5'])('rejects the angle %s', (rotation) => {
    expectError(
      () => parseParams(`full/max/${rotation}/default.jpg`),
      'BAD_ROTATION',
      `IIIF: rotation must be between 0 and 360 degrees: ${rotation}`,
    );
  });

  it.each(['', 'abc', '!', '!!90', '90!', '9 0', '1e2', 'ninety'])('rejects the non-number %j', (rotation) => {
    expectError(() => parseParams(`full/max/${rotation}/default.jpg`), 'BAD_ROTATION', 'IIIF: invalid rotation');
  });
});

describe('IIIF quality and format', () => {
  it.each([
    ['default.jpg', 'default', 'jpg'],
    ['color.png', 'color', 'png'],
    ['native.jpg', 'default', 'jpg'],
    ['gray.webp', 'gray', 'webp'],
    ['grey.jpg', 'gray', 'jpg'],
    ['bitonal.png', 'bitonal', 'png'],
    ['Default.JPG', 'default', 'jpg'],
    ['GRAY.PNG', 'gray', 'png'],
    ['default', 'default', 'jpg'], // no extension: jpg
    ['bitonal', 'bitonal', 'jpg'],
  ])('%s', (segment, quality, format) => {
    const v = parseParams(`full/max/0/${segment}`);
    expect([v.quality, v.format]).toEqual([quality, format]);
  });

  it.each([
    ['colour.jpg', 'colour'],
    ['negative.jpg', 'negative'],
    ['.jpg', ''],
    ['constructor.jpg', 'constructor'],
    ['toString.jpg', 'tostring'],
  ])('rejects the quality of %s', (segment, quality) => {
    expectError(() => parseParams(`full/max/0/${segment}`), 'BAD_QUALITY', `IIIF: unsupported quality: ${quality}`);
  });

  it.each([
    ['default.gif', 'gif'],
    ['default.jp2', 'jp2'],
    ['default.tif', 'tif'], // not in options.formats here
    ['default.avif', 'avif'],
    ['default.jpeg', 'jpeg'],
    ['default.', ''],
    ['default.jpg.png', 'jpg.png'],
  ])('rejects the format of %s', (segment, format) => {
    expectError(() => parseParams(`full/max/0/${segment}`), 'BAD_FORMAT', `IIIF: unsupported format: ${format}`);
  });

  it('accepts tif when the encoder can write it', () => {
    const v = parseParams('full/max/0/default.tif', { options: { formats: ['jpg', 'png', 'tif'] } });
    expect(v.format).toBe('tif');
  });

  it('rejects webp when the encoder cannot write it', () => {
    expectError(
      () => parseParams('full/max/0/default.webp', { options: { formats: ['jpg', 'png'] } }),
      'BAD_FORMAT',
      'IIIF: unsupported format: webp',
    );
  });

  it('checks the parameters in URL order', () => {
    expect(caught(() => parseParams('bad/bad/bad/bad.bad')).code).toBe('BAD_REGION');
    expect(caught(() => parseParams('full/bad/bad/bad.bad')).code).toBe('BAD_SIZE');
    expect(caught(() => parseParams('full/max/bad/bad.bad')).code).toBe('BAD_ROTATION');
    expect(caught(() => parseParams('full/max/0/bad.bad')).code).toBe('BAD_QUALITY');
    expect(caught(() => parseParams('full/max/0/default.bad')).code).toBe('BAD_FORMAT');
  });
});

describe('IIIF_EXTENSIONS qualities and IIIF_DELIMITER members', () => {
  const EXT: InputOverrides = { options: { iiifExtensions: true } };

  it('extension qualities are the default colours with IIP processing, only when enabled', () => {
    expect(caught(() => parseParams('full/max/0/negative.jpg')).code).toBe('BAD_QUALITY');
    expect(parseParams('full/max/0/negative.jpg', EXT)).toMatchObject({ quality: 'default', processing: { invert: true } });
    expect(parseParams('full/max/0/stretch.jpg', EXT).processing).toEqual({ contrast: 'stretch' });
    expect(parseParams('full/max/0/equalization.jpg', EXT).processing).toEqual({ contrast: 'equalization' });
    expect(parseParams('full/max/0/LOG.jpg', EXT).processing).toEqual({ gamma: 'log' });
    expect(parseParams('full/max/0/gray.jpg', EXT).processing).toBeUndefined();
  });

  it('the delimiter splits at its last whole occurrence, before a number only', () => {
    const of = (argument: string, d: string) => {
      const a = iiif.parse(input(argument, { options: { iiifDelimiter: d } }));
      return a.kind === 'image' || a.kind === 'info' ? { identifier: a.identifier, member: a.member } : undefined;
    };
    expect(of('a:b:3/full/max/0/default.jpg', ':')).toEqual({ identifier: 'a:b', member: { horizontal: 3, vertical: 90 } });
    expect(of('scan--12/info.json', '--')).toEqual({ identifier: 'scan', member: { horizontal: 12, vertical: 90 } });
    expect(of('a:b.tif/info.json', ':')).toEqual({ identifier: 'a:b.tif', member: undefined });
    expect(of(':3/info.json', ':')).toEqual({ identifier: ':3', member: undefined });
    expect(of('a:3/info.json', '')).toEqual({ identifier: 'a:3', member: undefined });
  });
});

describe('IIIF image request', () => {
  it('produces the whole RegionView', () => {
    expect(viewOf('a.tif/pct:0,0,50,50/!400,400/!90/gray.png')).toEqual({
      kind: 'region',
      region: { type: 'fraction', x: 0, y: 0, w: 0.5, h: 0.5 },
      size: { type: 'fit', w: 400, h: 400, upscale: false },
      rotation: { degrees: 90, mirror: true },
      quality: 'gray',
      format: 'png',
      upscaleRule: 'caret',
    });
  });

  it.each([
    ['a.tif/full/max/0/default.jpg', 'a.tif'],
    ['sub/dir/a.tif/full/max/0/default.jpg', 'sub/dir/a.tif'],
    ['sub%2Fa.tif/full/max/0/default.jpg', 'sub/a.tif'],
    ['sub%2fa.tif/full/max/0/default.jpg', 'sub/a.tif'],
    ['a+b.tif/full/max/0/default.jpg', 'a+b.tif'], // RFC 3986: + is a plus, not a space
    ['a%2Bb.tif/full/max/0/default.jpg', 'a+b.tif'],
    ['a%20b.tif/full/max/0/default.jpg', 'a b.tif'],
    ['sub%2Fa%252Bb.tif/full/max/0/default.jpg', 'sub/a%2Bb.tif'], // once, never twice
    ['100%.tif/full/max/0/default.jpg', '100%.tif'], // a lone % is kept
    ['%C3%A9t%C3%A9.tif/full/max/0/default.jpg', 'été.tif'],
    ['A.TIF/FULL/MAX/0/DEFAULT.JPG', 'A.TIF'], // only the parameters are lower-cased
    ['a.tif/full/max/0/default.jpg?t=123', 'a.tif'],
    ['a.tif/full/max/0/default?t=123', 'a.tif'],
    ['x/y/z/full/max/0/default.jpg', 'x/y/z'],
    ['full/full/max/0/default.jpg', 'full'],
  ])('%s → identifier %s', (argument, identifier) => {
    const answer = image(iiif.parse(input(argument)));
    expect(answer.identifier).toBe(identifier);
    expect(answer.view(IMAGE).format).toBe('jpg');
  });

  it('ignores a cache-busting suffix on the format', () => {
    expect(parseParams('full/max/0/default.png?t=123&x=1').format).toBe('png');
  });

  it.each([
    ['a.tif/full/max/0', 'IIIF: Not enough parameters'],
    ['a.tif/full/max', 'IIIF: Not enough parameters'],
    ['a.tif/full', 'IIIF: Not enough parameters'],
    ['a.tif/', 'IIIF: Not enough parameters'],
    ['/full/max/0/default.jpg', 'IIIF: missing identifier'],
    ['', 'IIIF: missing identifier'],
    ['?t=1', 'IIIF: missing identifier'],
    ['%FF.tif/full/max/0/default.jpg', 'IIIF: the request is not valid UTF-8 once percent-decoded'],
  ])('rejects %j', (argument, message) => {
    expectError(() => iiif.parse(input(argument)), 'BAD_REQUEST', message);
  });
});

describe('IIIF info request', () => {
  it.each([
    ['a.tif/info.json', 'a.tif'],
    ['sub/dir/a.tif/info.json', 'sub/dir/a.tif'],
    ['sub%2Fa%2Bb.tif/info.json', 'sub/a+b.tif'],
    ['a+b.tif/info.json', 'a+b.tif'],
    ['a.tif/info.json?t=5', 'a.tif'],
  ])('%s → identifier %s', (argument, identifier) => {
    const answer = iiif.parse(input(argument));
    expect(answer.kind).toBe('info');
    expect(answer.kind === 'info' && answer.identifier).toBe(identifier);
  });

  it.each([
    ['a.tif/info.xml', 'IIIF: unsupported information request: info.xml (use info.json)'],
    ['a.tif/info', 'IIIF: unsupported information request: info (use info.json)'],
    ['a.tif/INFO.JSON', 'IIIF: unsupported information request: INFO.JSON (use info.json)'],
    ['a.tif/full/max/0/info.json.bak', 'IIIF: unsupported information request: info.json.bak (use info.json)'],
    ['/info.json', 'IIIF: missing identifier'],
    ['info.json', 'IIIF: missing identifier'],
  ])('rejects %s', (argument, message) => {
    expectError(() => iiif.parse(input(argument)), 'BAD_REQUEST', message);
  });
});

describe('IIIF base URI redirect', () => {
  it.each<[string, string, InputOverrides, string]>([
    ['URI_MAP with host', 'a.tif', {}, 'http://localhost:8080/iiif/a.tif/info.json'],
    ['https', 'a.tif', { https: true }, 'https://localhost:8080/iiif/a.tif/info.json'],
    ['no Host header', 'a.tif', { headers: {} }, 'http://localhost/iiif/a.tif/info.json'],
    ['a Host that cannot be in a URL', 'a.tif', { headers: { host: 'evil.example/x"<>' } }, 'http://localhost/iiif/a.tif/info.json'],
    ['IPv6 host', 'a.tif', { headers: { host: '[::1]:8080' } }, 'http://[::1]:8080/iiif/a.tif/info.json'],
    ['BASE_URL', 'a.tif', { options: { baseUrl: 'https://images.example.org/iiif/' } }, 'https://images.example.org/iiif/a.tif/info.json'],
    [
      'BASE_URL keeps the identifier encoded',
      'sub%2Fa%2Bb.tif',
      { options: { baseUrl: 'https://images.example.org/iiif/' } },
      'https://images.example.org/iiif/sub%2Fa%2Bb.tif/info.json',
    ],
    ['%2F stays encoded', 'sub%2Fa.tif', {}, 'http://localhost:8080/iiif/sub%2Fa.tif/info.json'],
    [
      'X-IIIF-ID wins',
      'a.tif',
      { headers: { host: 'h', 'x-iiif-id': 'https://iiif.example.org/images/42' }, options: { baseUrl: 'http://b/' } },
      'https://iiif.example.org/images/42/info.json',
    ],
    ['query-string access', 'a.tif', { via: 'query' }, 'http://localhost:8080/fcgi-bin/iipsrv.fcgi?IIIF=a.tif/info.json'],
    [
      'query-string access with a cache buster',
      'a.tif?t=1',
      { via: 'query' },
      'http://localhost:8080/fcgi-bin/iipsrv.fcgi?IIIF=a.tif/info.json',
    ],
    ['URI_MAP with a query string', 'a.tif', { requestUri: '/iiif/a.tif?t=1' }, 'http://localhost:8080/iiif/a.tif/info.json'],
  ])('%s', (_name, argument, o, location) => {
    expect(iiif.parse(input(argument, o))).toEqual({ kind: 'redirect', location });
  });
});

describe('IIIF version negotiation', () => {
  const accept = (n: number): InputOverrides => ({
    headers: { host: 'h', accept: `application/ld+json;profile="http://iiif.io/api/image/${n}/context.json"` },
  });

  it.each<[string, number, InputOverrides, number, boolean]>([
    ['default 3', 3, {}, 3, false],
    ['default 2', 2, {}, 2, false],
    ['unknown default falls back to 3', 7, {}, 3, false],
    ['Accept v2 on a v3 server', 3, accept(2), 2, true],
    ['Accept v3 on a v3 server', 3, accept(3), 3, false],
    ['Accept v3 on a v2 server', 2, accept(3), 3, true],
    ['Accept v1 is ignored', 3, accept(1), 3, false],
    ['plain JSON Accept', 2, { headers: { accept: 'application/json' } }, 2, false],
  ])('%s', (_name, def, o, version, negotiated) => {
    const i = input('a.tif/info.json', { ...o, options: { iiifVersion: def } });
    expect(negotiateVersion(i)).toEqual({ version, negotiated });
  });

  it('applies the v2 size rules to a v2-negotiated image request and marks it private', () => {
    const v2 = accept(2);
    expect(parseParams('full/3000,/0/default.jpg', v2).upscaleRule).toBe('allowed');
    expect(caught(() => parseParams('full/^3000,/0/default.jpg', v2)).code).toBe('BAD_SIZE');
    expect(headersOf('a.tif/full/max/0/default.jpg', v2)).toContainEqual(['Cache-Control', 'private']);
  });

  it('does not mark default-version responses private', () => {
    const h = headersOf('a.tif/full/max/0/default.jpg', accept(3));
    expect(h.some(([name]) => name === 'Cache-Control')).toBe(false);
  });

  it('puts the version into the info variant (cache key) and marks negotiated info private', () => {
    const def = iiif.parse(input('a.tif/info.json'));
    const neg = iiif.parse(input('a.tif/info.json', accept(2)));
    if (def.kind !== 'info' || neg.kind !== 'info') throw new Error('expected info answers');
    expect(def.variant).toBe('iiif3|http://localhost:8080/iiif/a.tif');
    expect(neg.variant).toBe('iiif2|http://h/iiif/a.tif');
    expect(def.format(IMAGE).headers).not.toContainEqual(['Cache-Control', 'private']);
    expect(neg.format(IMAGE).headers).toContainEqual(['Cache-Control', 'private']);
    expect(neg.format(IMAGE).contentType).toBe('application/ld+json;profile="http://iiif.io/api/image/2/context.json"');
  });
});

describe('IIIF canonical and profile Link headers', () => {
  const PROFILE3 = ['Link', '<http://iiif.io/api/image/3/level2.json>;rel="profile"'];
  const canonical = (url: string) => ['Link', `<${url}>;rel="canonical"`];
  const BASE = 'http://localhost:8080/iiif/a.tif';

  it.each([
    ['full/max/0/default.jpg', 'full/max/0/default.jpg'],
    ['full/full/360/native.jpg', 'full/max/0/default.jpg'],
    ['0,0,2000,1400/2000,1400/0/default.jpg', 'full/max/0/default.jpg'],
    ['pct:0,0,100,100/pct:100/0/default.jpg', 'full/max/0/default.jpg'],
    ['0,0,256,256/256,/0/default.jpg', '0,0,256,256/max/0/default.jpg'],
    ['0,0,512,512/256,/0/default.jpg', '0,0,512,512/256,256/0/default.jpg'],
    ['full/250,/0/default.jpg', 'full/250,175/0/default.jpg'],
    ['full/!500,500/0/default.jpg', 'full/500,350/0/default.jpg'],
    ['full/500,100/0/default.jpg', 'full/500,100/0/default.jpg'],
    ['pct:50,50,50,50/max/!90/gray.png', '1000,700,1000,700/max/!90/gray.png'],
    ['1900,1300,500,500/max/0/default.jpg', '1900,1300,100,100/max/0/default.jpg'],
    ['square/^3000,/0/color.webp', '300,0,1400,1400/^3000,3000/0/color.webp'],
    ['0,0,100,100/^max/0/default.jpg', '0,0,100,100/^5000,5000/0/default.jpg'],
    ['full/max/!0/bitonal.jpg', 'full/max/!0/bitonal.jpg'],
  ])('%s → %s', (params, canon) => {
    expect(headersOf(`a.tif/${params}`)).toEqual([canonical(`${BASE}/${canon}`), PROFILE3]);
  });

  it('keeps `max` when MAX_CVT shrinks the image', () => {
    expect(headersOf('a.tif/full/max/0/default.jpg', { options: { maxCvt: 500 } })).toEqual([
      canonical(`${BASE}/full/max/0/default.jpg`),
      PROFILE3,
    ]);
  });

  it('builds the canonical URL on X-IIIF-ID, BASE_URL and query-string bases, encoded as sent', () => {
    expect(headersOf('sub%2Fa.tif/full/max/0/default.jpg', { headers: { 'x-iiif-id': 'https://x.org/i/1' } })[0]).toEqual(
      canonical('https://x.org/i/1/full/max/0/default.jpg'),
    );
    expect(headersOf('sub%2Fa.tif/full/max/0/default.jpg', { options: { baseUrl: 'https://img.org/iiif/' } })[0]).toEqual(
      canonical('https://img.org/iiif/sub%2Fa.tif/full/max/0/default.jpg'),
    );
    expect(headersOf('sub%2Fa.tif/FULL/MAX/0/Default.jpg?t=1', { via: 'query', https: true })[0]).toEqual(
      canonical('https://localhost:8080/fcgi-bin/iipsrv.fcgi?IIIF=sub%2Fa.tif/full/max/0/default.jpg'),
    );
    expect(
      headersOf('a.tif/full/max/0/default.jpg', {
        via: 'query',
        requestUri: '/fcgi-bin/iipsrv.fcgi?CNT=1.5&iiif=a.tif/full/max/0/default.jpg',
      })[0],
    ).toEqual(canonical('http://localhost:8080/fcgi-bin/iipsrv.fcgi?CNT=1.5&iiif=a.tif/full/max/0/default.jpg'));
  });

  it('describes a planned tile by its footprint', () => {
    const tile: ViewRequest = {
      kind: 'tile',
      level: 1,
      col: 1,
      row: 0,
      format: 'jpg',
      quality: 'default',
      rotation: { degrees: 0, mirror: false },
    };
    expect(headersOf('a.tif/512,0,512,512/256,/0/default.jpg', {}, IMAGE, tile)[0]).toEqual(
      canonical(`${BASE}/512,0,512,512/256,256/0/default.jpg`),
    );
    const edge: ViewRequest = { ...tile, level: 0, col: 7, row: 5 };
    expect(headersOf('a.tif/1792,1280,208,120/208,/0/default.jpg', {}, IMAGE, edge)[0]).toEqual(
      canonical(`${BASE}/1792,1280,208,120/max/0/default.jpg`),
    );
  });

  it('leaves the canonical link out for a view that cannot be resolved', () => {
    expect(headersOf('a.tif/3000,0,10,10/max/0/default.jpg')).toEqual([PROFILE3]);
    expect(headersOf('a.tif/full/3000,/0/default.jpg')).toEqual([PROFILE3]); // upscale without ^
  });

  it('uses IIIF 2.1 canonical sizes and the v2 profile for version 2', () => {
    const PROFILE2 = ['Link', '<http://iiif.io/api/image/2/level2.json>;rel="profile"'];
    expect(headersOf('a.tif/full/max/0/default.jpg', V2)).toEqual([canonical(`${BASE}/full/full/0/default.jpg`), PROFILE2]);
    expect(headersOf('a.tif/full/!500,500/0/default.jpg', V2)[0]).toEqual(canonical(`${BASE}/full/500,/0/default.jpg`));
    expect(headersOf('a.tif/full/,175/0/default.jpg', V2)[0]).toEqual(canonical(`${BASE}/full/250,/0/default.jpg`));
    expect(headersOf('a.tif/full/500,100/0/default.jpg', V2)[0]).toEqual(canonical(`${BASE}/full/500,100/0/default.jpg`));
    expect(headersOf('a.tif/full/3000,/0/default.jpg', V2)[0]).toEqual(canonical(`${BASE}/full/3000,/0/default.jpg`));
    expect(headersOf('a.tif/full/max/0/default.jpg', { options: { iiifVersion: 2, maxCvt: 500 } })[0]).toEqual(
      canonical(`${BASE}/full/500,/0/default.jpg`),
    );
  });
});

describe('IIIF error body', () => {
  it('is the message as UTF-8 text, like iipsrv', () => {
    const err = new ImageServerError('BAD_REGION', 'IIIF: incorrect region format: 0,0,0,0');
    expect(iiif.formatError(err, undefined)).toEqual({
      contentType: 'text/plain; charset=utf-8',
      body: 'IIIF: incorrect region format: 0,0,0,0',
    });
    expect(iiif.formatError(new ImageServerError('NOT_FOUND'), input('a.tif/info.json')).body).toBe('Image not found');
  });
});
