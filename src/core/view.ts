// The neutral view request: what every pixel protocol (IIIF, IIP, Zoomify, DeepZoom) parses
// its URL into. Everything below the protocols (planning, cache keys, passthrough, limits,
// watermarks) works on this one shape, so a feature added there works for every protocol.

export type OutputFormat = 'jpg' | 'png' | 'webp' | 'tif' | 'avif';

export const CONTENT_TYPES: Readonly<Record<OutputFormat, string>> = {
  jpg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  tif: 'image/tiff',
  avif: 'image/avif',
};

/** `default` leaves colours as they are; `color` is its synonym for colour images. */
export type Quality = 'default' | 'color' | 'gray' | 'bitonal';

export interface Rect {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/** Clockwise rotation in degrees; `mirror` flips horizontally before rotating (IIIF order). */
export interface Rotation {
  readonly degrees: number;
  readonly mirror: boolean;
}

/** File extensions and CVT values naming an output format (IIP CVT, DeepZoom tile names). */
export const FORMAT_BY_EXTENSION: Readonly<Record<string, OutputFormat>> = {
  jpg: 'jpg',
  jpeg: 'jpg',
  png: 'png',
  webp: 'webp',
  avif: 'avif',
  tif: 'tif',
  tiff: 'tif',
};

export const NO_ROTATION: Rotation = { degrees: 0, mirror: false };

/** A region of the full-resolution image, not yet clipped to it. */
export type RegionSpec =
  | { readonly type: 'full' }
  | { readonly type: 'square' }
  | { readonly type: 'pixels'; readonly x: number; readonly y: number; readonly w: number; readonly h: number }
  /** Fractions of the full image (0..1), as IIIF `pct:` divided by 100 and IIP `RGN`. */
  | { readonly type: 'fraction'; readonly x: number; readonly y: number; readonly w: number; readonly h: number };

/** The output size. `upscale` is the IIIF 3 `^` prefix: upscaling was asked for explicitly. */
export type SizeSpec =
  | { readonly type: 'max'; readonly upscale: boolean }
  | { readonly type: 'width'; readonly w: number; readonly upscale: boolean }
  | { readonly type: 'height'; readonly h: number; readonly upscale: boolean }
  | { readonly type: 'percent'; readonly pct: number; readonly upscale: boolean }
  /** Exactly w×h, distorting if need be. */
  | { readonly type: 'exact'; readonly w: number; readonly h: number; readonly upscale: boolean }
  /** The largest size that fits inside w×h keeping the aspect ratio (IIIF `!w,h`). */
  | { readonly type: 'fit'; readonly w: number; readonly h: number; readonly upscale: boolean };

/**
 * How upscaling is judged. `caret`: IIIF 3, any upscale without `^` is an error.
 * `allowed`: IIIF 2 and IIP, upscaling is fine unless the server forbids it.
 */
export type UpscaleRule = 'caret' | 'allowed';

export type Colormap = 'hot' | 'cold' | 'jet' | 'blue' | 'green' | 'red';

/**
 * Pixel processing asked for by a request (IIP commands, IIIF extension qualities). Applied
 * in one fixed order whatever order the commands came in (see src/image/process.ts).
 * Every field is optional; an absent field means "leave the pixels alone".
 */
export interface Processing {
  /** MINMAX: per-channel (index) or all-channel (-1) normalisation range overrides. */
  readonly minmax?: ReadonlyArray<{ readonly channel: number; readonly min: number; readonly max: number }>;
  /** SHD: hill shading of a surface-normal image, angles in degrees. */
  readonly hillshade?: { readonly horizontal: number; readonly vertical: number };
  /** CTW: colour twist matrix, one row per output channel. */
  readonly twist?: ReadonlyArray<ReadonlyArray<number>>;
  /** GAM: power on normalised values, or a logarithmic transform. */
  readonly gamma?: number | 'log';
  /** INV */
  readonly invert?: boolean;
  /** CMP: pseudo-colour map applied to the first channel. */
  readonly colormap?: Colormap;
  /** CNV: a square kernel of odd size (3×3 or 5×5), row-major. */
  readonly convolution?: ReadonlyArray<number>;
  /** CNT: contrast multiplier, or a histogram stretch or equalisation. */
  readonly contrast?: number | 'stretch' | 'equalization';
  /** Band selection for multispectral images (channel indices in output order). */
  readonly bands?: ReadonlyArray<number>;
  /** Output sample depth when the format allows it (PNG, TIFF); 8 by default. */
  readonly bitDepth?: 8 | 16;
}

/** TIFF output compressions by their IIP `QLT` names. */
export type TiffCodec = 'none' | 'lzw' | 'deflate' | 'jpeg' | 'webp' | 'zstd';

interface CommonView {
  readonly format: OutputFormat;
  readonly quality: Quality;
  readonly rotation: Rotation;
  /** Encoder quality asked for by the request (IIP QLT); undefined means the server default. */
  readonly encoderQuality?: number;
  /** TIFF output compression asked for by the request (IIP `QLT=<codec>:<q>`); undefined: TIFF_COMPRESSION. */
  readonly tiffCodec?: TiffCodec;
  /** Pixel processing; undefined or empty means none. */
  readonly processing?: Processing;
  /** JPEG 2000 quality layers to decode (IIP LYR); undefined means the server default. */
  readonly layers?: number;
}

/** True when a Processing asks for any change at all. */
export function hasProcessing(p: Processing | undefined): boolean {
  return p !== undefined && Object.values(p).some((v) => v !== undefined);
}

/** A stable text form of a Processing, for cache keys. */
export function processingKey(p: Processing | undefined): string {
  if (!hasProcessing(p)) return '';
  const entries = Object.entries(p!)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => a.localeCompare(b));
  return JSON.stringify(entries);
}

/** One tile of the pyramid: `level` counts from full resolution (0) downwards. */
export interface TileView extends CommonView {
  readonly kind: 'tile';
  readonly level: number;
  readonly col: number;
  readonly row: number;
}

/** Any region at any size; the planner serves it as a tile when it is exactly one. */
export interface RegionView extends CommonView {
  readonly kind: 'region';
  readonly region: RegionSpec;
  readonly size: SizeSpec;
  readonly upscaleRule: UpscaleRule;
}

export type ViewRequest = TileView | RegionView;
