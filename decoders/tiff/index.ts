// The TIFF decoder module: turns a TIFF's structure (read by ./ifd.ts) into ImageInfo —
// pyramid levels, samples, colour space, metadata — decodes regions through sharp (libvips
// decodes only the tiles a region touches), or through ./samples.ts for the layouts libvips
// would reinterpret (CIELAB, more bands than colour + alpha), and hands out stored JPEG/WebP
// tiles unchanged for passthrough. Level rules follow iipsrv (iipsrv-behaviour.md §11.2), without its bugs
// (TileLength is read for the tile height; palette images are RGB throughout).

import sharp, { type OutputInfo, type Sharp, type SharpOptions } from 'sharp';
import {
  rectInLevel,
  type DecoderModule,
  type EncodedTile,
  type ImageDecoder,
  type OpenOptions,
  type RawImage,
  type RegionPipeline,
} from '../decoder.js';
import { borrow, giveBack } from '../sample-pool.js';
import type { ColourSpace, ImageInfo, Level, PhysicalResolution, SampleFormat, StackMember } from '../../src/core/image-info.js';
import type { Rect } from '../../src/core/view.js';
import { ImageServerError } from '../../src/core/errors.js';
import { Ifd, Tag, TiffFile } from './ifd.js';
import { labToFloat, PREDICTOR_TAG, rawCodecSupported, readSampleBlock, type SampleLayout } from './samples.js';
import { fileError } from '../file-error.js';
import { clearTileBlocks, TileBlocks, tileCacheBytes, type LevelGrid } from './tile-blocks.js';
import type { DecodedLevel } from '../level-cache.js';

/** Tile size declared for untiled (striped) TIFFs; regions are still read with one extract. */
const VIRTUAL_TILE = 256;

/** Empties the decoded-tile cache (tests, SIGHUP). */
export function clearTileCache(): void {
  clearTileBlocks();
}

const COMPRESSION_NAMES: Readonly<Record<number, string>> = {
  1: 'none',
  2: 'ccittrle',
  3: 'ccittfax3',
  4: 'ccittfax4',
  5: 'lzw',
  6: 'old-jpeg',
  7: 'jpeg',
  8: 'deflate',
  32946: 'deflate',
  32773: 'packbits',
  33003: 'jpeg2000',
  33005: 'jpeg2000',
  34712: 'jpeg2000',
  34887: 'lerc',
  34925: 'lzma',
  50000: 'zstd',
  50001: 'webp',
  50002: 'jpegxl',
  52546: 'jpegxl',
};

/** Codecs that sharp's bundled libtiff decodes (checked against the fixtures and sharp's docs). */
const DECODABLE = new Set([1, 2, 3, 4, 5, 7, 8, 32946, 32773, 50000, 50001]);

export function compressionName(c: number): string {
  return COMPRESSION_NAMES[c] ?? `unknown-${c}`;
}

/** How the samples of one image come out of sharp. */
interface DecodePlan {
  /** Sample depth of the RawImage: 8 (uchar), 16 (ushort) or 32 (float). */
  readonly depth: 8 | 16 | 32;
  /**
   * Interpretation to convert to before raw output, chosen so that values stay as stored
   * (measured per case): 8-bit grey 'b-w' (sharp's output would otherwise be 3-band sRGB),
   * colour 'srgb' (palette, CMYK, CIELAB converted); 16-bit 'grey16'/'rgb16' (else squashed to
   * 8 bits); float 'b-w'/'scrgb' (else float RGB is gamma-encoded as linear scRGB, peers.md
   * §7.1); uint32 grey 'b-w', uint32 RGB none ('scrgb' would clip it to 1.0).
   */
  readonly colourspace: 'b-w' | 'srgb' | 'grey16' | 'rgb16' | 'scrgb' | null;
  /**
   * Set when samples are read by ./samples.ts instead of sharp: CIELAB (libvips would convert
   * it to sRGB; the server does that itself, as iipsrv §11.4) and multi-band images (libvips
   * takes extra bands for alpha and expands grey to RGB, peers.md §7.1).
   */
  readonly raw?: {
    readonly bits: 8 | 16 | 32;
    readonly float: boolean;
    readonly lab?: number;
    /** Stored bits of packed 2–14-bit samples (SampleLayout.packedBits). */
    readonly packed?: number;
    readonly minIsWhite?: boolean;
  };
}

/** Where sharp finds one pyramid level. */
interface LevelSource {
  readonly ifd: Ifd;
  readonly level: Level;
  /** sharp input options selecting this IFD. */
  readonly input: SharpOptions;
  /** Index into IFD0's SubIFDs, for SubIFD pyramid levels. */
  readonly subifd?: number;
  /** TIFF Predictor of this IFD (only read for the raw sample path). */
  readonly predictor?: number;
}

