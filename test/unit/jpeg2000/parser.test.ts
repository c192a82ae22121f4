// The JPEG 2000 structure parser (src/jpeg2000): every field it reads from SIZ/COD/COC/QCD and
// the main-header marker list equals opj_dump's output for files made by opj_compress in many
// layouts; boxes, tile-parts (Psot walk, TLM, PLT), geometry, and bad input.

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageServerError } from '../../../src/core/errors.js';
import {
  BufferSource,
  Codestream,
  MARKERS,
  openJpeg2000,
  precinctCount,
  precinctDataBinId,
  PROGRESSION_ORDERS,
  reducedSize,
  resolutionRect,
  sniffJpeg2000,
  tileComponentRect,
  tileRect,
  tilesInArea,
  type Jpeg2000File,
} from '../../../src/jpeg2000/index.js';
import { JP2_SPECS, opjDecompress } from '../../fixtures/make-jp2.js';
import { opjDump, setupJp2Fixtures, type Jp2FixtureSet } from './helpers.js';

let fx: Jp2FixtureSet;
beforeAll(async () => {
  fx = await setupJp2Fixtures();
}, 60_000);
afterAll(async () => {
  await fx?.cleanup();
});

async function withFile<T>(name: string, fn: (f: Jpeg2000File) => Promise<T>): Promise<T> {
  const f = await openJpeg2000(fx.files[name].path);
  try {
    return await fn(f);
  } finally {
    await f.close();
  }
}

describe('main header equals opj_dump', () => {
  for (const spec of JP2_SPECS) {
    it(spec.name, async () => {
      const fixture = fx.files[spec.name];
      const dump = await opjDump(fixture.path);
      await withFile(spec.name, async (f) => {
        const cs = f.codestream;
        const { siz, cod } = cs.header;
        expect({ x0: siz.x0, y0: siz.y0, x1: siz.xsiz, y1: siz.ysiz, numcomps: siz.components.length }).toEqual({
          x0: dump.image.x0,
          y0: dump.image.y0,
          x1: dump.image.x1,
          y1: dump.image.y1,
          numcomps: dump.image.numcomps,
        });
        expect(siz.components.map((c) => ({ dx: c.dx, dy: c.dy, prec: c.precision, sgnd: c.signed ? 1 : 0 }))).toEqual(dump.image.comps);
        expect({ tx0: siz.tileX0, ty0: siz.tileY0, tdx: siz.tileWidth, tdy: siz.tileHeight, tw: cs.tilesAcross, th: cs.tilesDown }).toEqual(
          dump.tiles,
        );
        expect({ csty: cod.scod, prg: PROGRESSION_ORDERS.indexOf(cod.progression), numlayers: cod.layers, mct: cod.mct }).toEqual(
          dump.tile,
        );
        dump.comps.forEach((dc, i) => {
          const st = cs.codingStyle(i);
          expect(st.levels + 1).toBe(dc.numresolutions);
          expect(st.codeBlockWidth).toBe(2 ** dc.cblkw);
          expect(st.codeBlockHeight).toBe(2 ** dc.cblkh);
          expect(st.codeBlockStyle).toBe(dc.cblksty);
          expect(st.transform).toBe(dc.qmfbid);
          expect(st.customPrecincts ? 1 : 0).toBe(dc.csty & 1);
          expect(st.precincts.map((p) => [p.ppx, p.ppy])).toEqual(dc.precincts);
          const q = cs.header.qcc.find((x) => x.component === i)?.quantization ?? cs.header.qcd;
          expect(q.style).toBe(dc.qntsty);
          expect(q.guardBits).toBe(dc.numgbits);
          if (q.style !== 1) expect(q.steps.map((s) => [s.mantissa, s.exponent])).toEqual(dc.steps.slice(0, q.steps.length));
          expect(cs.header.rgn.find((r) => r.component === i)?.shift ?? 0).toBe(dc.roishift);
        });
        // Main-header range and marker list (opj_dump's len counts the marker bytes too).
        expect(cs.header.offset).toBe(dump.mainHeader.start);
        expect(cs.header.offset + cs.header.length).toBe(dump.mainHeader.end);
        expect(cs.header.segments.map((s) => ({ type: s.marker, pos: s.offset, len: s.length }))).toEqual(dump.mainHeader.markers);
        // What the fixture asked for.
        expect(cod.layers).toBe(spec.layers);
        expect(cod.levels).toBe(spec.resolutions - 1);
      });
    });
  }
});

