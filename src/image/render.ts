// Executes a render plan: reads pixels through the decoder (or a stored tile for passthrough),
// then runs the pixel pipeline of §4.7 in its one fixed order — CIELAB → sRGB, band selection,
// normalisation and the float operations (src/image/process.ts), resize, channel reduction,
// greyscale, bitonal, equalisation, flip, rotation, watermark — and encodes.
//
// Two roads: plain 8-bit views with no processing (almost all tile traffic) go through one sharp
// pipeline, as before; everything else goes through process.ts on tile-sized typed arrays with
// sharp for resizing, rotation and encoding. Both give the same pixels for the views they share.
//
// Rotation by arbitrary angles (IIIF): the output is the bounding box of the rotated image. The
// corners are transparent for formats with alpha (PNG, WebP, AVIF, TIFF; an alpha band is added)
// and white for JPEG, which suits document images and bitonal output best.

import type { Sharp } from 'sharp';
import type { ImageDecoder, RawImage, RegionPipeline } from '../../decoders/decoder.js';
import type { Config } from '../config.js';
import { ImageServerError } from '../core/errors.js';
import { CONTENT_TYPES, hasProcessing, type OutputFormat } from '../core/view.js';
import { KERNELS, encodeWith, sharpFrom, sharpRaw, type EncoderSettings, type IntPixels } from './encode.js';
import { embedMetadata, profileFor, xmpFor } from './embed.js';
import type { RenderPlan } from './plan.js';
import {
  binarise,
  equalise,
  greyscale,
  histogramOf,
  labToSrgb,
  normalise,
  otsuThreshold,
  processSamples,
  reduceChannels,
  type Histogram,
  type Pixels,
  type SampleData,
} from './process.js';
import { applyWatermark, loadWatermark, watermarkActive, type Watermark, type WatermarkSettings } from './watermark.js';

export type { EncoderSettings } from './encode.js';

/** Everything besides the plan that decides the output bytes. */
export interface RenderSettings extends EncoderSettings {
  readonly watermark?: WatermarkSettings;
  /** Random numbers for watermark placement (tests inject a fixed sequence). */
  readonly random?: () => number;
  /** MAX_ICC: source profiles smaller than this are embedded; 0 never, −1 always. */
  readonly maxIcc?: number;
}

export interface Rendered {
  readonly contentType: string;
  readonly body: Buffer;
  /** True when the stored tile bytes were sent without decoding. */
  readonly passthrough: boolean;
}

/** Render settings from the server configuration. */
export function renderSettings(config: Config): RenderSettings {
  return {
    jpegQuality: config.jpegQuality,
    pngQuality: config.pngQuality,
    webpQuality: config.webpQuality,
    avifQuality: config.avifQuality,
    tiffCompression: config.tiffCompression,
    interpolation: config.interpolation,
    maxIcc: config.maxIcc,
    watermark: { path: config.watermark, probability: config.watermarkProbability, opacity: config.watermarkOpacity },
  };
}

/** The part of a cache key that comes from the settings: equal keys give equal bytes. */
export function settingsKey(s: RenderSettings): string {
  const wm = watermarkActive(s.watermark) ? `w${s.watermark!.path}|${s.watermark!.probability}|${s.watermark!.opacity}` : '';
  return `q${s.jpegQuality},${s.pngQuality},${s.webpQuality},${s.avifQuality},t${s.tiffCompression},i${s.interpolation},c${s.maxIcc ?? 0}${wm}`;
}

/** Whether stored tiles may be sent unchanged under these settings (never with a watermark). */
export function passthroughAllowed(s: RenderSettings): boolean {
  return !watermarkActive(s.watermark);
}

const watermarks = new Map<string, Promise<Watermark>>();

