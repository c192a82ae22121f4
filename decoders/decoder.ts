// The decoder plug-in contract. A decoder module recognises its files by magic bytes and
// opens them into an ImageDecoder, which reads regions of any pyramid level as raw samples
// and, when it can, hands out a stored tile's encoded bytes for passthrough.

import type { ImageInfo, RawImage } from '../src/core/image-info.js';
import type { Sharp } from 'sharp';
import type { IndexStore } from '../src/jpeg2000/index-store.js';
import type { Rect } from '../src/core/view.js';

export type { ImageInfo, Level, RawImage } from '../src/core/image-info.js';

/** A stored tile that is already a complete file in an output format. */
export interface EncodedTile {
  readonly format: 'jpg' | 'webp';
  readonly data: Buffer;
}

/** Whether `rect` is a non-empty rectangle of whole pixels inside a `width`×`height` level. */
export function rectInLevel(rect: Rect, width: number, height: number): boolean {
  const { x, y, width: w, height: h } = rect;
  return [x, y, w, h].every(Number.isInteger) && x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= width && y + h <= height;
}

/** Per-read choices that only some codecs act on; every field is optional and others ignore it. */
export interface ReadOptions {
  /**
   * JPEG 2000 quality layers to decode (IIP `LYR`, RenderPlan.layers). Undefined or ≤ 0: the
   * decoder's default from OpenOptions.maxLayers. Capped by MAX_LAYERS when that is positive.
   */
  readonly layers?: number;
}

/** Server-wide settings handed to every `open` (from the configuration). */
export interface OpenOptions {
  /**
   * MAX_LAYERS (iipsrv): 0 = decode ceil(layers/2) unless a request asks for more; -1 = all
   * layers; n > 0 = at most n. Default 0.
   */
  readonly maxLayers?: number;
  /**
   * The server's JPEG 2000 packet indexes (persisted in JPIP_CACHE), shared with JPIP. Without
   * it, indexes are kept in a store per `indexDir` (undefined: memory only).
   */
  readonly indexStore?: IndexStore;
  readonly indexDir?: string;
  /**
   * Which member of an image stack to open (ImageInfo.stack; 0, the default, is the first).
   * A module without stacks ignores it; one with stacks answers NOT_FOUND beyond the last.
   */
  readonly page?: number;
}

export interface ImageDecoder {
  readonly info: ImageInfo;
  /**
   * Samples of `rect` (in the level's own pixel coordinates, already clipped to it) of pyramid
   * level `level` (0 = full resolution). Reads only the tiles that the rectangle touches. The
   * returned samples belong to the caller, which may change them: never hand out a buffer
   * that a cache keeps.
   * `options` is optional so that decoders written before it existed still satisfy the type.
   */
  readRegion(level: number, rect: Rect, options?: ReadOptions): Promise<RawImage>;
  /**
   * The stored bytes of one tile as a standalone file, or null when that tile cannot be passed
   * through (an edge tile, a codec or layout that needs decoding). With `wanted`, null without
   * reading anything when the tile is stored in another format. Optional capability.
   */
  readEncodedTile?(level: number, col: number, row: number, wanted?: EncodedTile['format']): Promise<EncodedTile | null>;
  /**
   * Optional fast path: a sharp pipeline yielding `rect` of `level` as 8-bit sRGB or grey
   * samples, for views that need no sample processing, so that the renderer can add resize,
   * rotation and encoding to the same libvips pipeline instead of copying raw samples out and
   * back in. Null when this image's samples need decoding by hand.
   */
  regionPipeline?(level: number, rect: Rect): RegionPipeline | null | Promise<RegionPipeline | null>;
  /** Frees file handles and native memory. */
  close(): Promise<void>;
}

/** A libvips pipeline over a decoder's samples (ImageDecoder.regionPipeline). */
export interface RegionPipeline {
  readonly image: Sharp;
  /**
   * Called once the pipeline has run (or failed): buffers it reads from may then be reused.
   * Absent when there is nothing to give back.
   */
  readonly release?: () => void;
}

export interface DecoderModule {
  readonly name: string;
  /** True when the first bytes of a file (at least 16 when the file has them) are this format. */
  sniff(head: Buffer): boolean;
  open(path: string, options?: OpenOptions): Promise<ImageDecoder>;
  /**
   * One line for the start-up log about how the module will work on this machine (e.g. that a
   * slower fallback is in use), or undefined when there is nothing to say. Optional.
   */
  notice?(): string | undefined;
}
