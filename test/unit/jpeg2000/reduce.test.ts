// Header rewriting for reduced codestreams (decoders/jpeg2000/reduce.ts), on hand-made marker
// segments: SIZ divided by 2^d (and refused when tiles would not divide), COD/COC levels and
// precinct sizes, QCD/QCC subband entries per quantization style, COD layer caps, and the
// segments it must leave alone. Whole codestreams are checked in sparse.test.ts against
// opj_decompress.

import { describe, expect, it } from 'vitest';
import { NotReducible, reducedSiz, rewriteHeader } from '../../../decoders/jpeg2000/reduce.js';
import type { Siz } from '../../../src/jpeg2000/markers.js';

function seg(marker: number, body: number[]): Buffer {
  const b = Buffer.alloc(4 + body.length);
  b.writeUInt16BE(marker, 0);
  b.writeUInt16BE(2 + body.length, 2);
  Buffer.from(body).copy(b, 4);
  return b;
}

const SIZ: Siz = {
  rsiz: 0,
  xsiz: 20000,
  ysiz: 15001,
  x0: 3,
  y0: 0,
  tileWidth: 1024,
  tileHeight: 1024,
  tileX0: 0,
  tileY0: 0,
  components: [{ precision: 8, signed: false, dx: 1, dy: 1 }],
};

describe('reducedSiz', () => {
  it('divides the image and the tiles by 2^d, rounding the image edges up', () => {
    expect(reducedSiz(SIZ, 3)).toMatchObject({ xsiz: 2500, ysiz: 1876, x0: 1, y0: 0, tileWidth: 128, tileHeight: 128 });
  });
  it('refuses tiles that 2^d does not divide, and keeps one tile covering an untiled image', () => {
    expect(reducedSiz({ ...SIZ, tileWidth: 600 }, 4)).toBeNull();
    const untiled = reducedSiz({ ...SIZ, tileWidth: 20000, tileHeight: 15001 }, 7);
    expect(untiled).toMatchObject({ xsiz: 157, ysiz: 118, tileWidth: 157, tileHeight: 118 });
  });
});

describe('rewriteHeader', () => {
  // COD: Scod 1 (precincts), LRCP, 3 layers, MCT 1; 5 levels, cb 64×64, style 0, 9/7; 6 precincts.
  const cod = seg(0xff52, [1, 0, 0, 3, 1, 5, 4, 4, 0, 0, 0x77, 0x77, 0x77, 0x66, 0x55, 0x44]);
  // QCD style 2 (expounded), guard 2: 16 subband entries of 2 bytes.
  const qcd2 = seg(0xff5c, [0x42, ...Array.from({ length: 32 }, (_, i) => i)]);
  // QCD style 0 (reversible): 16 one-byte entries; style 1 (derived): one entry.
  const qcd0 = seg(0xff5c, [0x40, ...Array.from({ length: 16 }, (_, i) => i << 3)]);
  const qcd1 = seg(0xff5c, [0x41, 0x12, 0x34]);
  const com = seg(0xff64, [0, 1, 65, 66]);

  it('takes d levels, precinct sizes and 3d subband entries away', () => {
    const out = rewriteHeader(Buffer.concat([cod, qcd2, com]), { reduce: 2, components: 3 });
    const c = out.subarray(0, 4 + 10 + 4);
    expect(c.readUInt16BE(2)).toBe(2 + 10 + 4); // 4 precinct bytes left
    expect(c[9]).toBe(3);
    expect([...c.subarray(14, 18)]).toEqual([0x77, 0x77, 0x77, 0x66]);
    const q = out.subarray(c.length, c.length + 4 + 1 + 20);
    expect(q.readUInt16BE(0)).toBe(0xff5c);
    expect(q.readUInt16BE(2)).toBe(2 + 1 + 20); // 10 entries of 2 bytes
    expect([...q.subarray(5, 9)]).toEqual([0, 1, 2, 3]);
    expect(out.subarray(c.length + q.length).equals(com)).toBe(true);
  });

  it('keeps derived quantization whole and cuts reversible entries', () => {
    expect(rewriteHeader(qcd1, { reduce: 3, components: 1 }).equals(qcd1)).toBe(true);
    const r = rewriteHeader(qcd0, { reduce: 1, components: 1 });
    expect(r.length).toBe(4 + 1 + 13);
  });

  it('rewrites COC/QCC with two-byte component indices when there are 257+ components', () => {
    const coc = seg(0xff53, [0, 5, 1, 5, 4, 4, 0, 1, 0x55, 0x55, 0x55, 0x55, 0x55, 0x44]);
    const qcc = seg(0xff5d, [0, 5, 0x40, ...Array.from({ length: 16 }, (_, i) => i)]);
    const out = rewriteHeader(Buffer.concat([coc, qcc]), { reduce: 1, components: 300 });
    expect(out[4 + 2 + 1]).toBe(4); // levels
    expect(out.readUInt16BE(2)).toBe(coc.length - 2 - 1);
    const q = out.subarray(coc.length - 1);
    expect(q.readUInt16BE(2)).toBe(2 + 2 + 1 + 13);
  });

  it('caps the layer count, writes SIZ, keeps SOC, and refuses too many levels', () => {
    const siz = seg(0xff51, [0, 0, ...Array.from({ length: 32 }, () => 0), 0, 1, 7, 1, 1]);
    const main = Buffer.concat([Buffer.from([0xff, 0x4f]), siz, cod]);
    const small = reducedSiz(SIZ, 1)!;
    const out = rewriteHeader(main, { reduce: 0, components: 1, siz: small, layers: 2 });
    expect(out.readUInt16BE(0)).toBe(0xff4f);
    expect(out.readUInt32BE(2 + 6)).toBe(small.xsiz);
    expect(out.readUInt32BE(2 + 22)).toBe(small.tileWidth);
    expect(out.readUInt16BE(2 + siz.length + 6)).toBe(2);
    expect(() => rewriteHeader(cod, { reduce: 6, components: 1 })).toThrow(NotReducible);
  });
});
