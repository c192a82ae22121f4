// Request-field parsing, the cache-model grammar, the fsiz rounding rules and region scaling,
// the tag tree, and the routing rule that tells a JPIP request from an IIP/IIIF one.

import { describe, expect, it } from 'vitest';
import { ImageServerError } from '../../../src/core/errors.js';
import type { ServerRequest } from '../../../src/handler-types.js';
import type { Siz } from '../../../src/jpeg2000/markers.js';
import { PacketBitReader, TagTree } from '../../../src/jpeg2000/tagtree.js';
import { inRanges, parseJpipRequest } from '../../../src/protocols/jpip/fields.js';
import { CacheModel, parseModel, WHOLE } from '../../../src/protocols/jpip/model.js';
import { isJpipRequest } from '../../../src/protocols/jpip/service.js';
import { chooseFrame, resolveWindow } from '../../../src/protocols/jpip/window.js';

const siz = (w: number, h: number, x0 = 0, y0 = 0): Siz => ({
  rsiz: 0,
  xsiz: x0 + w,
  ysiz: y0 + h,
  x0,
  y0,
  tileWidth: x0 + w,
  tileHeight: y0 + h,
  tileX0: 0,
  tileY0: 0,
  components: [{ precision: 8, signed: false, dx: 1, dy: 1 }],
});

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof ImageServerError ? `${err.status} ${err.message}` : String(err);
  }
  return undefined;
}

describe('parseJpipRequest', () => {
  it('reads the fields real clients send', () => {
    const q = parseJpipRequest(
      'cid=abc&stream=0&type=jpp-stream&roff=10,20&rsiz=300,200&fsiz=1024,768,closest&quality=100&comps=0,1,2&len=2000&qid=7',
    );
    expect(q).toMatchObject({
      cid: 'abc',
      stream: [{ from: 0, to: 0 }],
      type: 'jpp-stream',
      roff: { x: 10, y: 20 },
      rsiz: { w: 300, h: 200 },
      fsiz: { fx: 1024, fy: 768, round: 'closest' },
      quality: 100,
      comps: [
        { from: 0, to: 0 },
        { from: 1, to: 1 },
        { from: 2, to: 2 },
      ],
      len: 2000,
      qid: '7',
    });
    expect(parseJpipRequest('fsiz=10,20').fsiz?.round).toBe('round-down');
  });

  it('decodes values once and keeps + literal', () => {
    expect(parseJpipRequest('target=sub%20dir%2Fa+b.jp2').target).toBe('sub dir/a+b.jp2');
    expect(parseJpipRequest('target=%2525').target).toBe('%25');
  });

  it('accepts transport lists, type preference lists and the media-type form', () => {
    expect(parseJpipRequest('cnew=http-tcp,http').cnew).toEqual(['http-tcp', 'http']);
    expect(parseJpipRequest('type=jpp-stream;ptype=ext').type).toBe('jpp-stream');
    expect(parseJpipRequest('type=image/jpt-stream').type).toBe('jpt-stream');
    expect(parseJpipRequest('type=raw,jpt-stream').type).toBe('jpt-stream');
    expect(code(() => parseJpipRequest('type=raw'))).toMatch(/^501 /);
  });

  it('reads stream lists, jpxl contexts and metareq', () => {
    const q = parseJpipRequest('stream=0-9:2,12&metareq=[*]!!');
    expect(inRanges(q.stream!, 4)).toBe(true);
    expect(inRanges(q.stream!, 5)).toBe(false);
    expect(inRanges(q.stream!, 12)).toBe(true);
    expect(q.metareq).toEqual({ types: ['*'], only: true });
    expect(parseJpipRequest('context=jpxl<3-4>').stream).toEqual([{ from: 3, to: 4 }]);
    expect(parseJpipRequest('metareq=[xml /!;uuid:20]R').metareq).toEqual({ types: ['xml ', 'uuid'], only: false });
    expect(parseJpipRequest('comps=2-').comps).toEqual([{ from: 2, to: Infinity }]);
  });

  it.each([
    'fsiz=0,10',
    'fsiz=10',
    'fsiz=10,10,nearest',
    'roff=a,b',
    'rsiz=-1,4',
    'len=-5',
    'layers=x',
    'quality=101',
    'quality=-2',
    'comps=3-1',
    'qid=q',
    'target=',
    'cid=',
  ])('rejects %s with a 400 naming the field', (query) => {
    const msg = code(() => parseJpipRequest(query));
    expect(msg).toMatch(/^400 Expected .* for (fsiz|roff|rsiz|len|layers|quality|comps|qid|target|cid) but received/);
  });

  it('accepts signed region offsets and unknown fields', () => {
    expect(parseJpipRequest('roff=-5,3&wait=no&abandon=x&tpmodel=1').roff).toEqual({ x: -5, y: 3 });
  });
});

