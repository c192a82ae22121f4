// Watermark arithmetic (src/image/watermark.ts): premultiplication by opacity × alpha with
// iipsrv's truncation, clipped addition, grey outputs, alpha left alone, per-block placement.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pixels } from '../../../src/image/process.js';
import { addWatermark, applyWatermark, loadWatermark, watermarkActive, type Watermark } from '../../../src/image/watermark.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wm-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A 2×1 watermark: (100, 50, 200) and (10, 20, 30), both opaque. */
const WM: Watermark = { width: 2, height: 1, rgb: Uint8Array.from([100, 50, 200, 10, 20, 30]), grey: Uint8Array.from([73, 17]) };
const img = (w: number, h: number, c: number, fill: number): Pixels<Uint8Array> => ({
  data: new Uint8Array(w * h * c).fill(fill),
  width: w,
  height: h,
  channels: c,
});

describe('loadWatermark', () => {
  it('premultiplies by opacity × alpha, truncating like iipsrv', async () => {
    const file = join(dir, 'wm.png');
    // sharp(raw RGBA 2×1: (200, 100, 50, 255), (200, 100, 50, 128)).png()
    await sharp(Buffer.from([200, 100, 50, 255, 200, 100, 50, 128]), { raw: { width: 2, height: 1, channels: 4 } })
      .png()
      .toFile(file);
    const wm = await loadWatermark(file, 0.5);
    expect([wm.width, wm.height]).toEqual([2, 1]);
    // 200·0.5 = 100, 100·0.5 = 50, 50·0.5 = 25; then ×128/255: 50.19 → 50, 25.09 → 25, 12.54 → 12
    expect(Array.from(wm.rgb)).toEqual([100, 50, 25, 50, 25, 12]);
    expect(wm.grey[0]).toBe((1254097 * 100 + 2462056 * 50 + 478151 * 25) >> 22);
  });

  it('names an unreadable file without exposing it to clients', async () => {
    const err = await loadWatermark(join(dir, 'missing.png'), 1).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INTERNAL', message: 'Watermark image unavailable' });
  });

  it('is active only with a path, a probability and an opacity', () => {
    expect(watermarkActive(undefined)).toBe(false);
    expect(watermarkActive({ path: '', probability: 1, opacity: 1 })).toBe(false);
    expect(watermarkActive({ path: 'w.png', probability: 0, opacity: 1 })).toBe(false);
    expect(watermarkActive({ path: 'w.png', probability: 1, opacity: 0 })).toBe(false);
    expect(watermarkActive({ path: 'w.png', probability: 0.1, opacity: 0.2 })).toBe(true);
  });
});

describe('addWatermark', () => {
  it('adds with clipping at 255', () => {
    const p = img(3, 1, 3, 100);
    addWatermark(p, WM, 1, 0, { x: 0, y: 0, width: 3, height: 1 });
    expect(Array.from(p.data)).toEqual([100, 100, 100, 200, 150, 255, 110, 120, 130]);
  });

  it('uses the luma for grey images and leaves alpha alone', () => {
    const g = img(2, 1, 2, 10);
    addWatermark(g, WM, 0, 0, { x: 0, y: 0, width: 2, height: 1 });
    expect(Array.from(g.data)).toEqual([83, 10, 27, 10]);
    const rgba = img(1, 1, 4, 0);
    addWatermark(rgba, WM, 0, 0, { x: 0, y: 0, width: 1, height: 1 });
    expect(Array.from(rgba.data)).toEqual([100, 50, 200, 0]);
  });

  it('16-bit samples get the watermark × 256, clipped at 65535', () => {
    const p: Pixels<Uint16Array> = { data: Uint16Array.from([1000, 60000, 0]), width: 1, height: 1, channels: 3 };
    addWatermark(p, WM, 0, 0, { x: 0, y: 0, width: 1, height: 1 });
    expect(Array.from(p.data)).toEqual([1000 + 25600, 65535, 51200]);
  });

  it('stays inside its block and the image', () => {
    const p = img(4, 1, 1, 0);
    addWatermark(p, WM, 1, 0, { x: 0, y: 0, width: 2, height: 1 });
    expect(Array.from(p.data)).toEqual([0, 73, 0, 0]);
    addWatermark(p, WM, 3, 0, { x: 2, y: 0, width: 2, height: 1 });
    expect(Array.from(p.data)).toEqual([0, 73, 0, 73]);
  });
});

describe('applyWatermark', () => {
  it('one draw per block: chance, then x and y offsets where the block is larger', () => {
    const p = img(8, 2, 1, 0);
    const draws = [0.1, 0.5, 0.99, 0.7];
    let i = 0;
    // blocks of 4×2: block 0 marked (0.1 < 0.5) at x = floor(0.5·2) = 1, y = floor(0.99·1) = 0;
    // block 1 not marked (0.7 ≥ 0.5)
    const n = applyWatermark(p, WM, 0.5, { width: 4, height: 2 }, () => draws[i++]);
    expect(n).toBe(1);
    expect(Array.from(p.data)).toEqual([0, 73, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('probability 1 marks every block of a region', () => {
    const p = img(6, 1, 1, 0);
    expect(applyWatermark(p, WM, 1, { width: 2, height: 1 }, () => 0)).toBe(3);
    expect(Array.from(p.data)).toEqual([73, 17, 73, 17, 73, 17]);
  });
});
