// What is known about an image without decoding pixels: its pyramid, samples and metadata.
// Decoders produce it; protocols format it (info.json, OBJ, .dzi, ImageProperties.xml).
// It lives in core so that protocols never import a decoder.

/** One pyramid level. Index 0 of `ImageInfo.levels` is full resolution. */
export interface Level {
  readonly width: number;
  readonly height: number;
  readonly tileWidth: number;
  readonly tileHeight: number;
}

export type SampleFormat = 'uint' | 'int' | 'float';

/** Colour interpretation of the decoded samples. */
export type ColourSpace = 'srgb' | 'grey' | 'cielab' | 'binary';

export interface PhysicalResolution {
  /** Pixels per unit along x and y. */
  readonly x: number;
  readonly y: number;
  readonly unit: 'cm' | 'in';
}

/** The views of an image sequence (§11.5): angles in degrees, ascending. */
export interface ImageViews {
  readonly horizontal: readonly number[];
  readonly vertical: readonly number[];
}

/** One member of an image stack (TIFF pages of one size): IIP `OBJ=stack`. */
export interface StackMember {
  readonly name?: string;
  readonly scale?: number;
}

export interface ImageInfo {
  /** Decoder that opened the file, e.g. `tiff`. */
  readonly format: string;
  readonly width: number;
  readonly height: number;
  /** Largest first; every level's size is the file's own, not an assumed power of two. */
  readonly levels: readonly Level[];
  readonly channels: number;
  readonly bitsPerSample: number;
  readonly sampleFormat: SampleFormat;
  readonly colourSpace: ColourSpace;
  /** Storage codec of the tiles: `jpeg`, `deflate`, `lzw`, `none`, `webp`, `zstd`, ... */
  readonly compression: string;
  /** Per-channel sample range used for normalisation. */
  readonly minValues: readonly number[];
  readonly maxValues: readonly number[];
  readonly resolution?: PhysicalResolution;
  /** Textual metadata by iipsrv's names: title, creator, rights, description, date, ... */
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * Set when the image is a member of a FILENAME_PATTERN sequence: the horizontal and vertical
   * angles that exist (IIP `Horizontal-views`, `Vertical-views`). Absent for plain files.
   */
  readonly views?: ImageViews;
  /**
   * The source's embedded ICC profile, as stored. Samples are served as stored (never converted
   * through it, as iipsrv); the renderer embeds it in the output when MAX_ICC allows.
   */
  readonly icc?: Uint8Array;
  /**
   * Set when the file is an image stack: its members in file order. IIP `SDS=n` and the IIIF
   * delimiter select member n; the rest of this ImageInfo describes the member opened.
   */
  readonly stack?: readonly StackMember[];
}

/**
 * Decoded samples: interleaved, row-major, top-left first. 8 → Uint8, 16 → Uint16 (native
 * endianness), 32 → Float32 (float) samples. Decoders return it; protocols that report
 * sample values (IIP PFL, SPECTRA) format it.
 */
export interface RawImage {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly bitsPerSample: 8 | 16 | 32;
  readonly sampleFormat: 'uint' | 'float';
}
