// The TIFF decoder's raw sample path (decoders/tiff/samples.ts): CIELAB delivered as float
// L*a*b*, multispectral bands kept in place, every codec and predictor of the path (made from
// our fixtures with libtiff's tiffcp), and clear refusals of layouts it cannot read.

import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageDecoder, RawImage } from '../../../decoders/decoder.js';
import { tiffDecoder } from '../../../decoders/tiff/index.js';
import { lzwDecode, packbitsDecode } from '../../../decoders/tiff/samples.js';
import { ImageServerError } from '../../../src/core/errors.js';
import {
  BANDS,
  bandValue,
  DEEP_H,
  DEEP_W,
  LAB_PATCHES,
  makeScienceFixtures,
  PATCH_H,
  PATCH_W,
  patchAt,
} from '../../fixtures/make-science.js';

const run = promisify(execFile);

let dir: string;
let f: Record<string, string>;
const opened: ImageDecoder[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tiff-science-'));
  f = await makeScienceFixtures(dir);
  // tiffcp -c lzw:2 multi8.tif multi8-lzw.tif      (LZW with horizontal predictor)
  // tiffcp -c packbits multi8.tif multi8-packbits.tif
  // tiffcp -s -r 7 -c zip multi8.tif multi8-strips.tif   (strips of 7 rows, deflate)
  // tiffcp -B multi16.tif multi16-be.tif          (big-endian 16-bit)
  // tiffcp -c lzw lab8.tif lab8-lzw.tif
  for (const [args, name] of [
    [['-c', 'lzw:2', f.multi8], 'multi8Lzw'],
    [['-c', 'packbits', f.multi8], 'multi8Packbits'],
    [['-s', '-r', '7', '-c', 'zip', f.multi8], 'multi8Strips'],
    [['-B', f.multi16], 'multi16Be'],
    [['-c', 'lzw', f.lab8], 'lab8Lzw'],
  ] as const) {
    f[name] = join(dir, `${name}.tif`);
    await run('tiffcp', [...args, f[name]]);
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(opened.map((d) => d.close()));
  await rm(dir, { recursive: true, force: true });
});

async function open(name: string): Promise<ImageDecoder> {
  const d = await tiffDecoder.open(f[name]);
  opened.push(d);
  return d;
}

function samples(r: RawImage): ArrayLike<number> {
  if (r.bitsPerSample === 32) return new Float32Array(r.data.buffer, r.data.byteOffset, r.data.byteLength / 4);
  if (r.bitsPerSample === 16) return new Uint16Array(r.data.buffer, r.data.byteOffset, r.data.byteLength / 2);
  return r.data;
}

describe('CIELAB is read raw, as float L*, a*, b*', () => {
  it('8-bit CIELab: L = byte / 2.55, a and b signed', async () => {
    const d = await open('lab8');
    expect(d.info).toMatchObject({ colourSpace: 'cielab', channels: 3, bitsPerSample: 8, width: PATCH_W, height: PATCH_H });
    const r = await d.readRegion(0, { x: 0, y: 0, width: PATCH_W, height: PATCH_H });
    expect(r).toMatchObject({ bitsPerSample: 32, sampleFormat: 'float', channels: 3 });
    const s = samples(r);
    for (const [x, y] of [
      [5, 5],
      [40, 3],
      [70, 20],
      [100, 60],
      [127, 63],
    ]) {
      const [L, a, b] = LAB_PATCHES[patchAt(x, y)];
      const i = (y * PATCH_W + x) * 3;
      expect(s[i]).toBeCloseTo(L / 2.55, 4);
      expect(s[i + 1]).toBe(a);
      expect(s[i + 2]).toBe(b);
    }
  });

  it('16-bit CIELab: L = v / 655.35 (unsigned), a and b = signed / 256; deflate', async () => {
    const d = await open('lab16');
    expect(d.info).toMatchObject({ colourSpace: 'cielab', bitsPerSample: 16, sampleFormat: 'int' });
    const s = samples(await d.readRegion(0, { x: 60, y: 30, width: 10, height: 10 }));
    const [L, a, b] = LAB_PATCHES[patchAt(60, 30)];
    expect(s[0]).toBeCloseTo(L / 2.55, 3);
    expect(s[1]).toBeCloseTo(a, 5);
    expect(s[2]).toBeCloseTo(b, 5);
  });

  it('8-bit ICCLab: a and b offset by 128', async () => {
    const s = samples(await (await open('icclab8')).readRegion(0, { x: 70, y: 40, width: 1, height: 1 }));
    const [L, a, b] = LAB_PATCHES[patchAt(70, 40)];
    expect([s[0], s[1], s[2]].map((v) => Math.round(v * 1000) / 1000)).toEqual([Math.round((L / 2.55) * 1000) / 1000, a, b]);
  });

  it('LZW-compressed CIELAB reads the same as uncompressed', async () => {
    const a = await (await open('lab8')).readRegion(0, { x: 10, y: 10, width: 100, height: 40 });
    const b = await (await open('lab8Lzw')).readRegion(0, { x: 10, y: 10, width: 100, height: 40 });
    expect(b.data.equals(a.data)).toBe(true);
  });

  it('vips-written 8-bit, 16-bit and float CIELAB agree with the float L*a*b* vips converted from', async () => {
    // lab.v is the float Lab the three files were made from (recorded in make-science.ts).
    const ref = await sharp(join(dir, 'lab.v')).toColourspace('lab').raw({ depth: 'float' }).toBuffer();
    const lab = new Float32Array(ref.buffer, ref.byteOffset, ref.byteLength / 4);
    for (const [name, tolL, tolAb, levels] of [
      // LabQ keeps 3 more bits of a*, b* than the 8-bit TIFF: truncation costs up to one unit.
      ['lab8vips', 0.4, 1, 3],
      ['lab16vips', 0.01, 0.01, 1],
      ['labFloatVips', 1e-6, 1e-6, 1],
    ] as const) {
      const d = await open(name);
      expect(d.info.colourSpace).toBe('cielab');
      expect(d.info.levels).toHaveLength(levels);
      const s = samples(await d.readRegion(0, { x: 0, y: 0, width: PATCH_W, height: PATCH_H }));
      for (const i of [0, 3 * 40, 3 * (PATCH_W * 40 + 5), 3 * (PATCH_W * 40 + 100), 3 * (PATCH_W * PATCH_H - 1)]) {
        expect(Math.abs(s[i] - lab[i]), `${name} L at ${i}`).toBeLessThanOrEqual(tolL);
        expect(Math.abs(s[i + 1] - lab[i + 1]), `${name} a at ${i}`).toBeLessThanOrEqual(tolAb);
        expect(Math.abs(s[i + 2] - lab[i + 2]), `${name} b at ${i}`).toBeLessThanOrEqual(tolAb);
      }
    }
  });
});