describe('options seen in the codestream', () => {
  it('SOP/EPH flags, PLT, TLM, precincts, code-block size', async () => {
    await withFile('rgb-tiled-rpcl.jp2', async (f) => {
      const cod = f.codestream.header.cod;
      expect([cod.sop, cod.eph, cod.progression]).toEqual([true, true, 'RPCL']);
      const parts = await f.codestream.tileParts();
      expect(parts.every((p) => p.header.plt.length > 0)).toBe(true);
    });
    await withFile('rgb-tiled-rlcp.j2k', async (f) => {
      const h = f.codestream.header;
      expect([h.cod.sop, h.cod.eph, h.cod.progression]).toEqual([false, false, 'RLCP']);
      expect(h.tlm.length).toBe(1);
      // Precincts given for the two highest resolutions; lower ones halve (opj_compress).
      expect(h.cod.precincts.map((p) => 2 ** p.ppx)).toEqual([16, 32, 64]);
    });
    await withFile('rgb-pcrl-lossy.jp2', async (f) => {
      const h = f.codestream.header;
      expect([h.cod.codeBlockWidth, h.cod.codeBlockHeight, h.cod.transform]).toEqual([32, 32, 1]);
    });
    await withFile('grey8.jp2', async (f) => {
      expect(f.codestream.header.cod.transform).toBe(0); // -I: irreversible 9/7
    });
  });

  it('reads the comment opj_compress writes', async () => {
    await withFile('rgb-lrcp.jp2', async (f) => {
      expect(f.codestream.header.comments[0]?.text).toMatch(/OpenJPEG/);
    });
  });
});

describe('JP2 boxes', () => {
  it('finds signature, ftyp, jp2h (ihdr, colr) and jp2c', async () => {
    await withFile('rgb-lrcp.jp2', async (f) => {
      expect(f.kind).toBe('jp2');
      const b = f.boxes!;
      expect(b.brand).toBe('jp2 ');
      expect(b.boxes.map((x) => x.type)).toEqual(expect.arrayContaining(['jP  ', 'ftyp', 'jp2h', 'jp2c']));
      expect(b.header!.ihdr).toMatchObject({ width: 700, height: 500, components: 3, precision: 8, compression: 7 });
      expect(b.header!.colour[0]).toMatchObject({ method: 1, enumerated: 16 });
      const jp2c = b.codestreams[0];
      expect(f.codestream.offset).toBe(jp2c.offset + jp2c.headerLength);
    });
    await withFile('grey16.jp2', async (f) => {
      expect(f.boxes!.header!.colour[0].enumerated).toBe(17);
      expect(f.boxes!.header!.ihdr.precision).toBe(16);
    });
  });

  it('treats a raw codestream as j2k without boxes', async () => {
    await withFile('rgb16.j2k', async (f) => {
      expect(f.kind).toBe('j2k');
      expect(f.boxes).toBeUndefined();
      expect(f.codestream.offset).toBe(0);
    });
  });

  it('sniffs JP2 and J2K magic only', () => {
    expect(sniffJpeg2000(Buffer.from('0000000c6a5020200d0a870a', 'hex'))).toBe('jp2');
    expect(sniffJpeg2000(Buffer.from('ff4fff51002f', 'hex'))).toBe('j2k');
    expect(sniffJpeg2000(Buffer.from('ffd8ffe000104a46', 'hex'))).toBeNull();
    expect(sniffJpeg2000(Buffer.from('49492a00', 'hex'))).toBeNull();
  });
});

