// Output encoding with sharp: JPEG, PNG, WebP, AVIF and TIFF from 8- or 16-bit samples, the
// formats this build can write, and the raw round trips of the pipeline (sharp in, raw out).
// Greyscale output is written as one band (TIFF MinIsBlack, §13 #26), 16-bit PNG/TIFF when the
// samples are 16-bit.

import sharp, { type Sharp } from 'sharp';
import type { OutputFormat, TiffCodec } from '../core/view.js';
import type { Pixels } from './process.js';

export interface EncoderSettings {
  readonly jpegQuality: number;
  readonly pngQuality: number;
  readonly webpQuality: number;
  readonly avifQuality: number;
  /** TIFF_COMPRESSION: 0 none, 1 LZW, 2 Deflate, 3 JPEG, 4 WebP, 5 Zstandard. */
  readonly tiffCompression: number;
  /** 0 nearest, 1 bilinear, 2 bicubic, 3 lanczos3. */
  readonly interpolation: number;
}

export type IntPixels = Pixels<Uint8Array | Uint16Array>;

export const KERNELS = ['nearest', 'linear', 'cubic', 'lanczos3'] as const;

/** Output formats this build of sharp can encode, in IIIF names (jpg and png always). */
export function availableFormats(): string[] {
  const f = sharp.format;
  const out = ['jpg', 'png'];
  if (f.webp?.output.buffer) out.push('webp');
  if (f.heif?.output.buffer) out.push('avif');
  if (f.tiff?.output.buffer) out.push('tif');
  return out;
}

/**
 * The interpretation that keeps samples as they are: one or two bands are grey (else sharp writes
 * three), three or four are sRGB; 16-bit ones the 16-bit variants (else squashed to 8 bits).
 */
function colourspaceOf(channels: number, wide: boolean): 'b-w' | 'srgb' | 'grey16' | 'rgb16' {
  if (channels <= 2) return wide ? 'grey16' : 'b-w';
  return wide ? 'rgb16' : 'srgb';
}

/** A sharp pipeline over raw samples (1–4 channels). */
export function sharpFrom(p: IntPixels): Sharp {
  return sharp(p.data, { raw: { width: p.width, height: p.height, channels: p.channels as 1 | 2 | 3 | 4 } });
}

/** grey + alpha as RGBA: sharp drops the alpha of 8-bit grey in raw output (measured, 0.35.3). */
function greyAlphaToRgba(p: Pixels<Uint8Array>): Pixels<Uint8Array> {
  const n = p.width * p.height;
  const out = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    const g = p.data[i * 2];
    out[i * 4] = g;
    out[i * 4 + 1] = g;
    out[i * 4 + 2] = g;
    out[i * 4 + 3] = p.data[i * 2 + 1];
  }
  return { data: out, width: p.width, height: p.height, channels: 4 };
}

function rgbaToGreyAlpha(p: Pixels<Uint8Array>): Pixels<Uint8Array> {
  const n = p.width * p.height;
  const out = new Uint8Array(n * 2);
  for (let i = 0; i < n; i++) {
    out[i * 2] = p.data[i * 4];
    out[i * 2 + 1] = p.data[i * 4 + 3];
  }
  return { data: out, width: p.width, height: p.height, channels: 2 };
}

/**
 * Runs `ops` (resize, flip, rotate: operations that keep the band count) on `p` in sharp and
 * returns raw samples of the same depth and band count.
 */
export async function sharpRaw(p: IntPixels, ops: (img: Sharp) => Sharp): Promise<IntPixels> {
  const wide = p.data instanceof Uint16Array;
  const detour = !wide && p.channels === 2;
  const input = detour ? greyAlphaToRgba(p as Pixels<Uint8Array>) : p;
  const img = ops(sharpFrom(input))
    .toColourspace(colourspaceOf(input.channels, wide))
    .raw({ depth: wide ? 'ushort' : 'uchar' });
  const { data, info } = await img.toBuffer({ resolveWithObject: true });
  const samples = wide
    ? new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2)
    : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out: IntPixels = { data: samples, width: info.width, height: info.height, channels: info.channels };
  if (info.channels !== input.channels) {
    throw new Error(`sharp returned ${info.channels} bands for ${input.channels}`);
  }
  return detour ? rgbaToGreyAlpha(out as Pixels<Uint8Array>) : out;
}

const TIFF_CODECS = ['none', 'lzw', 'deflate', 'jpeg', 'webp'] as const;

/**
 * Adds the encoder for `format` to a pipeline whose samples are `channels` bands of `wide`
 * (16-bit) or 8-bit data. `quality` is the request's (IIP QLT), else the server's setting;
 * `tiffCodec` likewise (IIP `QLT=<codec>:`), else TIFF_COMPRESSION.
 */
export function encodeWith(
  img: Sharp,
  format: OutputFormat,
  channels: number,
  wide: boolean,
  quality: number | undefined,
  s: EncoderSettings,
  tiffCodec?: TiffCodec,
): Sharp {
  const out = img.toColourspace(colourspaceOf(channels, wide));
  switch (format) {
    case 'jpg':
      return out.jpeg({ quality: clamp(quality ?? s.jpegQuality, 1, 100), optimiseCoding: false });
    case 'png':
      return out.png({ compressionLevel: clamp(quality ?? s.pngQuality, 0, 9), adaptiveFiltering: false });
    case 'webp': {
      const q = quality ?? s.webpQuality;
      return q < 1 ? out.webp({ lossless: true, effort: 0 }) : out.webp({ quality: clamp(q, 1, 100), effort: 0 });
    }
    case 'avif': {
      const q = quality ?? s.avifQuality;
      return q < 0 ? out.avif({ lossless: true, effort: 0 }) : out.avif({ quality: clamp(q, 1, 100), effort: 0 });
    }
    case 'tif': {
      // Zstandard (5, or QLT=zstd:) is not in sharp's libtiff build: Deflate instead. JPEG needs 8-bit grey or
      // RGB, WebP 8-bit RGB(A); other layouts fall back to Deflate rather than fail.
      let codec: (typeof TIFF_CODECS)[number] =
        tiffCodec === undefined ? (TIFF_CODECS[s.tiffCompression] ?? 'deflate') : tiffCodec === 'zstd' ? 'deflate' : tiffCodec;
      if (codec === 'jpeg' && (wide || (channels !== 1 && channels !== 3))) codec = 'deflate';
      if (codec === 'webp' && (wide || channels < 3)) codec = 'deflate';
      if (codec === 'jpeg') return out.tiff({ compression: 'jpeg', quality: clamp(quality ?? s.jpegQuality, 1, 100) });
      if (codec === 'webp') return out.tiff({ compression: 'webp', quality: clamp(quality ?? s.webpQuality, 1, 100) });
      return out.tiff({ compression: codec, ...(codec === 'none' ? {} : { predictor: 'horizontal' }) });
    }
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, Math.round(v)));
}