/**
 * A sharp pipeline reading one level. sharp 0.35.3 silently ignores `tiff.subifd` (its native
 * side tests for an input attribute named `subifd` but the JS side only sets `tiffSubifd`;
 * fixed upstream in lovell/sharp#4572, while we pin 0.35.3 for CIELAB — peers.md §7.1), so the
 * attribute is added to sharp's (internal) input descriptor here. Harmless once sharp is
 * fixed; `subIfdSelectionWorks` verifies it on the first SubIFD file opened, and if it ever
 * stops working SubIFD levels are left out (slower, never wrong).
 */
function sharpFor(path: string, src: Pick<LevelSource, 'input' | 'subifd'>): Sharp {
  const img = sharp(path, src.input);
  if (src.subifd !== undefined) {
    const input = (img as unknown as { options?: { input?: Record<string, unknown> } }).options?.input;
    if (input) input.subifd = src.subifd;
  }
  return img;
}

let subIfdCheck: boolean | undefined;

/** Whether sharp really selects SubIFDs (checked once per process, on a real SubIFD level). */
async function subIfdSelectionWorks(path: string, src: LevelSource): Promise<boolean> {
  if (subIfdCheck === undefined) {
    let m: { width?: number; height?: number };
    try {
      m = await sharpFor(path, src).metadata();
    } catch (err) {
      // This file's problem, not sharp's: decide on another file.
      throw new ImageServerError('CORRUPT_IMAGE', undefined, `${path}: SubIFD level: ${err instanceof Error ? err.message : String(err)}`);
    }
    subIfdCheck = m.width === src.ifd.width && m.height === src.ifd.height;
  }
  return subIfdCheck;
}

function unsupported(message: string, detail: string): ImageServerError {
  return new ImageServerError('UNSUPPORTED_IMAGE', `Unsupported TIFF: ${message}`, detail);
}

/**
 * The pages of an image stack (§11.2): IFD0 and every later top-level IFD of IFD0's size and
 * tiling that is not a reduced level or a mask — iipsrv's rule ("IFD1 as large as IFD0 makes
 * a stack"), which also takes pages marked with the NewSubfileType page bit. Indices into
 * `tiff.ifds`; a plain pyramid has the one page 0.
 */
export function stackPages(tiff: TiffFile): number[] {
  const ifd0 = tiff.ifds[0];
  const pages = [0];
  tiff.ifds.forEach((ifd, i) => {
    const page = (ifd.newSubfileType & 5) === 0 && ifd.width === ifd0.width && ifd.height === ifd0.height && ifd.isTiled === ifd0.isTiled;
    if (i > 0 && page) pages.push(i);
  });
  return pages;
}

/** Text of a stack page's name (DocumentName, else PageName) and its scale (STONITS). */
async function stackMember(ifd: Ifd): Promise<StackMember> {
  const name = (await ifd.text(Tag.DocumentName)) ?? (await ifd.text(Tag.PageName));
  const scale = (await ifd.values(Tag.StoNits))?.[0];
  return { ...(name !== undefined ? { name } : {}), ...(scale !== undefined && Number.isFinite(scale) ? { scale } : {}) };
}

/**
 * The pyramid of one page of a TIFF (`first`: its IFD index; 0 unless the file is a stack).
 * (a) The page with SubIFDs: the page plus its reduced-resolution (NewSubfileType bit 0) tiled
 * SubIFDs. (b) Otherwise the page plus the tiled IFDs after it (up to the next stack page) that
 * are strictly smaller — untiled ones (SVS thumbnail/label/macro) and transparency masks are
 * skipped, and of two levels with the same size the first wins. Untiled page: one level.
 */