describe('tile-parts', () => {
  it('walks every tile-part: contiguous, one per tile, ends at EOC', async () => {
    for (const name of ['rgb-tiled-rpcl.jp2', 'rgb-tiled-rlcp.j2k', 'origin.j2k', 'rgb-lrcp.jp2']) {
      await withFile(name, async (f) => {
        const cs = f.codestream;
        const parts = await cs.tileParts();
        expect(parts.map((p) => p.tile)).toEqual(Array.from({ length: cs.tileCount }, (_, i) => i));
        let pos = cs.firstTilePartOffset;
        for (const p of parts) {
          expect(p.offset).toBe(pos);
          expect(p.truncated).toBe(false);
          expect(p.segments[0].name).toBe('SOT');
          expect(p.segments[p.segments.length - 1].name).toBe('SOD');
          expect(p.dataOffset).toBe(p.offset + p.headerLength);
          expect(p.headerLength + p.dataLength).toBe(p.length);
          pos += p.length;
        }
        const eoc = await cs.readBytes(pos, 2);
        expect(eoc.readUInt16BE(0)).toBe(MARKERS.EOC);
        expect(pos + 2).toBe(cs.offset + cs.length);
        // Raw segment access: SOT bytes start with FF90.
        expect((await cs.readSegment(parts[0].segments[0])).readUInt16BE(0)).toBe(MARKERS.SOT);
      });
    }
  });

  it('PLT packet lengths add up to each tile-part data length', async () => {
    for (const name of ['rgb-tiled-rpcl.jp2', 'rgb-pcrl-lossy.jp2']) {
      await withFile(name, async (f) => {
        for (const p of await f.codestream.tileParts()) {
          const sum = p.header.plt.flatMap((x) => x.lengths).reduce((a, b) => a + b, 0);
          expect(sum).toBe(p.dataLength);
        }
      });
    }
  });

  it('PLT packet count = layers × resolutions × components × precincts', async () => {
    await withFile('rgb-tiled-rpcl.jp2', async (f) => {
      const cs = f.codestream;
      const { cod, siz } = cs.header;
      for (const p of await cs.tilePartsOf(0).then((x) => x)) {
        let precincts = 0;
        for (let c = 0; c < siz.components.length; c++) {
          const tc = tileComponentRect(siz, p.tile, c);
          for (let r = 0; r <= cod.levels; r++) {
            const n = precinctCount(resolutionRect(tc, cod.levels, r), cod.precincts[r].ppx, cod.precincts[r].ppy);
            precincts += n.across * n.down;
          }
        }
        expect(p.header.plt.flatMap((x) => x.lengths).length).toBe(precincts * cod.layers);
      }
    });
  });

  it('TLM lengths equal the walked tile-part lengths', async () => {
    await withFile('rgb-tiled-rlcp.j2k', async (f) => {
      const parts = await f.codestream.tileParts();
      const tlm = f.codestream.header.tlm.flatMap((t) => t.entries);
      expect(tlm.map((e) => e.length)).toEqual(parts.map((p) => p.length));
      expect(tlm.map((e) => e.tile)).toEqual(parts.map((p) => p.tile));
    });
  });

  it('marks a truncated last tile-part instead of failing', async () => {
    const buf = await readFile(fx.files['rgb-tiled-rpcl.jp2'].path);
    const f = await openJpeg2000(new BufferSource(buf.subarray(0, buf.length - 1000)));
    const parts = await f.codestream.tileParts();
    expect(parts[parts.length - 1].truncated).toBe(true);
  });
});

