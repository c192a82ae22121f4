// Plain JPEG input (decoders/jpeg, §11.8): virtual levels and tiles, regions at every level,
// grey JPEGs, and the registry choosing the module by magic bytes.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jpegDecoder, jpegLevels } from '../../../decoders/jpeg/index.js';
import { DecoderRegistry } from '../../../decoders/registry.js';

let dir: string;
let colour: string;
let grey: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'jpeg-'));
  // sharp(raw 600×300: R = x mod 256 … left/right halves).jpeg({ quality: 95 })
  const w = 600;
  const h = 300;
  const a = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) a.set(x < 300 ? [200, 30, 30] : [30, 30, 200], (y * w + x) * 3);
  colour = join(dir, 'c.jpg');
  await sharp(a, { raw: { width: w, height: h, channels: 3 } })
    .jpeg({ quality: 95 })
    .toFile(colour);
  // sharp({ create: 100×80 grey 90 }).toColourspace('b-w').jpeg()
  grey = join(dir, 'g.jpg');
  await sharp({ create: { width: 100, height: 80, channels: 3, background: { r: 90, g: 90, b: 90 } } })
    .toColourspace('b-w')
    .jpeg()
    .toFile(grey);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('plain JPEG decoder', () => {
  it('levels halve with floor until one 256-px tile holds the image', () => {
    expect(jpegLevels(600, 300).map((l) => [l.width, l.height])).toEqual([
      [600, 300],
      [300, 150],
      [150, 75],
    ]);
    expect(jpegLevels(2001, 1001).map((l) => l.width)).toEqual([2001, 1000, 500, 250]);
    expect(jpegLevels(100, 80)).toHaveLength(1);
    expect(jpegLevels(600, 300).every((l) => l.tileWidth === 256 && l.tileHeight === 256)).toBe(true);
  });

  it('is chosen by magic bytes and reads regions of every level', async () => {
    const d = await new DecoderRegistry().open(colour);
    expect(d.info).toMatchObject({ format: 'jpeg', width: 600, height: 300, channels: 3, bitsPerSample: 8, colourSpace: 'srgb' });
    const r = await d.readRegion(0, { x: 290, y: 10, width: 20, height: 5 });
    expect([r.width, r.height, r.channels, r.data.length]).toEqual([20, 5, 3, 300]);
    expect(Math.abs(r.data[0] - 200)).toBeLessThan(6);
    expect(Math.abs(r.data[19 * 3 + 2] - 200)).toBeLessThan(6);
    const l2 = await d.readRegion(2, { x: 0, y: 0, width: 150, height: 75 });
    expect(Math.abs(l2.data[(10 * 150 + 10) * 3] - 200)).toBeLessThan(6);
    expect(Math.abs(l2.data[(10 * 150 + 140) * 3 + 2] - 200)).toBeLessThan(6);
    // the same level again comes from the decoded-level memory, identical
    const again = await d.readRegion(2, { x: 0, y: 0, width: 150, height: 75 });
    expect(again.data.equals(l2.data)).toBe(true);
    await expect(d.readRegion(3, { x: 0, y: 0, width: 1, height: 1 })).rejects.toMatchObject({ code: 'BAD_REGION' });
    await d.close();
  });

  it('grey JPEGs are one band', async () => {
    const d = await jpegDecoder.open(grey);
    expect(d.info).toMatchObject({ channels: 1, colourSpace: 'grey' });
    const r = await d.readRegion(0, { x: 0, y: 0, width: 4, height: 4 });
    expect(r.channels).toBe(1);
    expect(Math.abs(r.data[0] - 90)).toBeLessThan(3);
    await d.close();
  });

  it('sniffs FF D8 FF only', () => {
    expect(jpegDecoder.sniff(Buffer.from([0xff, 0xd8, 0xff, 0xe0]))).toBe(true);
    expect(jpegDecoder.sniff(Buffer.from([0xff, 0xd8, 0x00]))).toBe(false);
    expect(jpegDecoder.sniff(Buffer.from('II*\0'))).toBe(false);
  });
});