async function findLevels(tiff: TiffFile, path: string, first: number, next: number): Promise<LevelSource[]> {
  const ifd0 = tiff.ifds[first];
  // failOn 'warning' (sharp's default, stated here on purpose): libtiff reports a tile that
  // fails to decode only as a warning, and anything laxer returns black pixels instead of an
  // error. Header oddities (unknown tags, unsorted entries) do not trip it.
  // ignoreIcc: samples are served as stored, as on every other path (passthrough, raw
  // samples); sharp would otherwise convert them from an embedded profile to sRGB.
  const base: SharpOptions = { limitInputPixels: false, failOn: 'warning', ignoreIcc: true };
  const levelOf = (ifd: Ifd, virtual: boolean): Level => ({
    width: ifd.width,
    height: ifd.height,
    tileWidth: virtual ? VIRTUAL_TILE : ifd.tileWidth!,
    tileHeight: virtual ? VIRTUAL_TILE : ifd.tileHeight!,
  });
  if (!ifd0.isTiled) return [{ ifd: ifd0, level: levelOf(ifd0, true), input: { ...base, page: first } }];

  const candidates: { ifd: Ifd; input: SharpOptions; subifd?: number }[] = [];
  if (ifd0.subIfdOffsets.length > 0) {
    const subs = await tiff.subIfds(ifd0);
    subs.forEach((ifd, i) => {
      if ((ifd.newSubfileType & 1) === 1) candidates.push({ ifd, input: { ...base, page: first, tiff: { subifd: i } }, subifd: i });
    });
  } else {
    tiff.ifds.forEach((ifd, i) => {
      if (i > first && i < next) candidates.push({ ifd, input: { ...base, page: i } });
    });
  }
  const levels: LevelSource[] = [{ ifd: ifd0, level: levelOf(ifd0, false), input: { ...base, page: first } }];
  for (const c of candidates) {
    const { ifd } = c;
    if (!ifd.isTiled || (ifd.newSubfileType & 4) !== 0) continue;
    const smaller = ifd.width <= ifd0.width && ifd.height <= ifd0.height && (ifd.width < ifd0.width || ifd.height < ifd0.height);
    if (!smaller) continue;
    if (levels.some((l) => l.ifd.width === ifd.width && l.ifd.height === ifd.height)) continue;
    // A level must be decodable the same way as full resolution; otherwise leave it out and
    // let the server resize from a larger level.
    if (!sameSamples(ifd0, ifd) || !DECODABLE.has(ifd.compression)) continue;
    levels.push({ ifd, level: levelOf(ifd, false), input: c.input, subifd: c.subifd });
  }
  // Without working SubIFD selection every "level" would silently decode full resolution.
  const firstSub = levels.find((l) => l.subifd !== undefined);
  if (firstSub && !(await subIfdSelectionWorks(path, firstSub))) return levels.filter((l) => l.subifd === undefined);
  levels.sort((a, b) => b.ifd.width * b.ifd.height - a.ifd.width * a.ifd.height);
  return levels;
}

function sameSamples(a: Ifd, b: Ifd): boolean {
  return (
    a.samplesPerPixel === b.samplesPerPixel &&
    a.photometric === b.photometric &&
    a.planarConfig === b.planarConfig &&
    a.bitsPerSample.every((v, i) => v === b.bitsPerSample[i]) &&
    a.sampleFormat.every((v, i) => v === b.sampleFormat[i])
  );
}

/** Sample sizes libvips does not read, unpacked by ./samples.ts and widened to 8 or 16 bits. */
const PACKED_BITS = [2, 4, 6, 10, 12, 14];

/** The raw-path plan for 2–14-bit grey or RGB(A) samples (no palette, CIELAB, JPEG or floats). */
function packedPlan(
  ifd: Ifd,
  photometric: number,
  bits: number,
  fmt: number,
  detail: (what: string) => string,
): { plan: DecodePlan; colourSpace: ColourSpace; channels: number } {
  const spp = ifd.samplesPerPixel;
  const grey = photometric === 0 || photometric === 1;
  if (fmt !== 1 || !(grey || (photometric === 2 && spp >= 3))) {
    throw unsupported(
      `${bits}-bit samples with photometric ${photometric}`,
      detail(`bits ${bits} photometric ${photometric} format ${fmt}`),
    );
  }
  if (!rawCodecSupported(ifd.compression)) {
    throw unsupported(`${compressionName(ifd.compression)} compression for ${bits}-bit samples`, detail(`compression ${ifd.compression}`));
  }
  const depth = bits < 8 ? 8 : 16;
  return {
    plan: {
      depth,
      colourspace: null,
      raw: { bits: depth, float: false, packed: bits, ...(photometric === 0 ? { minIsWhite: true } : {}) },
    },
    colourSpace: grey ? 'grey' : 'srgb',
    channels: spp,
  };
}