function watermarkFor(s: WatermarkSettings): Promise<Watermark> {
  const key = `${s.path}\0${s.opacity}`;
  let p = watermarks.get(key);
  if (!p) {
    p = loadWatermark(s.path, s.opacity);
    watermarks.set(key, p);
    // A file that could not be read is tried again on the next request (it may appear later).
    p.catch(() => watermarks.delete(key));
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// The image histogram (iipsrv §11.3): once per open image, from its smallest level.

const histograms = new WeakMap<ImageDecoder, Promise<Histogram>>();

/** Largest smallest level read whole for the histogram; beyond it, its first tile (as iipsrv). */
const HISTOGRAM_MAX_PIXELS = 1024 * 1024;

export function imageHistogram(decoder: ImageDecoder): Promise<Histogram> {
  let p = histograms.get(decoder);
  if (!p) {
    p = computeHistogram(decoder);
    histograms.set(decoder, p);
    p.catch(() => histograms.delete(decoder));
  }
  return p;
}

async function computeHistogram(decoder: ImageDecoder): Promise<Histogram> {
  const info = decoder.info;
  const level = info.levels.length - 1;
  const l = info.levels[level];
  const whole = l.width * l.height <= HISTOGRAM_MAX_PIXELS;
  const rect = {
    x: 0,
    y: 0,
    width: whole ? l.width : Math.min(l.tileWidth, l.width),
    height: whole ? l.height : Math.min(l.tileHeight, l.height),
  };
  const raw = await decoder.readRegion(level, rect);
  let p: Pixels = toPixels(raw);
  let min = info.minValues;
  let max = info.maxValues;
  if (info.colourSpace === 'cielab') {
    p = labToSrgb(p as Pixels<Float32Array>);
    min = [0, 0, 0, ...min.slice(3)];
    max = [1, 1, 1, ...max.slice(3)];
  }
  return histogramOf(normalise(p, min, max));
}

// ---------------------------------------------------------------------------------------------

/** The samples of a RawImage as a typed array over the same memory. */
export function toPixels(raw: RawImage): Pixels {
  const { data } = raw;
  let samples: SampleData;
  if (raw.bitsPerSample === 16) samples = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
  else if (raw.bitsPerSample === 32) samples = new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4);
  else samples = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (samples.length !== raw.width * raw.height * raw.channels) {
    throw new ImageServerError(
      'INTERNAL',
      undefined,
      `decoder returned ${samples.length} samples for ${raw.width}×${raw.height}×${raw.channels}`,
    );
  }
  return { data: samples, width: raw.width, height: raw.height, channels: raw.channels };
}

/** 16- and 32-bit views need aligned memory; a Buffer cut from a shared pool may not be. */
function alignedCopy(raw: RawImage): RawImage {
  const bytes = raw.bitsPerSample / 8;
  if (raw.data.byteOffset % bytes === 0) return raw;
  return { ...raw, data: Buffer.from(raw.data) };
}

const hasAlpha = (f: OutputFormat): boolean => f !== 'jpg';

/** Adds an opaque alpha band (1 → 2, 3 → 4 channels). */
function withAlpha(p: IntPixels): IntPixels {
  if (p.channels === 2 || p.channels === 4) return p;
  const wide = p.data instanceof Uint16Array;
  const c = p.channels;
  const n = p.width * p.height;
  const out = wide ? new Uint16Array(n * (c + 1)) : new Uint8Array(n * (c + 1));
  const top = wide ? 65535 : 255;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < c; k++) out[i * (c + 1) + k] = p.data[i * c + k];
    out[i * (c + 1) + c] = top;
  }
  return { data: out, width: p.width, height: p.height, channels: c + 1 };
}

/** Re-thresholds the colour bands at mid-range (bitonal output after interpolating rotation). */
function rethreshold(p: IntPixels): void {
  const wide = p.data instanceof Uint16Array;
  const top = wide ? 65535 : 255;
  const mid = wide ? 32768 : 128;
  const c = p.channels;
  const colour = c === 2 || c === 4 ? c - 1 : c;
  for (let i = 0; i < p.data.length; i += c) for (let k = 0; k < colour; k++) p.data[i + k] = p.data[i + k] >= mid ? top : 0;
}