describe('multispectral images keep every band', () => {
  function expectBands(r: RawImage, x0: number, y0: number, scale = 1): void {
    const s = samples(r);
    expect(r.channels).toBe(BANDS);
    for (let y = 0; y < r.height; y += 7) {
      for (let x = 0; x < r.width; x += 5) {
        for (let b = 0; b < BANDS; b++) expect(s[(y * r.width + x) * BANDS + b]).toBe(bandValue(x0 + x, y0 + y, b) * scale);
      }
    }
  }

  it('6 bands of min-is-black 8-bit, deflate with the horizontal predictor', async () => {
    const d = await open('multi8');
    expect(d.info).toMatchObject({ colourSpace: 'grey', channels: BANDS, bitsPerSample: 8, width: DEEP_W, height: DEEP_H });
    expectBands(await d.readRegion(0, { x: 50, y: 30, width: 150, height: 100 }), 50, 30);
  });

  it('16-bit, little- and big-endian; SMaxSampleValue for every band', async () => {
    const d = await open('multi16');
    expect(d.info.maxValues).toEqual(new Array<number>(BANDS).fill(25500));
    expectBands(await d.readRegion(0, { x: 1, y: 2, width: 250, height: 190 }), 1, 2, 100);
    expectBands(await (await open('multi16Be')).readRegion(0, { x: 1, y: 2, width: 250, height: 190 }), 1, 2, 100);
  });

  it.each(['multi8Lzw', 'multi8Packbits', 'multi8Strips'])('%s reads the same values', async (name) => {
    expectBands(await (await open(name)).readRegion(0, { x: 63, y: 61, width: 130, height: 77 }), 63, 61);
  });

  it('edge tiles and single pixels', async () => {
    const d = await open('multi8');
    expectBands(await d.readRegion(0, { x: DEEP_W - 3, y: DEEP_H - 2, width: 3, height: 2 }), DEEP_W - 3, DEEP_H - 2);
    expectBands(await d.readRegion(0, { x: 64, y: 64, width: 1, height: 1 }), 64, 64);
  });
});

describe('layouts the decoder refuses, by name', () => {
  it.each([
    ['multiZstd', /Unsupported TIFF: zstd compression for 6-band images/],
    ['planar', /Unsupported TIFF: separate sample planes/],
    ['itulab', /Unsupported TIFF: ITU L\*a\*b\*/],
  ])('%s', async (name, message) => {
    const err = await tiffDecoder.open(f[name]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageServerError);
    expect((err as ImageServerError).status).toBe(415);
    expect((err as ImageServerError).message).toMatch(message);
  });
});

describe('codecs of the raw path', () => {
  it('PackBits: literal runs, repeats and the no-op byte', () => {
    const src = Uint8Array.from([2, 1, 2, 3, 0xfd, 9, 0x80, 0, 7]);
    expect(Array.from(packbitsDecode(src, 8))).toEqual([1, 2, 3, 9, 9, 9, 9, 7]);
  });

  it('LZW: decodes what libtiff wrote, and stops at the expected length', () => {
    // Codes 9 bits, MSB first: clear(256) 'A'(65) 'B'(66) 258('AB') EOI(257).
    const codes = [256, 65, 66, 258, 257];
    let bits = '';
    for (const c of codes) bits += c.toString(2).padStart(9, '0');
    while (bits.length % 8) bits += '0';
    const bytes = Uint8Array.from(bits.match(/.{8}/g)!.map((b) => parseInt(b, 2)));
    expect(Array.from(lzwDecode(bytes, 4))).toEqual([65, 66, 65, 66]);
    expect(Array.from(lzwDecode(bytes, 3))).toEqual([65, 66, 65]);
    expect(() => lzwDecode(Uint8Array.from([0x41, 0x00]), 4)).toThrow(ImageServerError);
  });
});
