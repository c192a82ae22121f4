// Pixel comparison for response tests: a response body decoded to 8-bit sRGB samples, a
// reference region cut from raw source samples, and the mean absolute difference between two
// sample buffers of the same length.

import sharp from 'sharp';
import { expect } from 'vitest';

/** A response body as 8-bit sRGB samples (alpha dropped), with its encoded format. */
export async function decodeSrgb(
  body: Buffer,
): Promise<{ data: Buffer; width: number; height: number; channels: number; format?: string }> {
  const meta = await sharp(body).metadata();
  const { data, info } = await sharp(body).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels, format: meta.format };
}

/** Mean absolute difference per sample (the buffers must be the same length). */
export function meanAbsDiff(a: Buffer, b: Buffer): number {
  expect(a.length).toBe(b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

/** Reference: region x,y,w×h of raw RGB `source` (width×height) resized by sharp to ow×oh. */
export function sourceRegion(
  source: { data: Buffer; width: number; height: number },
  x: number,
  y: number,
  w: number,
  h: number,
  ow = w,
  oh = h,
): Promise<Buffer> {
  return sharp(source.data, { raw: { width: source.width, height: source.height, channels: 3 } })
    .extract({ left: x, top: y, width: w, height: h })
    .resize(ow, oh, { fit: 'fill' })
    .raw()
    .toBuffer();
}
