// Plain JPEG input (iipsrv-behaviour.md §11.8): a JPEG has no tiles and no pyramid, so the
// decoder declares virtual 256×256 tiles and virtual levels halved with floor until the image
// fits in one tile, and decodes with sharp (libjpeg's DCT scaling when a level is smaller than
// the image). A decoded level of moderate size is kept in a small shared memory budget, so the
// tiles of one level cost one decode, not one each; larger levels are decoded per request
// (slow for very large JPEGs, as in iipsrv: make a pyramid for those).

import sharp, { type Metadata, type Sharp } from 'sharp';
import { rectInLevel, type DecoderModule, type ImageDecoder, type RawImage } from '../decoder.js';
import type { ImageInfo, Level, PhysicalResolution } from '../../src/core/image-info.js';
import type { Rect } from '../../src/core/view.js';
import { ImageServerError } from '../../src/core/errors.js';
import { fileError } from '../file-error.js';
import { cropLevel, decodedCache as levels, type DecodedLevel } from '../level-cache.js';

const TILE = 256;
/**
 * A decoded level up to this size is decoded whole once and kept (in the process-wide
 * decoded-samples cache, when it admits it) for the following tiles.
 */
const LEVEL_CACHE_MAX_BYTES = 32 * 1024 * 1024;

type Decoded = Omit<DecodedLevel, 'bits'>;

/** Virtual levels: full size, then floor(w/2) × floor(h/2) until one tile holds the image. */
export function jpegLevels(width: number, height: number): Level[] {
  const levels: Level[] = [{ width, height, tileWidth: TILE, tileHeight: TILE }];
  let w = width;
  let h = height;
  while ((w > TILE || h > TILE) && w > 1 && h > 1) {
    w = Math.max(1, Math.floor(w / 2));
    h = Math.max(1, Math.floor(h / 2));
    levels.push({ width: w, height: h, tileWidth: TILE, tileHeight: TILE });
  }
  return levels;
}

let nextId = 0;

class JpegDecoder implements ImageDecoder {
  private readonly id = `jpeg${nextId++}`;
  private closed = false;

  constructor(
    readonly info: ImageInfo,
    private readonly path: string,
  ) {}

  /** A sharp pipeline delivering `level` (resized from the full image, DCT-scaled on load). */
  private pipeline(level: number): Sharp {
    const l = this.info.levels[level];
    // Stored values, not converted through the embedded profile (the renderer embeds it in the
    // output instead), except for CMYK, which only a profile can turn into RGB.
    let img = sharp(this.path, { limitInputPixels: false, failOn: 'warning', ignoreIcc: this.info.icc !== undefined });
    if (level > 0) img = img.resize(l.width, l.height, { fit: 'fill', kernel: 'linear' });
    return img.toColourspace(this.info.channels === 1 ? 'b-w' : 'srgb');
  }

  private async run(img: Sharp, what: string): Promise<Decoded> {
    try {
      const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
      return { data, width: info.width, height: info.height, channels: info.channels };
    } catch (err) {
      throw new ImageServerError('CORRUPT_IMAGE', undefined, `${this.path}: ${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  async readRegion(level: number, rect: Rect): Promise<RawImage> {
    const l = this.info.levels[level];
    const { x, y, width, height } = rect;
    if (!l || !rectInLevel(rect, l.width, l.height)) {
      throw new ImageServerError('BAD_REGION', undefined, `${this.path}: level ${level} rect ${JSON.stringify(rect)}`);
    }
    const c = this.info.channels;
    const bytes = l.width * l.height * c;
    let out: Decoded;
    // Decoding the whole level pays off only if it stays for the next tiles.
    if (bytes <= LEVEL_CACHE_MAX_BYTES && levels.admits(bytes) && !this.closed) {
      const whole = await levels.getOrLoad(`${this.id}:${level}`, async () => ({
        ...(await this.run(this.pipeline(level), `level ${level}`)),
        bits: 8,
      }));
      out = { data: cropLevel(whole, x, y, width, height), width, height, channels: whole.channels };
    } else {
      out = await this.run(
        this.pipeline(level).extract({ left: x, top: y, width, height }),
        `level ${level} rect ${x},${y},${width},${height}`,
      );
    }
    if (out.width !== width || out.height !== height || out.channels !== c) {
      throw new ImageServerError('INTERNAL', undefined, `${this.path}: sharp returned ${out.width}×${out.height}×${out.channels}`);
    }
    return { data: out.data, width, height, channels: c, bitsPerSample: 8, sampleFormat: 'uint' };
  }

  async close(): Promise<void> {
    this.closed = true;
    levels.clear(`${this.id}:`);
  }
}

export const jpegDecoder: DecoderModule = {
  name: 'jpeg',
  sniff(head: Buffer): boolean {
    return head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff;
  },
  async open(path: string): Promise<ImageDecoder> {
    let meta: Metadata;
    try {
      meta = await sharp(path, { limitInputPixels: false }).metadata();
    } catch (err) {
      throw fileError(err, path);
    }
    if (meta.format !== 'jpeg' || !meta.width || !meta.height) {
      throw new ImageServerError('CORRUPT_IMAGE', undefined, `${path}: not a readable JPEG (${meta.format ?? 'unknown'})`);
    }
    // Grey stays one band; colour (YCbCr, RGB, CMYK) is delivered as sRGB.
    const grey = meta.channels === 1 || meta.space === 'b-w';
    const channels = grey ? 1 : 3;
    let resolution: PhysicalResolution | undefined;
    if (meta.density && meta.density > 0) resolution = { x: meta.density, y: meta.density, unit: 'in' };
    const info: ImageInfo = {
      format: 'jpeg',
      width: meta.width,
      height: meta.height,
      levels: jpegLevels(meta.width, meta.height),
      channels,
      bitsPerSample: 8,
      sampleFormat: 'uint',
      colourSpace: grey ? 'grey' : 'srgb',
      compression: 'jpeg',
      minValues: new Array<number>(channels).fill(0),
      maxValues: new Array<number>(channels).fill(255),
      ...(resolution ? { resolution } : {}),
      metadata: meta.xmp ? { xmp: meta.xmp.toString('utf8') } : {},
      ...(meta.icc && meta.space !== 'cmyk' ? { icc: meta.icc } : {}),
    };
    return new JpegDecoder(info, path);
  },
};

export default jpegDecoder;