function normalisedDegrees(degrees: number): number {
  const d = ((degrees % 360) + 360) % 360;
  return d + 0; // -0 → 0
}

async function encodeBody(img: Sharp, plan: RenderPlan, channels: number, wide: boolean, s: RenderSettings): Promise<Rendered> {
  try {
    const body = await encodeWith(img, plan.format, channels, wide, plan.encoderQuality, s, plan.tiffCodec).toBuffer();
    return { contentType: CONTENT_TYPES[plan.format], body, passthrough: false };
  } catch (err) {
    throw new ImageServerError('INTERNAL', 'Unable to encode the image', String(err));
  }
}

/** The plain view from decoded samples: the same pipeline as a decoder's own (renderPipeline). */
function renderPlain(raw: RawImage, plan: RenderPlan, s: RenderSettings): Promise<Rendered> {
  return renderPipeline(sharpFrom(toPixels(raw) as Pixels<Uint8Array>), plan, raw.channels, s);
}

/** The plain view in a single libvips pipeline from the decoder's own: no raw copy in between. */
async function renderPipeline(img: Sharp, plan: RenderPlan, channels: number, s: RenderSettings): Promise<Rendered> {
  let out = img;
  let bands = channels;
  // JPEG takes one or three bands (grey+alpha → grey, RGBA → RGB), as reduceChannels does.
  if (plan.format === 'jpg' && (channels === 2 || channels === 4)) {
    out = out.removeAlpha();
    bands = channels - 1;
  }
  if (plan.rect.width !== plan.width || plan.rect.height !== plan.height) {
    out = out.resize(plan.width, plan.height, { fit: 'fill', kernel: KERNELS[s.interpolation] ?? 'linear' });
  }
  // sharp mirrors before it rotates whatever the call order: the IIIF order.
  if (plan.rotation.mirror) out = out.flop();
  const degrees = normalisedDegrees(plan.rotation.degrees);
  if (degrees !== 0) out = out.rotate(degrees);
  return encodeBody(out, plan, bands, false, s);
}

/** The view rendered and encoded, with the source's ICC profile and XMP where they apply. */
export async function render(decoder: ImageDecoder, plan: RenderPlan, settings: RenderSettings): Promise<Rendered> {
  const out = await renderBody(decoder, plan, settings);
  const icc = profileFor(decoder.info, plan, settings.maxIcc ?? 0);
  const xmp = xmpFor(decoder.info, plan);
  return icc || xmp ? { ...out, body: embedMetadata(out.body, plan.format, { icc, xmp }) } : out;
}

