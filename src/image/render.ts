// Executes a render plan: reads pixels through the decoder (or a stored tile for
// passthrough), then resizes, mirrors, rotates, converts quality and encodes with sharp.
// All pixel work happens in libvips threads; JavaScript only moves buffers.

import sharp, { type Sharp } from 'sharp';
import type { ImageDecoder, RawImage } from '../../decoders/decoder.js';
import { ImageServerError } from '../core/errors.js';
import { CONTENT_TYPES, type OutputFormat } from '../core/view.js';
import type { RenderPlan } from './plan.js';

export interface EncoderSettings {
  readonly jpegQuality: number;
  readonly pngQuality: number;
  readonly webpQuality: number;
  readonly avifQuality: number;
  /** 0 nearest, 1 bilinear, 2 bicubic, 3 lanczos3. */
  readonly interpolation: number;
}

export interface Rendered {
  readonly contentType: string;
  readonly body: Buffer;
  /** True when the stored tile bytes were sent without decoding. */
  readonly passthrough: boolean;
}

const KERNELS = ['nearest', 'linear', 'cubic', 'lanczos3'] as const;

function fromRaw(raw: RawImage): Sharp {
  const channels = raw.channels as 1 | 2 | 3 | 4;
  let input: Buffer | Uint16Array | Float32Array = raw.data;
  if (raw.bitsPerSample === 16) {
    input = new Uint16Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength / 2);
  } else if (raw.bitsPerSample === 32) {
    input = new Float32Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength / 4);
  }
  return sharp(input, { raw: { width: raw.width, height: raw.height, channels } });
}

function encode(img: Sharp, format: OutputFormat, q: number | undefined, s: EncoderSettings): Sharp {
  switch (format) {
    case 'jpg':
      return img.jpeg({ quality: q ?? s.jpegQuality });
    case 'png':
      return img.png({ compressionLevel: q ?? s.pngQuality, adaptiveFiltering: false });
    case 'webp': {
      const quality = q ?? s.webpQuality;
      return quality < 1 ? img.webp({ lossless: true, effort: 0 }) : img.webp({ quality, effort: 0 });
    }
    case 'avif': {
      const quality = q ?? s.avifQuality;
      return quality < 0 ? img.avif({ lossless: true, effort: 0 }) : img.avif({ quality, effort: 0 });
    }
    case 'tif':
      return img.tiff({ compression: 'deflate' });
  }
}

export async function render(decoder: ImageDecoder, plan: RenderPlan, settings: EncoderSettings): Promise<Rendered> {
  if (plan.passthroughCandidate && plan.tile && decoder.readEncodedTile) {
    const stored = await decoder.readEncodedTile(plan.level, plan.tile.col, plan.tile.row);
    if (stored && stored.format === plan.format) {
      return { contentType: CONTENT_TYPES[plan.format], body: stored.data, passthrough: true };
    }
  }
  const raw = await decoder.readRegion(plan.level, plan.rect);
  let img = fromRaw(raw);
  if (raw.width !== plan.width || raw.height !== plan.height) {
    img = img.resize(plan.width, plan.height, { fit: 'fill', kernel: KERNELS[settings.interpolation] ?? 'linear' });
  }
  if (plan.rotation.mirror) img = img.flop();
  const degrees = ((plan.rotation.degrees % 360) + 360) % 360;
  if (degrees !== 0) img = img.rotate(degrees);
  // grayscale() keeps three bands for raw input in sharp 0.35; b-w gives a one-band image.
  if (plan.quality === 'gray') img = img.toColourspace('b-w');
  else if (plan.quality === 'bitonal') img = img.threshold(128).toColourspace('b-w');
  if (plan.format === 'jpg' && (raw.channels === 2 || raw.channels === 4)) img = img.removeAlpha();
  try {
    const body = await encode(img, plan.format, plan.encoderQuality, settings).toBuffer();
    return { contentType: CONTENT_TYPES[plan.format], body, passthrough: false };
  } catch (err) {
    throw new ImageServerError('INTERNAL', 'Unable to encode the image', String(err));
  }
}