describe('model grammar', () => {
  it('parses explicit bins, qualifiers, subtraction and codestream qualifiers', () => {
    expect(parseModel('model', 'Hm,H0,Ht3,P12:40,P13:L2,M0,T*,-P5')).toEqual([
      { subtract: false, bin: { kind: 'main' } },
      { subtract: false, bin: { kind: 'tileHeader', id: 0 } },
      { subtract: false, bin: { kind: 'tileHeader', id: 3 } },
      { subtract: false, bin: { kind: 'precinct', id: 12 }, bytes: 40 },
      { subtract: false, bin: { kind: 'precinct', id: 13 }, layers: 2 },
      { subtract: false, bin: { kind: 'meta', id: 0 } },
      { subtract: false, bin: { kind: 'tile', id: '*' } },
      { subtract: true, bin: { kind: 'precinct', id: 5 } },
    ]);
    const q = parseModel('model', '[1-2],Hm,[0;3]P1');
    expect(q[0]).toMatchObject({ streams: [{ from: 1, to: 2 }], bin: { kind: 'main' } });
    expect(q[1]).toMatchObject({
      streams: [
        { from: 0, to: 0 },
        { from: 3, to: 3 },
      ],
    });
  });

  it('parses implicit precinct sets', () => {
    expect(parseModel('model', 't0c1-2r*p3:L1')).toEqual([
      {
        subtract: false,
        bin: {
          kind: 'implicit',
          t: [{ from: 0, to: 0 }],
          c: [{ from: 1, to: 2 }],
          r: [{ from: 0, to: Infinity }],
          p: [{ from: 3, to: 3 }],
        },
        layers: 1,
      },
    ]);
  });

  it('rejects what it cannot read', () => {
    expect(code(() => parseModel('model', 'Q5'))).toMatch(/^400 Expected cache-model items/);
    expect(code(() => parseModel('need', 'P1:x'))).toMatch(/for need/);
  });

  it('CacheModel keeps the largest prefix per bin and forgets on subtraction', () => {
    const m = new CacheModel();
    m.add(0, 0, 7, 10);
    m.add(0, 0, 7, 5);
    expect(m.held(0, 0, 7)).toBe(10);
    expect(m.held(1, 0, 7)).toBe(0);
    expect(m.held(0, 2, 7)).toBe(0);
    m.add(0, 6, 0, WHOLE);
    expect(m.size).toBe(2);
    m.remove(0, 0, 7, 4);
    expect(m.held(0, 0, 7)).toBe(4);
    m.remove(0, 0, 7);
    expect(m.held(0, 0, 7)).toBe(0);
    expect(m.size).toBe(1);
    expect(m.approxBytes).toBeGreaterThan(0);
  });
});

describe('fsiz rounding and regions', () => {
  // 1000×600 with 3 levels: frames 1000×600, 500×300, 250×150, 125×75.
  const s = siz(1000, 600);
  it.each([
    ['round-down', 600, 400, 1],
    ['round-down', 500, 300, 1],
    ['round-down', 499, 300, 2],
    ['round-down', 10, 10, 3],
    ['round-up', 600, 400, 0],
    ['round-up', 500, 300, 1],
    ['round-up', 2000, 2000, 0],
    ['round-up', 1, 1, 3],
    ['closest', 400, 250, 1],
    ['closest', 300, 150, 2],
  ] as const)('%s %i×%i gives discard %i', (round, fx, fy, d) => {
    expect(chooseFrame(s, 3, fx, fy, round).discard).toBe(d);
  });

  it('uses ceil(Xsiz/2^d) − ceil(XOsiz/2^d) for origins off zero', () => {
    const f = chooseFrame(siz(512, 384, 37, 21), 3, 256, 192, 'round-down');
    expect(f).toEqual({ discard: 1, width: Math.ceil(549 / 2) - Math.ceil(37 / 2), height: Math.ceil(405 / 2) - Math.ceil(21 / 2) });
  });

  it('scales roff/rsiz to the frame chosen and reports what changed', () => {
    const w = resolveWindow(s, 3, { fx: 600, fy: 400, round: 'round-down' }, { x: 60, y: 40 }, { w: 120, h: 80 });
    expect(w.frame).toEqual({ discard: 1, width: 500, height: 300 });
    expect(w.region).toEqual({ x: 50, y: 30, w: 100, h: 60 });
    expect(w.headers).toEqual([
      ['JPIP-fsiz', '500,300'],
      ['JPIP-roff', '50,30'],
      ['JPIP-rsiz', '100,60'],
    ]);
    const exact = resolveWindow(s, 3, { fx: 500, fy: 300, round: 'round-down' }, { x: 10, y: 10 }, { w: 20, h: 20 });
    expect(exact.headers).toEqual([]);
  });

  it('clips regions to the frame, negative offsets included', () => {
    const w = resolveWindow(s, 3, { fx: 1000, fy: 600, round: 'round-down' }, { x: -10, y: 590 }, { w: 30, h: 30 });
    expect(w.region).toEqual({ x: 0, y: 590, w: 20, h: 10 });
    expect(w.headers).toEqual([
      ['JPIP-roff', '0,590'],
      ['JPIP-rsiz', '20,10'],
    ]);
    expect(resolveWindow(s, 3, { fx: 1000, fy: 600, round: 'round-down' }, { x: 2000, y: 0 }).region.w).toBe(0);
  });
});

