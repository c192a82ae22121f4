// From a parsed JPEG 2000 file (src/jpeg2000) to what the server needs: ImageInfo (pyramid
// levels, samples, colour, metadata) and the decode plan (components, output depth, colour
// conversion), plus the quality-layer policy. No decoding: everything comes from the boxes and
// the main header. Rules follow iipsrv §11.7 without its bugs (§13 #27, #28).

import type { ColourSpace, ImageInfo, Level, PhysicalResolution } from '../../src/core/image-info.js';
import { ImageServerError } from '../../src/core/errors.js';
import { findBoxes, reducedSize, type Jpeg2000File } from '../../src/jpeg2000/index.js';

/** Declared tile size of every level: the server decodes any region, so tiles are virtual. */
export const VIRTUAL_TILE = 256;

export interface DecodePlan {
  /** 0 raw codestream, 1 JP2/JPX (OpenJPEG's codec choice). */
  readonly format: 0 | 1;
  /** Components handed out (1–4), after any palette. */
  readonly components: number;
  readonly bits: 8 | 16;
  /** Components 0–2 are YCbCr (JP2 colr sYCC/e-sYCC, or 4:2:x chroma subsampling). */
  readonly ycc: boolean;
  /** DWT levels available for `reduce` (smallest over all components). */
  readonly dwtLevels: number;
  /** Quality layers in the codestream. */
  readonly layers: number;
  /** True when some component is subsampled (the WebAssembly fallback cannot serve it). */
  readonly subsampled: boolean;
  /** Largest subsampling factors over the components served. */
  readonly maxDx: number;
  readonly maxDy: number;
  readonly signed: boolean;
  /** Image origin on the reference grid (XOsiz, YOsiz). */
  readonly x0: number;
  readonly y0: number;
  readonly xsiz: number;
  readonly ysiz: number;
}

export interface Described {
  readonly info: ImageInfo;
  readonly plan: DecodePlan;
}

function unsupported(message: string, detail: string): ImageServerError {
  return new ImageServerError('UNSUPPORTED_IMAGE', `Unsupported JPEG 2000 file: ${message}`, detail);
}

/** XMP packets live in a uuid box with this identifier. */
const XMP_UUID = Buffer.from('be7acfcb97a942e89c71999491e3afac', 'hex');

/**
 * Levels: full resolution down to the first level that fits in one virtual tile. Real DWT
 * levels beyond that are hidden (iipsrv shows only what is needed); when the codestream has
 * fewer DWT levels than needed, the missing ones are virtual (synthesised by downsampling the
 * smallest real level). Sizes follow the JPEG 2000 ceil rule at every level.
 */
export function pyramidLevels(file: Jpeg2000File): Level[] {
  const siz = file.codestream.siz;
  const levels: Level[] = [];
  for (let k = 0; k <= 32; k++) {
    const { width, height } = reducedSize(siz, k);
    levels.push({ width, height, tileWidth: VIRTUAL_TILE, tileHeight: VIRTUAL_TILE });
    if ((width <= VIRTUAL_TILE && height <= VIRTUAL_TILE) || (width <= 1 && height <= 1)) break;
  }
  return levels;
}

/**
 * Quality layers to decode: an explicit request (IIP LYR > 0) within the MAX_LAYERS cap, else
 * MAX_LAYERS' default: 0 → ceil(layers/2), −1 → all, n → min(n, layers).
 */
export function effectiveLayers(total: number, maxLayers: number | undefined, requested: number | undefined): number {
  const max = maxLayers ?? 0;
  const cap = max > 0 ? Math.min(max, total) : total;
  if (requested !== undefined && Number.isFinite(requested) && requested > 0) return Math.min(Math.floor(requested), cap);
  if (max < 0) return total;
  if (max === 0) return Math.max(1, Math.ceil(total / 2));
  return cap;
}

