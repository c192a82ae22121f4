// A byte-bounded LRU of decoded samples, and the one instance every decoder of the process
// shares (`decodedCache`, IIPSRV_DECODED_CACHE_MB, default 256): whole resolution levels for
// decoders whose formats cannot decode one tile cheaply (JPEG 2000: a tiled codestream's low
// resolutions touch every tile-part, and the WebAssembly fallback can only decode whole levels;
// plain JPEG, which has no tiles), decoded once and cropped for each tile; and decoded TIFF tile
// blocks (./tiff/tile-blocks.ts). Keys start with the decoder instance's own prefix. Concurrent
// loads of one key share one decode.

import { ByteLru } from '../src/cache/byte-lru.js';
import { copyRows } from './copy-rows.js';

export interface DecodedLevel {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly bits: 8 | 16;
}

export class LevelCache<T extends DecodedLevel = DecodedLevel> {
  private readonly lru: ByteLru<T>;
  private readonly loading = new Map<string, Promise<T>>();

  constructor(maxBytes: number) {
    this.lru = new ByteLru<T>(maxBytes, (_k, level) => level.data.length);
  }

  get size(): number {
    return this.lru.size;
  }

  /** Whether a level of this many bytes would be kept (else decoding it whole is wasted). */
  admits(bytes: number): boolean {
    return this.lru.admits(bytes);
  }

  async getOrLoad(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.lru.get(key);
    if (hit) return hit;
    const pending = this.loading.get(key);
    if (pending) return pending;
    const p = load().then((level) => {
      this.lru.set(key, level);
      return level;
    });
    this.loading.set(key, p);
    try {
      return await p;
    } finally {
      this.loading.delete(key);
    }
  }

  /** The entry of `key` (now the most recently used), if cached. */
  peek(key: string): T | undefined {
    return this.lru.get(key);
  }

  /** Whether `key` is cached (without making it recently used). */
  has(key: string): boolean {
    return this.lru.has(key);
  }

  /** Caches `level` under `key` (callers that decode several entries in one go). */
  put(key: string, level: T): void {
    this.lru.set(key, level);
  }

  /** Drops every level whose key starts with `prefix` (an image closed), or all. */
  clear(prefix = ''): void {
    this.lru.clear(prefix);
  }
}

/**
 * Rows [y, y+h) and columns [x, x+w) of an interleaved image, always as a new buffer: samples
 * handed out by readRegion belong to the caller, which may draw on them (watermarks, bitonal
 * re-thresholding), and must never be the cached level itself.
 */
export function cropLevel(level: DecodedLevel, x: number, y: number, w: number, h: number): Buffer {
  const px = level.channels * (level.bits / 8);
  const rowBytes = w * px;
  if (x === 0 && w === level.width) {
    return Buffer.from(level.data.subarray(y * rowBytes, (y + h) * rowBytes));
  }
  const out = Buffer.allocUnsafe(h * rowBytes);
  copyRows(out, 0, rowBytes, level.data, (y * level.width + x) * px, level.width * px, rowBytes, h);
  return out;
}

/** The shared budget for decoded samples, in bytes (IIPSRV_DECODED_CACHE_MB; 0 keeps none). */
export function decodedCacheBytes(): number {
  const v = Number(process.env.IIPSRV_DECODED_CACHE_MB ?? NaN);
  return (Number.isFinite(v) && v >= 0 ? v : 256) * 1024 * 1024;
}

/** Decoded samples of every image of the process, in one budget. */
export const decodedCache = new LevelCache(decodedCacheBytes());