describe('tag tree', () => {
  it('decodes a leaf value against growing thresholds, keeping state between calls', () => {
    // 1×1 tree holding 2: threshold 1 reads "0" (value ≥ 1); threshold 3 reads "0", "1".
    const bits = Buffer.from([0b00100000]);
    const r = new PacketBitReader(bits, 0);
    const t = TagTree.create(1, 1);
    expect(t.decode(r, 0, 0, 1)).toBe(false);
    expect(t.decode(r, 0, 0, 3)).toBe(true);
    expect(t.value(0, 0)).toBe(2);
  });

  it('shares parent nodes between leaves', () => {
    // 2×1 leaves {1, 3}: root (min 1): "0","1"; leaf 0: "1" → 1. Leaf 1 from the root's 1: "0","0","1" → 3.
    const r = new PacketBitReader(Buffer.from([0b01100100]), 0);
    const t = TagTree.create(2, 1);
    expect(t.decode(r, 0, 0, 10)).toBe(true);
    expect(t.value(0, 0)).toBe(1);
    expect(t.decode(r, 1, 0, 10)).toBe(true);
    expect(t.value(1, 0)).toBe(3);
  });

  it('skips the stuffed bit after 0xFF and the extra byte when aligning after it', () => {
    const r = new PacketBitReader(Buffer.from([0xff, 0x7f, 0xff, 0x00, 0xaa]), 0);
    expect(r.bits(8)).toBe(0xff);
    expect(r.bits(7)).toBe(0x7f);
    expect(r.bits(8)).toBe(0xff);
    r.align();
    expect(r.pos).toBe(4);
  });
});

describe('routing rule', () => {
  const req = (uri: string, method = 'GET', body = ''): ServerRequest => {
    const q = uri.indexOf('?');
    return { method, query: q < 0 ? '' : uri.slice(q + 1), requestUri: uri, headers: {}, https: false, body: Buffer.from(body) };
  };
  it.each([
    ['/fcgi-bin/iipsrv.fcgi?target=a.jp2&fsiz=10,10', true],
    ['/fcgi-bin/iipsrv.fcgi?cid=x&len=100', true],
    ['/images/a.jp2?cnew=http&type=jpp-stream&tid=0', true],
    ['/jpip/a.jp2?fsiz=100,100', true],
    ['/jpip', true],
    ['/jpipx/a.jp2', false],
    ['/fcgi-bin/iipsrv.fcgi?FIF=a.jp2&CVT=jpeg', false],
    ['/fcgi-bin/iipsrv.fcgi?FIF=a.jp2&target=x', false],
    ['/fcgi-bin/iipsrv.fcgi?IIIF=a.jp2/info.json&cid=3', false],
    ['/fcgi-bin/iipsrv.fcgi?fsiz=10,10', false],
  ])('%s → %s', (uri, jpip) => {
    expect(isJpipRequest(req(uri), 'jpip')).toBe(jpip);
  });

  it('reads POSTed fields and can switch the path prefix off', () => {
    expect(isJpipRequest(req('/fcgi-bin/iipsrv.fcgi', 'POST', 'cid=x&model=Hm'), 'jpip')).toBe(true);
    expect(isJpipRequest(req('/jpip/a.jp2'), '')).toBe(false);
  });
});