describe('geometry', () => {
  it('reduced sizes equal what opj_decompress -r produces', async () => {
    const fixture = fx.files['origin.j2k'];
    await withFile('origin.j2k', async (f) => {
      for (const r of [1, 2, 3]) {
        const { image } = await opjDecompress(fixture.path, fx.dir, { reduce: r, channels: 3, tag: `geom-r${r}` });
        expect(reducedSize(f.codestream.siz, r)).toEqual({ width: image.width, height: image.height });
      }
    });
  });

  it('tile rectangles are clipped to the image origin; tiles in an area', async () => {
    await withFile('origin.j2k', async (f) => {
      const siz = f.codestream.siz;
      // Tile grid origin 5,3, tiles 128²: the first tile starts at the image origin 13,7.
      expect(tileRect(siz, 0)).toEqual({ x0: 13, y0: 7, x1: 133, y1: 131 });
      expect(tilesInArea(siz, { x0: 13, y0: 7, x1: 134, y1: 132 })).toEqual([0, 1, f.codestream.tilesAcross, f.codestream.tilesAcross + 1]);
      expect(precinctDataBinId(3, 1, 2, 3, 20)).toBe(3 + (1 + 2 * 3) * 20);
    });
  });
});

describe('bad input', () => {
  async function expectError(buf: Buffer, code: string, message: RegExp): Promise<void> {
    const err = await openJpeg2000(new BufferSource(buf)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ImageServerError);
    expect((err as ImageServerError).code).toBe(code);
    expect((err as ImageServerError).message).toMatch(message);
  }

  it('truncated main header, broken SIZ, missing COD, junk', async () => {
    const j2k = await readFile(fx.files['rgb16.j2k'].path);
    await expectError(j2k.subarray(0, 30), 'CORRUPT_IMAGE', /truncated/);
    const noSiz = Buffer.from(j2k);
    noSiz.writeUInt16BE(MARKERS.COM, 2);
    await expectError(noSiz, 'UNSUPPORTED_IMAGE', /not a JP2/); // FF4F followed by no SIZ is not sniffed
    const zeroSize = Buffer.from(j2k);
    zeroSize.writeUInt32BE(0, 8); // Xsiz = 0 (after SOC, SIZ, Lsiz, Rsiz)
    await expectError(zeroSize, 'CORRUPT_IMAGE', /empty image area/);
    await expectError(Buffer.from('hello world, not an image'), 'UNSUPPORTED_IMAGE', /not a JP2/);
    // COD segment turned into an unknown marker: no COD in the main header.
    const cs = await Codestream.read(new BufferSource(j2k));
    const cod = cs.header.segments.find((s) => s.name === 'COD')!;
    const noCod = Buffer.from(j2k);
    noCod.writeUInt16BE(0xff6f, cod.offset);
    await expectError(noCod, 'CORRUPT_IMAGE', /no COD/);
  });

  it('JP2 without a codestream box, and a bad box length', async () => {
    const jp2 = await readFile(fx.files['rgb-lrcp.jp2'].path);
    const f = await openJpeg2000(new BufferSource(jp2));
    const jp2c = f.boxes!.codestreams[0];
    await expectError(jp2.subarray(0, jp2c.offset), 'CORRUPT_IMAGE', /no contiguous codestream/);
    const bad = Buffer.from(jp2);
    bad.writeUInt32BE(3, 12); // ftyp length 3 < header
    await expectError(bad, 'CORRUPT_IMAGE', /box length/);
  });

  it('reads a huge declared file lazily (only the header bytes)', async () => {
    const jp2 = await readFile(fx.files['rgb-tiled-rpcl.jp2'].path);
    let bytesRead = 0;
    const src = new BufferSource(jp2);
    const counting = {
      size: src.size,
      read: async (o: number, n: number) => {
        const b = await src.read(o, n);
        bytesRead += b.length;
        return b;
      },
      close: async () => {},
    };
    await openJpeg2000(counting);
    expect(bytesRead).toBeLessThan(20_000); // one 16 KB window: the header is a few hundred bytes
    expect(jp2.length).toBeGreaterThan(100_000);
  });

  it('messages never contain the file path', async () => {
    const path = join(fx.dir, 'secret-dir-name.jp2');
    await writeFile(path, Buffer.concat([Buffer.from('0000000c6a5020200d0a870a', 'hex'), Buffer.alloc(10)]));
    const err = (await openJpeg2000(path).catch((e: unknown) => e)) as ImageServerError;
    expect(err).toBeInstanceOf(ImageServerError);
    expect(err.message).not.toContain('secret-dir-name');
  });
});
