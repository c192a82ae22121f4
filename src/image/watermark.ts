// The watermark (WATERMARK, WATERMARK_PROBABILITY, WATERMARK_OPACITY), as iipsrv applies it:
// the image is premultiplied once by opacity × its own alpha and then *added* to the output
// pixels with clipping, at a random place, as the very last pixel step (§4.7 step 11). Tiles get
// it with the configured probability; larger outputs are split into tile-sized blocks that each
// draw their own chance and place. Any format sharp reads is accepted (iipsrv: TIFF only).
//
// Caching: responses are cached after this step, so a cached tile carries its watermark. With a
// probability below 1 the draw made when a tile was first rendered holds for as long as it stays
// cached (RAM and Memcached); passthrough of stored tiles is switched off whenever a watermark
// can apply (see `watermarkActive`), so no tile can skip this step.

import sharp from 'sharp';
import { ImageServerError } from '../core/errors.js';
import type { Pixels } from './process.js';

export interface WatermarkSettings {
  /** WATERMARK: path of the image; empty means no watermark. */
  readonly path: string;
  /** WATERMARK_PROBABILITY, 0–1: chance that a tile (or block) is watermarked. */
  readonly probability: number;
  /** WATERMARK_OPACITY, 0–1. */
  readonly opacity: number;
}

/** A loaded watermark: 8-bit RGB already multiplied by opacity × alpha, plus its luma. */
export interface Watermark {
  readonly width: number;
  readonly height: number;
  /** Three channels, premultiplied. */
  readonly rgb: Uint8Array;
  /** One channel (iipsrv's Rec. 601 weights), for grey outputs. */
  readonly grey: Uint8Array;
}

/** True when some output may be watermarked: then nothing may bypass the pixel pipeline. */
export function watermarkActive(s: WatermarkSettings | undefined): boolean {
  return !!s && s.path !== '' && s.probability > 0 && s.opacity > 0;
}

/** Reads and premultiplies the watermark image. Throws a server error naming what failed. */
export async function loadWatermark(path: string, opacity: number): Promise<Watermark> {
  let data: Buffer;
  let width: number;
  let height: number;
  try {
    const out = await sharp(path, { limitInputPixels: 64_000_000 })
      .toColourspace('srgb')
      .ensureAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    ({ data } = out);
    ({ width, height } = out.info);
    if (out.info.channels !== 4) throw new Error(`expected 4 channels but received ${out.info.channels}`);
  } catch (err) {
    throw new ImageServerError('INTERNAL', 'Watermark image unavailable', `WATERMARK ${path}: ${(err as Error).message}`);
  }
  const n = width * height;
  const rgb = new Uint8Array(n * 3);
  const grey = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const a = (data[i * 4 + 3] / 255) * opacity;
    // Truncation as iipsrv's unsigned char conversion.
    const r = Math.floor(data[i * 4] * a);
    const g = Math.floor(data[i * 4 + 1] * a);
    const b = Math.floor(data[i * 4 + 2] * a);
    rgb[i * 3] = r;
    rgb[i * 3 + 1] = g;
    rgb[i * 3 + 2] = b;
    grey[i] = (1254097 * r + 2462056 * g + 478151 * b) >> 22;
  }
  return { width, height, rgb, grey };
}

/**
 * Adds `wm` at (x, y) of `p` (clipped to the block x0,y0,bw,bh and the image), with clipping of
 * the sums; 16-bit samples get the watermark × 256 (iipsrv). Alpha channels are left alone.
 */
export function addWatermark(
  p: Pixels<Uint8Array | Uint16Array>,
  wm: Watermark,
  x: number,
  y: number,
  clip: { x: number; y: number; width: number; height: number },
): void {
  const c = p.channels;
  const colour = c === 2 || c === 4 ? c - 1 : c;
  const grey = colour < 3;
  const wide = p.data instanceof Uint16Array;
  const top = wide ? 65535 : 255;
  const scale = wide ? 256 : 1;
  const x1 = Math.min(x + wm.width, clip.x + clip.width, p.width);
  const y1 = Math.min(y + wm.height, clip.y + clip.height, p.height);
  const d = p.data;
  for (let yy = Math.max(y, clip.y); yy < y1; yy++) {
    const wy = yy - y;
    for (let xx = Math.max(x, clip.x); xx < x1; xx++) {
      const wx = xx - x;
      const o = (yy * p.width + xx) * c;
      for (let k = 0; k < colour; k++) {
        const add = (grey ? wm.grey[wy * wm.width + wx] : wm.rgb[(wy * wm.width + wx) * 3 + k]) * scale;
        if (add === 0) continue;
        const v = d[o + k] + add;
        d[o + k] = v > top ? top : v;
      }
    }
  }
}

/**
 * Watermarks `p` in place, block by block (one block = the whole output for a tile). Each block
 * is marked with `probability`, at a random offset where the watermark is smaller than the
 * block (as iipsrv). Returns how many blocks were marked.
 */
export function applyWatermark(
  p: Pixels<Uint8Array | Uint16Array>,
  wm: Watermark,
  probability: number,
  block: { width: number; height: number },
  random: () => number = Math.random,
): number {
  let marked = 0;
  const bw = Math.max(1, block.width);
  const bh = Math.max(1, block.height);
  for (let by = 0; by < p.height; by += bh) {
    for (let bx = 0; bx < p.width; bx += bw) {
      if (!(random() < probability)) continue;
      const w = Math.min(bw, p.width - bx);
      const h = Math.min(bh, p.height - by);
      const xoff = w > wm.width ? Math.floor(random() * (w - wm.width)) : 0;
      const yoff = h > wm.height ? Math.floor(random() * (h - wm.height)) : 0;
      addWatermark(p, wm, bx + xoff, by + yoff, { x: bx, y: by, width: w, height: h });
      marked++;
    }
  }
  return marked;
}
