// Shared helpers of the TIFF decoder tests: fixture directory lifecycle and pixel comparisons.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeSourcePixels, makeTiffFixtures, SOURCE_HEIGHT, SOURCE_WIDTH } from '../../fixtures/make-tiffs.js';

export interface FixtureSet {
  dir: string;
  files: Record<string, string>;
  /** The synthetic source, RGB 8-bit, SOURCE_WIDTH × SOURCE_HEIGHT. */
  source: Buffer;
  cleanup(): Promise<void>;
}

export async function setupFixtures(): Promise<FixtureSet> {
  const dir = await mkdtemp(join(tmpdir(), 'tiff-fixtures-'));
  const [files, source] = await Promise.all([makeTiffFixtures(dir), makeSourcePixels()]);
  return { dir, files, source, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface Rgb {
  data: Buffer | Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** A rectangle of an interleaved 8-bit image. */
export function crop(img: Rgb, x: number, y: number, w: number, h: number): Buffer {
  const out = Buffer.alloc(w * h * img.channels);
  for (let r = 0; r < h; r++) {
    const start = ((y + r) * img.width + x) * img.channels;
    out.set(img.data.subarray(start, start + w * img.channels), r * w * img.channels);
  }
  return out;
}

export function sourceCrop(source: Buffer, x: number, y: number, w: number, h: number): Buffer {
  return crop({ data: source, width: SOURCE_WIDTH, height: SOURCE_HEIGHT, channels: 3 }, x, y, w, h);
}

/** The source reduced 2×2 by averaging (how libvips builds pyramid levels), unrounded. */
export function sourceHalf(source: Buffer, x: number, y: number, w: number, h: number): Float64Array {
  const out = new Float64Array(w * h * 3);
  const at = (xx: number, yy: number, c: number): number => source[(yy * SOURCE_WIDTH + xx) * 3 + c];
  for (let r = 0; r < h; r++) {
    for (let q = 0; q < w; q++) {
      const sx = 2 * (x + q);
      const sy = 2 * (y + r);
      for (let c = 0; c < 3; c++) {
        out[(r * w + q) * 3 + c] = (at(sx, sy, c) + at(sx + 1, sy, c) + at(sx, sy + 1, c) + at(sx + 1, sy + 1, c)) / 4;
      }
    }
  }
  return out;
}

export function diffStats(a: ArrayLike<number>, b: ArrayLike<number>): { mean: number; max: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} ≠ ${b.length}`);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    sum += d;
    if (d > max) max = d;
  }
  return { mean: sum / a.length, max };
}