/** Validates IFD0's sample layout and works out how sharp must deliver it. */
function planFor(ifd: Ifd, path: string): { plan: DecodePlan; colourSpace: ColourSpace; channels: number } {
  const detail = (what: string): string => `${path}: ${what}`;
  const bits = ifd.bitsPerSample[0];
  const fmt = ifd.sampleFormat[0];
  const spp = ifd.samplesPerPixel;
  const photometric = ifd.photometric ?? (spp >= 3 ? 2 : 1);
  if (!ifd.bitsPerSample.every((b) => b === bits) || !ifd.sampleFormat.every((f) => f === fmt)) {
    throw unsupported('mixed sample sizes', detail(`bits ${ifd.bitsPerSample.join(',')} format ${ifd.sampleFormat.join(',')}`));
  }
  if (ifd.compression === 6) throw unsupported('old-style JPEG compression', detail('compression 6'));
  if (!DECODABLE.has(ifd.compression)) {
    throw unsupported(`${compressionName(ifd.compression)} compression`, detail(`compression ${ifd.compression}`));
  }
  if (ifd.planarConfig === 2 && spp > 1) throw unsupported('separate sample planes', detail(`planar ${ifd.planarConfig}`));
  if (PACKED_BITS.includes(bits)) return packedPlan(ifd, photometric, bits, fmt, detail);
  if (![1, 8, 16, 32].includes(bits)) throw unsupported(`${bits}-bit samples`, detail(`bits ${bits}`));
  if (fmt === 3 && bits !== 32) throw unsupported(`${bits}-bit floating point samples`, detail(`float ${bits}`));
  // Signed integers: libvips takes signed 16-bit grey for grey16 and rescales it on output, so
  // the stored values cannot be delivered reliably; refuse rather than serve wrong numbers.
  // CIELAB is the exception: its a*/b* are signed by definition, and libvips writes 16-bit
  // CIELAB with SampleFormat 2 for all three samples (L is still stored unsigned).
  const lab = photometric === 8 || photometric === 9 || photometric === 10;
  if (fmt === 2 && !lab) throw unsupported('signed integer samples', detail(`format ${fmt} bits ${bits}`));
  if (fmt !== 1 && fmt !== 3 && !(lab && fmt === 2)) throw unsupported('sample format', detail(`format ${fmt}`));
  if (bits === 1 && spp !== 1) throw unsupported('multi-sample bilevel image', detail(`spp ${spp}`));

  let colourSpace: ColourSpace;
  let grey: boolean;
  let channels = spp;
  switch (photometric) {
    case 0:
    case 1:
      // One grey band; any further samples are extra (alpha) samples.
      grey = true;
      colourSpace = bits === 1 ? 'binary' : 'grey';
      break;
    case 3: // palette: expanded to RGB by libvips; reported as RGB everywhere (iipsrv bug #25)
      if (bits !== 8 && bits !== 16) throw unsupported(`${bits}-bit palette`, detail(`palette ${bits}`));
      grey = false;
      colourSpace = 'srgb';
      channels = 3;
      break;
    case 8:
    case 9: // CIELAB / ICCLab: read raw, delivered as float L*, a*, b* (+ extra samples)
      if (photometric === 8 || photometric === 9) {
        if (spp < 3) throw unsupported(`CIELAB with ${spp} samples`, detail(`photometric ${photometric}`));
        if (bits === 1 || (bits === 32 && fmt !== 3)) throw unsupported(`${bits}-bit CIELAB`, detail(`bits ${bits} format ${fmt}`));
      }
      grey = false;
      colourSpace = 'cielab';
      channels = spp;
      break;
    case 10: // ITULab (fax encoding): its ranges are set by a Decode tag we do not read
      throw unsupported('ITU L*a*b* (photometric 10)', detail('photometric 10'));
    case 5: // separated (CMYK): converted to sRGB
      grey = false;
      colourSpace = 'srgb';
      channels = 3 + Math.max(0, spp - 4);
      break;
    default: // 2 RGB, 6 YCbCr (decoded to RGB), anything else treated as RGB like iipsrv
      if (spp < 3) throw unsupported(`photometric ${photometric} with ${spp} samples`, detail(`photometric ${photometric}`));
      grey = false;
      colourSpace = 'srgb';
  }
  // Multi-band: more samples than grey + alpha or RGB + alpha. These and CIELAB are read raw.
  const multiband = (grey && bits !== 1 && spp > 2) || (photometric === 2 && spp > 4);
  if (colourSpace === 'cielab' || multiband) {
    if (!rawCodecSupported(ifd.compression)) {
      throw unsupported(
        `${compressionName(ifd.compression)} compression for ${colourSpace === 'cielab' ? 'CIELAB' : `${spp}-band`} images`,
        detail(`compression ${ifd.compression}, photometric ${photometric}, ${spp} samples`),
      );
    }
    const rbits = bits as 8 | 16 | 32;
    const plan: DecodePlan = {
      depth: colourSpace === 'cielab' ? 32 : rbits,
      colourspace: null,
      raw: { bits: rbits, float: fmt === 3, ...(colourSpace === 'cielab' ? { lab: photometric } : {}) },
    };
    return { plan, colourSpace, channels };
  }
  // 32-bit unsigned integers are delivered as float with their values kept. Palette images go
  // through libvips' conversion to 8-bit sRGB.
  let depth: 8 | 16 | 32 = bits <= 8 ? 8 : bits === 16 ? 16 : 32;
  if (photometric === 3) depth = 8;
  let colourspace: DecodePlan['colourspace'];
  if (depth === 8) colourspace = grey ? 'b-w' : 'srgb';
  else if (depth === 16) colourspace = grey ? 'grey16' : 'rgb16';
  else if (fmt === 3) colourspace = grey ? 'b-w' : 'scrgb';
  else colourspace = grey ? 'b-w' : null;
  return { plan: { depth, colourspace }, colourSpace, channels };
}