/** Builds ImageInfo and the decode plan; refuses what cannot be served correctly. */
export async function describe(file: Jpeg2000File, path: string): Promise<Described> {
  const cs = file.codestream;
  const siz = cs.siz;
  const comps = siz.components;
  const detail = (what: string): string => `${path}: ${what}`;
  const hdr = file.boxes?.header;

  if (comps[0].dx !== 1 || comps[0].dy !== 1) {
    throw unsupported('first component is subsampled', detail(`XRsiz ${comps[0].dx} YRsiz ${comps[0].dy}`));
  }

  // Colour: the first colr box we understand; raw codestreams go by component count.
  let colourSpace: ColourSpace | undefined;
  let ycc = false;
  let icc: Buffer | undefined;
  for (const c of hdr?.colour ?? []) {
    if (c.method === 1 && c.enumerated !== undefined) {
      const e = c.enumerated;
      if (e === 16 || e === 20 || e === 21) colourSpace = 'srgb';
      else if (e === 17) colourSpace = 'grey';
      else if (e === 18 || e === 24) {
        colourSpace = 'srgb';
        ycc = true;
      } else if (e === 12) throw unsupported('CMYK colour space', detail('colr EnumCS 12'));
      else if (e === 14) throw unsupported('CIELab colour space', detail('colr EnumCS 14'));
      else continue;
      break;
    }
    if ((c.method === 2 || c.method === 3) && c.icc) {
      icc = c.icc; // samples are served as decoded; the renderer embeds the profile (MAX_ICC)
      break;
    }
  }

  // Components after the palette (pclr + cmap expand one index component into columns).
  const palette = hdr?.palette && hdr.componentMapping ? hdr.palette : undefined;
  const available = palette ? palette.columns.length : comps.length;
  const precisions = palette ? palette.columns.map((c) => c.precision) : comps.map((c) => c.precision);
  const signed = palette ? palette.columns.some((c) => c.signed) : comps.some((c) => c.signed);

  // Chroma subsampling of 3 components without a colr box: YCbCr by convention (opj_decompress
  // does the same).
  const subsampled = comps.some((c) => c.dx !== 1 || c.dy !== 1);
  if (!palette && comps.length === 3 && subsampled && colourSpace === undefined && cs.header.cod.mct === 0) ycc = true;

  if (colourSpace === undefined) colourSpace = available >= 3 ? 'srgb' : 'grey';
  let components: number;
  if (colourSpace === 'grey') components = available >= 2 ? 2 : 1;
  else if (available < 3) throw unsupported(`${available} components for a colour image`, detail(`components ${available}`));
  else components = available === 4 ? 4 : 3;
  // Grey with one extra component is grey + alpha only when the extra is opacity (cdef) or
  // there is no statement; more than 4 components: the first three (colour) are served.
  if (colourSpace === 'grey' && available > 2) components = 1;
  if (colourSpace === 'grey' && available === 2 && hdr?.channels && !hdr.channels.some((c) => c.type === 1 || c.type === 2)) components = 1;
  if (components === 4 && hdr?.channels && !hdr.channels.some((c) => c.type === 1 || c.type === 2)) components = 3;

  const used = precisions.slice(0, components);
  const maxPrecision = Math.max(...used);
  // 9–16 bits are served as 16 (scaled), more than 16 scaled down to 16.
  const bits: 8 | 16 = maxPrecision <= 8 ? 8 : 16;
  if (components === 1 && maxPrecision === 1) colourSpace = 'binary';

  const levels = pyramidLevels(file);
  const dwtLevels = cs.minLevels;
  const max = bits === 8 ? 255 : 65535;

  let resolution: PhysicalResolution | undefined;
  const res = hdr?.captureResolution ?? hdr?.displayResolution;
  if (res && res.x > 0 && res.y > 0) resolution = { x: res.x / 100, y: res.y / 100, unit: 'cm' };

  const metadata: Record<string, string> = {};
  const comments = cs.header.comments.filter((c) => c.text !== undefined && c.text.trim() !== '').map((c) => c.text!.trim());
  if (comments.length > 0) metadata.comment = comments.join('\n');
  if (file.boxes) {
    for (const b of findBoxes(file.boxes.boxes, 'uuid')) {
      const len = b.length - b.headerLength;
      if (len < 16 || len > 4 * 1024 * 1024) continue;
      const body = await cs.readBytes(b.offset + b.headerLength, len);
      if (body.subarray(0, 16).equals(XMP_UUID)) {
        metadata.xmp = body.subarray(16).toString('utf8');
        break;
      }
    }
  }

  const info: ImageInfo = {
    format: 'jpeg2000',
    width: siz.xsiz - siz.x0,
    height: siz.ysiz - siz.y0,
    levels,
    channels: components,
    bitsPerSample: bits,
    sampleFormat: 'uint',
    colourSpace,
    compression: 'jpeg2000',
    minValues: Array.from({ length: components }, () => 0),
    maxValues: Array.from({ length: components }, () => max),
    ...(resolution ? { resolution } : {}),
    metadata,
    ...(icc ? { icc } : {}),
  };
  const plan: DecodePlan = {
    format: file.kind === 'j2k' ? 0 : 1,
    components,
    bits,
    ycc,
    dwtLevels,
    layers: cs.header.cod.layers,
    subsampled,
    maxDx: Math.max(...comps.slice(0, Math.max(components, 1)).map((c) => c.dx)),
    maxDy: Math.max(...comps.slice(0, Math.max(components, 1)).map((c) => c.dy)),
    signed,
    x0: siz.x0,
    y0: siz.y0,
    xsiz: siz.xsiz,
    ysiz: siz.ysiz,
  };
  return { info, plan };
}
