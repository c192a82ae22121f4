// Pixel comparison for response tests: a response body decoded to 8-bit sRGB samples, and the
// mean absolute difference between two sample buffers of the same length.

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