class TiffDecoder implements ImageDecoder {
  /** This image's decoded tiles (./tile-blocks.ts). */
  private readonly blocks = new TileBlocks();

  constructor(
    readonly info: ImageInfo,
    private readonly tiff: TiffFile,
    private readonly levels: readonly LevelSource[],
    private readonly plan: DecodePlan,
    private readonly path: string,
  ) {}

  private source(level: number): LevelSource {
    const s = this.levels[level];
    if (!Number.isInteger(level) || !s) {
      throw new ImageServerError('BAD_TILE', undefined, `${this.path}: level ${level} of ${this.levels.length}`);
    }
    return s;
  }

  /** Whether regions of this level are assembled from cached decoded tiles. */
  private tileCached(src: LevelSource): boolean {
    return !this.plan.raw && this.plan.depth === 8 && src.ifd.isTiled && tileCacheBytes() > 0;
  }

  /**
   * The region from decoded tiles, as a libvips pipeline: over the cached block itself when the
   * region lies in one, else over samples assembled in a pooled buffer, given back once the
   * pipeline has run.
   */
  private async cachedPipeline(src: LevelSource, level: number, rect: Rect): Promise<RegionPipeline> {
    const got = await this.blocks.region(this.grid(src, level), rect, (r) => this.decodeBlock(src, level, r), borrow);
    if (got.assembled) {
      const samples = got.assembled;
      const image = sharp(samples, { raw: { width: rect.width, height: rect.height, channels: got.channels as 1 | 2 | 3 | 4 } });
      return { image, release: () => giveBack(samples) };
    }
    const b = got.block;
    const image = sharp(b.data, { raw: { width: b.width, height: b.height, channels: b.channels as 1 | 2 | 3 | 4 } });
    const whole = rect.width === b.width && rect.height === b.height;
    return { image: whole ? image : image.extract({ left: rect.x - b.x, top: rect.y - b.y, width: rect.width, height: rect.height }) };
  }

  private grid(src: LevelSource, level: number): LevelGrid {
    return { level, width: src.level.width, height: src.level.height, tileWidth: src.ifd.tileWidth!, tileHeight: src.ifd.tileHeight! };
  }

  private async decodeBlock(src: LevelSource, level: number, r: Rect): Promise<DecodedLevel> {
    const raw = await this.readDecoded(src, level, r);
    return { data: raw.data, width: raw.width, height: raw.height, channels: raw.channels, bits: 8 };
  }

  regionPipeline(level: number, rect: Rect): RegionPipeline | null | Promise<RegionPipeline> {
    if (this.plan.raw || this.plan.depth !== 8 || this.info.colourSpace === 'cielab' || this.info.channels > 4) return null;
    const src = this.source(level);
    if (!rectInLevel(rect, src.level.width, src.level.height)) return null;
    if (this.tileCached(src)) return this.cachedPipeline(src, level, rect);
    const { x, y, width, height } = rect;
    const img = sharpFor(this.path, src).extract({ left: x, top: y, width, height });
    return { image: this.plan.colourspace ? img.toColourspace(this.plan.colourspace) : img };
  }

  async readRegion(level: number, rect: Rect): Promise<RawImage> {
    const src = this.source(level);
    if (!rectInLevel(rect, src.level.width, src.level.height)) {
      throw new ImageServerError('BAD_REGION', undefined, `${this.path}: level ${level} rect ${JSON.stringify(rect)}`);
    }
    if (this.plan.raw) return this.readRaw(src, level, rect);
    if (this.tileCached(src)) return this.readFromTiles(src, level, rect);
    return this.readDecoded(src, level, rect);
  }

