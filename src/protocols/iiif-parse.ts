// IIIF Image API parameter parsing: percent-decoding and the region, size, rotation, quality
// and format path segments, turned into the neutral view types. Pure string work; anything that
// needs the image's dimensions (clipping, upscaling, limits) is judged later by core/geometry.

import { ImageServerError } from '../core/errors.js';
import { decodePercent } from './percent.js';
import { CONTENT_TYPES } from '../core/view.js';
import type { OutputFormat, Processing, Quality, RegionSpec, Rotation, SizeSpec } from '../core/view.js';

export type IiifVersion = 2 | 3;

/** Decodes `%XX` sequences exactly once (RFC 3986: `+` stays a plus, unlike a query value). */
export function percentDecode(s: string): string {
  return decodePercent(s, 'IIIF', false);
}

/** Unsigned decimal, fractions allowed (`10`, `10.5`, `.5`); no sign, no exponent. */
const DECIMAL = /^(?:\d+(?:\.\d*)?|\.\d+)$/;
/** Any signed decimal, to tell a number we do not support from something that is not a number. */
const SIGNED_DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$/;

/** `full`, `square`, `x,y,w,h` (pixels, fractions allowed) or `pct:x,y,w,h`; lower-case input. */
export function parseRegion(region: string): RegionSpec {
  if (region === 'full') return { type: 'full' };
  if (region === 'square') return { type: 'square' };
  const pct = region.startsWith('pct:');
  const parts = (pct ? region.slice(4) : region).split(',');
  if (parts.length !== 4 || !parts.every((p) => DECIMAL.test(p))) {
    throw new ImageServerError('BAD_REGION', `IIIF: incorrect region format: ${region}`);
  }
  const [x, y, w, h] = parts.map(Number);
  // Zero-sized regions can never produce pixels; whether the region lies inside the image is
  // decided by resolveRegion, which knows the image size.
  if (!(w > 0 && h > 0)) throw new ImageServerError('BAD_REGION', `IIIF: incorrect region format: ${region}`);
  return pct ? { type: 'fraction', x: x / 100, y: y / 100, w: w / 100, h: h / 100 } : { type: 'pixels', x, y, w, h };
}

/**
 * IIIF 3: `max`, `w,`, `,h`, `pct:n`, `w,h`, `!w,h`, each optionally `^`-prefixed.
 * IIIF 2: the same without `^`. `full` is accepted as `max` in both (iipsrv leniency).
 * Widths and heights are positive integers; `pct:` takes a positive decimal.
 */
export function parseSize(size: string, version: IiifVersion): SizeSpec {
  const bad = (why?: string): ImageServerError => new ImageServerError('BAD_SIZE', `IIIF: invalid size: ${size}${why ? ` (${why})` : ''}`);
  let s = size;
  let upscale = false;
  if (s.startsWith('^')) {
    if (version === 2) throw bad('the ^ prefix is only defined in IIIF 3');
    upscale = true;
    s = s.slice(1);
  }
  if (s === 'max' || s === 'full') return { type: 'max', upscale };
  if (s.startsWith('pct:')) {
    const n = s.slice(4);
    if (!DECIMAL.test(n)) throw bad(SIGNED_DECIMAL.test(n) ? 'the percentage must be positive' : undefined);
    const pct = Number(n);
    if (!(pct > 0)) throw bad('the percentage must be positive');
    return { type: 'percent', pct, upscale };
  }
  const fit = s.startsWith('!');
  if (fit) s = s.slice(1);
  const parts = s.split(',');
  if (parts.length !== 2) throw bad();
  const [w, h] = parts.map((p) => (p === '' ? undefined : dimension(p, bad)));
  if (w !== undefined && h !== undefined) return fit ? { type: 'fit', w, h, upscale } : { type: 'exact', w, h, upscale };
  // `!w,` and `!,h` are not IIIF forms: confining needs both sides.
  if (fit) throw bad();
  if (w !== undefined) return { type: 'width', w, upscale };
  if (h !== undefined) return { type: 'height', h, upscale };
  throw bad();
}

function dimension(p: string, bad: (why?: string) => ImageServerError): number {
  if (!/^\d+$/.test(p)) {
    throw bad(SIGNED_DECIMAL.test(p) ? 'width and height must be positive integers' : undefined);
  }
  const n = Number(p);
  if (n <= 0) throw bad('width and height must be positive integers');
  // Beyond 2^53 the number is no longer the one asked for; no image is that large anyway.
  if (!Number.isSafeInteger(n)) throw bad('too large');
  return n;
}

/**
 * Any angle from 0 to 360 degrees, decimals allowed (IIIF `rotationArbitrary`), optionally
 * `!`-prefixed for mirroring. 360 is the same as 0; `-0` is 0; other signs are refused.
 */
export function parseRotation(rotation: string): Rotation {
  const mirror = rotation.startsWith('!');
  const s = mirror ? rotation.slice(1) : rotation;
  if (!SIGNED_DECIMAL.test(s)) throw new ImageServerError('BAD_ROTATION', 'IIIF: invalid rotation');
  const n = Number(s);
  if (!(n >= 0 && n <= 360) && !Object.is(n, -0)) {
    throw new ImageServerError('BAD_ROTATION', `IIIF: rotation must be between 0 and 360 degrees: ${rotation}`);
  }
  // `+ 0` turns the -0 of `-0` into 0.
  return { degrees: (n % 360) + 0, mirror };
}

/** `native` is the IIIF 1 name of `default`; `grey` is iipsrv's spelling of `gray`. */
const QUALITIES: Readonly<Record<string, Quality>> = {
  default: 'default',
  native: 'default',
  color: 'color',
  gray: 'gray',
  grey: 'gray',
  bitonal: 'bitonal',
};

/**
 * IIIF_EXTENSIONS qualities: iipsrv's names for IIP processing (INV, CNT=st, CNT=eq, GAM=log),
 * applied to the default colours.
 */
export const EXTENSION_QUALITIES: Readonly<Record<string, Processing>> = {
  negative: { invert: true },
  stretch: { contrast: 'stretch' },
  equalization: { contrast: 'equalization' },
  log: { gamma: 'log' },
};

export function parseQuality(quality: string, extensions = false): { quality: Quality; processing?: Processing } {
  const q = Object.hasOwn(QUALITIES, quality) ? QUALITIES[quality] : undefined;
  if (q) return { quality: q };
  if (extensions && Object.hasOwn(EXTENSION_QUALITIES, quality)) return { quality: 'default', processing: EXTENSION_QUALITIES[quality] };
  throw new ImageServerError('BAD_QUALITY', `IIIF: unsupported quality: ${quality}`);
}

export function isOutputFormat(f: string): f is OutputFormat {
  return Object.hasOwn(CONTENT_TYPES, f);
}

/** Only the formats the encoder can produce (options.formats) are accepted, and only those are advertised. */
export function parseFormat(format: string, formats: readonly string[]): OutputFormat {
  if (!isOutputFormat(format) || !formats.includes(format)) {
    throw new ImageServerError('BAD_FORMAT', `IIIF: unsupported format: ${format}`);
  }
  return format;
}

/** Splits `quality.format` at the first dot; no extension means `jpg` (iipsrv leniency). */
export function splitQualityFormat(segment: string): { quality: string; format: string } {
  const dot = segment.indexOf('.');
  return dot < 0 ? { quality: segment, format: 'jpg' } : { quality: segment.slice(0, dot), format: segment.slice(dot + 1) };
}