async function renderBody(decoder: ImageDecoder, plan: RenderPlan, settings: RenderSettings): Promise<Rendered> {
  const info = decoder.info;
  const marking = watermarkActive(settings.watermark);
  if (plan.passthroughCandidate && plan.tile && decoder.readEncodedTile && !marking && info.colourSpace !== 'cielab') {
    const wanted = plan.format === 'jpg' || plan.format === 'webp' ? plan.format : undefined;
    const stored = wanted ? await decoder.readEncodedTile(plan.level, plan.tile.col, plan.tile.row, wanted) : null;
    if (stored && stored.format === plan.format) {
      return { contentType: CONTENT_TYPES[plan.format], body: stored.data, passthrough: true };
    }
  }
  // Load the watermark before decoding, so that a missing watermark fails fast.
  const wm = marking ? await watermarkFor(settings.watermark!) : undefined;
  const processing0 = plan.processing;
  const degrees0 = normalisedDegrees(plan.rotation.degrees);
  const simple =
    !wm &&
    !hasProcessing(processing0) &&
    (plan.quality === 'default' || plan.quality === 'color') &&
    degrees0 % 90 === 0 &&
    info.sampleFormat === 'uint' &&
    info.bitsPerSample <= 8 &&
    info.colourSpace !== 'cielab';
  const got = simple && decoder.regionPipeline ? await decoder.regionPipeline(plan.level, plan.rect) : null;
  // Decoder modules written before RegionPipeline existed return the sharp pipeline itself.
  const pipeline: RegionPipeline | null = got && !('image' in got) ? { image: got as unknown as Sharp } : got;
  if (pipeline) {
    try {
      return await renderPipeline(pipeline.image, plan, info.channels, settings);
    } finally {
      pipeline.release?.();
    }
  }
  // Quality layers (IIP LYR) matter to JPEG 2000 only; other decoders ignore the option.
  const raw = alignedCopy(await decoder.readRegion(plan.level, plan.rect, plan.layers !== undefined ? { layers: plan.layers } : undefined));
  const processing = plan.processing;
  const depth: 8 | 16 = processing?.bitDepth === 16 && (plan.format === 'png' || plan.format === 'tif') ? 16 : 8;
  const degrees = normalisedDegrees(plan.rotation.degrees);
  const quarter = degrees % 90 === 0;
  const float = raw.sampleFormat === 'float';
  const cielab = info.colourSpace === 'cielab';

  const plain =
    raw.bitsPerSample === 8 &&
    !float &&
    !cielab &&
    raw.channels <= 4 &&
    depth === 8 &&
    !hasProcessing(processing) &&
    (plan.quality === 'default' || plan.quality === 'color') &&
    quarter &&
    !wm;
  if (plain) return renderPlain(raw, plan, settings);

  const histogram = (): Promise<Histogram> => imageHistogram(decoder);
  // §4.7 steps 1–3.
  let p: IntPixels = await processSamples(toPixels(raw), float, processing, {
    minValues: info.minValues,
    maxValues: info.maxValues,
    cielab,
    depth,
    histogram,
  });
  // sharp takes at most four bands; the encoders too (> 4 → 3).
  if (p.channels > 4) p = reduceChannels(p, plan.format);
  // Step 4: resize.
  if (p.width !== plan.width || p.height !== plan.height) {
    const kernel = KERNELS[settings.interpolation] ?? 'linear';
    p = await sharpRaw(p, (img) => img.resize(plan.width, plan.height, { fit: 'fill', kernel }));
  }
  // Steps 5–8.
  p = reduceChannels(p, plan.format);
  if (plan.quality === 'gray') p = greyscale(p);
  else if (plan.quality === 'bitonal') p = binarise(p, otsuThreshold(await histogram()));
  if (processing?.contrast === 'equalization') p = equalise(p, await histogram());

  // Steps 9–10: mirror and rotate.
  const arbitrary = !quarter;
  const alphaCorners = arbitrary && hasAlpha(plan.format);
  if (alphaCorners) p = withAlpha(p);
  const background = alphaCorners ? { r: 0, g: 0, b: 0, alpha: 0 } : { r: 255, g: 255, b: 255, alpha: 1 };
  const geometry = (img: Sharp): Sharp => {
    let out = plan.rotation.mirror ? img.flop() : img;
    if (degrees !== 0) out = out.rotate(degrees, { background });
    return out;
  };
  const wide = p.data instanceof Uint16Array;
  const needRaw = !!wm || (arbitrary && plan.quality === 'bitonal');
  if (!needRaw) return encodeBody(geometry(sharpFrom(p)), plan, p.channels, wide, settings);

  if (plan.rotation.mirror || degrees !== 0) p = await sharpRaw(p, geometry);
  if (arbitrary && plan.quality === 'bitonal') rethreshold(p);
  // Step 11: the watermark, per tile or per tile-sized block of a region.
  if (wm) {
    const l = info.levels[plan.level];
    const block = plan.tile ? { width: p.width, height: p.height } : { width: l?.tileWidth ?? 256, height: l?.tileHeight ?? 256 };
    applyWatermark(p, wm, settings.watermark!.probability, block, settings.random);
  }
  return encodeBody(sharpFrom(p), plan, p.channels, wide, settings);
}