  /** A region from decoded tiles (./tile-blocks.ts), as new samples. */
  private async readFromTiles(src: LevelSource, level: number, rect: Rect): Promise<RawImage> {
    const { data, channels } = await this.blocks.copy(this.grid(src, level), rect, (r) => this.decodeBlock(src, level, r));
    return { data, width: rect.width, height: rect.height, channels, bitsPerSample: 8, sampleFormat: 'uint' };
  }

  /** A region decoded by libvips (which decodes only the tiles it touches). */
  private async readDecoded(src: LevelSource, level: number, rect: Rect): Promise<RawImage> {
    const { x, y, width, height } = rect;
    let img = sharpFor(this.path, src).extract({ left: x, top: y, width, height });
    const { depth, colourspace } = this.plan;
    if (colourspace) img = img.toColourspace(colourspace);
    // 1-bit samples come unpacked to 0/255 (uchar). Alpha bands are kept.
    img = img.raw({ depth: depth === 8 ? 'uchar' : depth === 16 ? 'ushort' : 'float' });
    let out: { data: Buffer; info: OutputInfo };
    try {
      out = await img.toBuffer({ resolveWithObject: true });
    } catch (err) {
      throw new ImageServerError(
        'CORRUPT_IMAGE',
        undefined,
        `${this.path}: level ${level} rect ${x},${y},${width},${height}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const { data, info } = out;
    const expected = info.width * info.height * info.channels * (depth / 8);
    if (info.width !== width || info.height !== height || data.length !== expected) {
      throw new ImageServerError(
        'INTERNAL',
        undefined,
        `${this.path}: sharp returned ${info.width}×${info.height}×${info.channels}, ${data.length} bytes`,
      );
    }
    return {
      data,
      width,
      height,
      channels: info.channels,
      bitsPerSample: depth,
      sampleFormat: depth === 32 ? 'float' : 'uint',
    };
  }

  /** The raw sample path (CIELAB, multi-band): stored values, every band in its place. */
  private async readRaw(src: LevelSource, level: number, rect: Rect): Promise<RawImage> {
    const raw = this.plan.raw!;
    const layout: SampleLayout = {
      samplesPerPixel: src.ifd.samplesPerPixel,
      bits: raw.bits,
      float: raw.float,
      compression: src.ifd.compression,
      predictor: src.predictor ?? 1,
      littleEndian: this.tiff.littleEndian,
      ...(raw.packed !== undefined ? { packedBits: raw.packed, minIsWhite: raw.minIsWhite } : {}),
    };
    const where = `${this.path}: level ${level} rect ${rect.x},${rect.y},${rect.width},${rect.height}`;
    const block = await readSampleBlock(src.ifd, layout, rect, where);
    let data: Buffer;
    let bits: 8 | 16 | 32 = raw.bits;
    if (raw.lab !== undefined) {
      const f = labToFloat(block, raw.bits, raw.lab);
      data = Buffer.from(f.buffer, f.byteOffset, f.byteLength);
      bits = 32;
    } else if (raw.bits === 32 && !raw.float) {
      // uint32 as float with its values kept, like the sharp path.
      const f = Float32Array.from(block.data);
      data = Buffer.from(f.buffer, f.byteOffset, f.byteLength);
    } else {
      data = Buffer.from(block.data.buffer, block.data.byteOffset, block.data.byteLength);
    }
    return {
      data,
      width: rect.width,
      height: rect.height,
      channels: block.channels,
      bitsPerSample: bits,
      sampleFormat: bits === 32 ? 'float' : 'uint',
    };
  }

  async readEncodedTile(level: number, col: number, row: number, wanted?: EncodedTile['format']): Promise<EncodedTile | null> {
    const src = this.source(level);
    const ifd = src.ifd;
    if (!ifd.isTiled) return null;
    if (!Number.isInteger(col) || !Number.isInteger(row) || col < 0 || row < 0 || col >= ifd.tilesAcross || row >= ifd.tilesDown) {
      throw new ImageServerError('BAD_TILE', undefined, `${this.path}: level ${level} tile ${col},${row}`);
    }
    const tw = ifd.tileWidth!;
    const th = ifd.tileHeight!;
    // Edge tiles are stored padded to the full tile size; only full tiles pass through.
    if ((col + 1) * tw > ifd.width || (row + 1) * th > ifd.height) return null;
    if (ifd.planarConfig === 2 && ifd.samplesPerPixel > 1) return null;
    if (ifd.bitsPerSample[0] !== 8 || ifd.sampleFormat[0] !== 1 || ifd.extraSamples.length > 0) return null;
    const index = row * ifd.tilesAcross + col;
    const stored = ifd.compression === 7 ? 'jpg' : ifd.compression === 50001 ? 'webp' : undefined;
    if (stored === undefined || (wanted !== undefined && wanted !== stored)) return null;
    if (stored === 'jpg') return this.jpegTile(ifd, index);
    const data = await ifd.readTile(index);
    return isWebp(data) ? { format: 'webp', data } : null;
  }

  private async jpegTile(ifd: Ifd, index: number): Promise<EncodedTile | null> {
    const photometric = ifd.photometric;
    const spp = ifd.samplesPerPixel;
    const rgb = photometric === 2 && spp === 3;
    if (!(photometric === 6 && spp === 3) && !(photometric === 1 && spp === 1) && !rgb) return null;
    const [tables, tile] = await Promise.all([ifd.jpegTables(), ifd.readTile(index)]);
    if (tile.length < 4 || tile[0] !== 0xff || tile[1] !== 0xd8) return null;
    let parts: Buffer[];
    if (tables && tables.length >= 4) {
      // Tables are an abbreviated stream SOI … EOI: drop its EOI and the tile's SOI.
      if (tables[0] !== 0xff || tables[1] !== 0xd8 || tables[tables.length - 2] !== 0xff || tables[tables.length - 1] !== 0xd9) {
        return null;
      }
      parts = [tables.subarray(0, tables.length - 2), tile.subarray(2)];
    } else {
      parts = [tile];
    }
    if (rgb) {
      // Components are R,G,B, not YCbCr: an Adobe marker with transform 0 tells every decoder
      // not to convert colour (libjpeg-turbo guesses right from the component ids, others don't).
      const first = parts[0];
      parts = [first.subarray(0, 2), ADOBE_APP14_RGB, first.subarray(2), ...parts.slice(1)];
    }
    const data = Buffer.concat(parts);
    if (data[data.length - 2] !== 0xff || data[data.length - 1] !== 0xd9) return null;
    const sof = readSof(data);
    if (!sof || sof.width !== ifd.tileWidth || sof.height !== ifd.tileHeight || sof.components.length !== spp) return null;
    // RGB components with chroma subsampling would be decoded wrongly by browsers (iipsrv §12).
    if (rgb && sof.components.some((c) => c !== 0x11)) return null;
    return { format: 'jpg', data };
  }

  async close(): Promise<void> {
    this.blocks.clear();
    await this.tiff.close();
  }
}

/** APP14 "Adobe" segment, version 100, flags 0, transform 0 (no colour transform: RGB). */
const ADOBE_APP14_RGB = Buffer.from([0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00]);

/** The frame header of a JPEG: size and each component's sampling byte (H<<4|V). */
export function readSof(jpeg: Buffer): { width: number; height: number; components: number[] } | null {
  if (jpeg.length < 4 || jpeg[0] !== 0xff || jpeg[1] !== 0xd8) return null;
  let p = 2;
  while (p + 4 <= jpeg.length) {
    if (jpeg[p] !== 0xff) return null;
    const m = jpeg[p + 1];
    if (m === 0xff) {
      p++; // fill byte
      continue;
    }
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      p += 2;
      continue;
    }
    if (m === 0xd9 || m === 0xda) return null; // EOI or scan data before any frame header
    const len = jpeg.readUInt16BE(p + 2);
    if (len < 2 || p + 2 + len > jpeg.length) return null;
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      const n = jpeg[p + 9];
      if (len < 8 + 3 * n) return null;
      const components: number[] = [];
      for (let i = 0; i < n; i++) components.push(jpeg[p + 11 + 3 * i]);
      return { height: jpeg.readUInt16BE(p + 5), width: jpeg.readUInt16BE(p + 7), components };
    }
    p += 2 + len;
  }
  return null;
}

function isWebp(b: Buffer): boolean {
  return (
    b.length >= 16 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP' && b.readUInt32LE(4) + 8 <= b.length
  );
}

/** Builds ImageInfo and the per-level sharp inputs for an opened file. */
async function buildInfo(
  tiff: TiffFile,
  path: string,
  page: number,
): Promise<{ info: ImageInfo; levels: LevelSource[]; plan: DecodePlan }> {
  const pages = stackPages(tiff);
  if (!Number.isInteger(page) || page < 0 || page >= pages.length) {
    throw new ImageServerError('NOT_FOUND', `Image not found: stack member ${page} (0 to ${pages.length - 1})`, path);
  }
  const first = pages[page];
  const ifd0 = tiff.ifds[first];
  const { plan, colourSpace, channels } = planFor(ifd0, path);
  let levels = await findLevels(tiff, path, first, pages[page + 1] ?? tiff.ifds.length);
  if (plan.raw) {
    // The raw path decompresses itself: keep the levels whose codec it knows, with their predictor.
    levels = await Promise.all(
      levels
        .filter((l, i) => i === 0 || rawCodecSupported(l.ifd.compression))
        .map(async (l) => ({ ...l, predictor: (await l.ifd.values(PREDICTOR_TAG))?.[0] ?? 1 })),
    );
  }
  const bits = ifd0.bitsPerSample[0];
  const fmt = ifd0.sampleFormat[0];
  const sampleFormat: SampleFormat = fmt === 3 ? 'float' : fmt === 2 ? 'int' : 'uint';

  // Sample range: SMin/SMax when present, else the type's range (≤ 8 bits → 255, as iipsrv:
  // 1-bit samples are delivered unpacked to 0/255), 1.0 for float.
  const defaultMax = fmt === 3 ? 1 : bits <= 8 ? 255 : 2 ** bits - 1;
  const defaultMin = 0;
  // Packed samples are widened to 8 or 16 bits: their stated range is widened alike.
  const widen = plan.raw?.packed !== undefined ? (2 ** plan.depth - 1) / (2 ** bits - 1) : 1;
  const pick = (v: readonly number[] | undefined, i: number, dflt: number): number => {
    const x = v?.[Math.min(i, v.length - 1)];
    const value = x !== undefined && Number.isFinite(x) ? x : dflt;
    return widen === 1 ? value : value * widen;
  };
  const minValues = Array.from({ length: channels }, (_, i) => pick(ifd0.sMinSampleValue, i, defaultMin));
  const maxValues = Array.from({ length: channels }, (_, i) => pick(ifd0.sMaxSampleValue, i, defaultMax));

  let resolution: PhysicalResolution | undefined;
  if (ifd0.xResolution !== undefined && (ifd0.resolutionUnit === 2 || ifd0.resolutionUnit === 3)) {
    resolution = {
      x: ifd0.xResolution,
      y: ifd0.yResolution ?? ifd0.xResolution,
      unit: ifd0.resolutionUnit === 2 ? 'in' : 'cm',
    };
  }

  const t = await ifd0.textTags();
  const metadata: Record<string, string> = {};
  const put = (k: string, v: string | undefined): void => {
    if (v !== undefined) metadata[k] = v;
  };
  put('title', t.documentName);
  put('creator', t.artist);
  put('rights', t.copyright);
  put('date', t.dateTime);
  put('description', t.imageDescription);
  put('pagename', t.pageName);
  put('software', t.software);
  put('make', t.make);
  put('model', t.model);
  put('xmp', t.xmp);
  const icc = await ifd0.bytes(Tag.InterColorProfile);

  const info: ImageInfo = {
    format: 'tiff',
    width: ifd0.width,
    height: ifd0.height,
    levels: levels.map((l) => l.level),
    channels,
    bitsPerSample: bits,
    sampleFormat,
    colourSpace,
    compression: compressionName(ifd0.compression),
    minValues,
    maxValues,
    ...(resolution ? { resolution } : {}),
    metadata,
    ...(icc && icc.length > 0 ? { icc } : {}),
    ...(pages.length > 1 ? { stack: await Promise.all(pages.map((i) => stackMember(tiff.ifds[i]))) } : {}),
  };
  return { info, levels, plan };
}

const MAGICS = [
  [0x49, 0x49, 0x2a, 0x00], // II*\0 classic little-endian
  [0x4d, 0x4d, 0x00, 0x2a], // MM\0* classic big-endian
  [0x49, 0x49, 0x2b, 0x00], // II+\0 BigTIFF little-endian
  [0x4d, 0x4d, 0x00, 0x2b], // MM\0+ BigTIFF big-endian
];

export const tiffDecoder: DecoderModule = {
  name: 'tiff',
  sniff(head: Buffer): boolean {
    return head.length >= 4 && MAGICS.some((m) => m.every((b, i) => head[i] === b));
  },
  async open(path: string, options?: OpenOptions): Promise<ImageDecoder> {
    const tiff = await TiffFile.open(path).catch((err: unknown) => {
      throw fileError(err, path);
    });
    try {
      const { info, levels, plan } = await buildInfo(tiff, path, options?.page ?? 0);
      return new TiffDecoder(info, tiff, levels, plan, path);
    } catch (err) {
      await tiff.close().catch(() => undefined);
      throw err;
    }
  },
};

export default tiffDecoder;
export { TiffFile, Ifd } from './ifd.js';
