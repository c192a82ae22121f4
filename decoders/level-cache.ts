// A byte-bounded LRU of decoded samples, and the one instance every decoder of the process
// shares (`decodedCache`, IIPSRV_DECODED_CACHE_MB, default 256): whole resolution levels for
// decoders whose formats cannot decode one tile cheaply (JPEG 2000: a tiled codestream's low
// resolutions touch every tile-part, and the WebAssembly fallback can only decode whole levels;
// plain JPEG, which has no tiles), decoded once and cropped for each tile; and decoded TIFF tile
// blocks (./tiff/tile-blocks.ts). Keys start with the decoder instance's own prefix. Concurrent
// loads of one key share one decode.

import { copyRows } from './copy-rows.js';

export interface DecodedLevel {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly bits: 8 | 16;
}

export class LevelCache<T extends DecodedLevel = DecodedLevel> {
  private readonly map = new Map<string, T>();
  private readonly loading = new Map<string, Promise<T>>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get size(): number {
    return this.map.size;
  }

  async getOrLoad(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.map.get(key);
    if (hit) {
      this.map.delete(key);
      this.map.set(key, hit);
      return hit;
    }
    const pending = this.loading.get(key);
    if (pending) return pending;
    const p = load().then((level) => {
      this.remember(key, level);
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
    const hit = this.map.get(key);
    if (hit) {
      this.map.delete(key);
      this.map.set(key, hit);
    }
    return hit;
  }

  /** Whether `key` is cached (without making it recently used). */
  has(key: string): boolean {
    return this.map.has(key);
  }

  /** Caches `level` under `key` (callers that decode several entries in one go). */
  put(key: string, level: T): void {
    const old = this.map.get(key);
    if (old) {
      this.map.delete(key);
      this.bytes -= old.data.length;
    }
    this.remember(key, level);
  }

  private remember(key: string, level: T): void {
    const n = level.data.length;
    if (n > this.maxBytes / 4) return; // one huge level must not flush everything else
    this.map.set(key, level);
    this.bytes += n;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= v.data.length;
    }
  }

  /** Drops every level whose key starts with `prefix` (an image closed), or all. */
  clear(prefix = ''): void {
    for (const [k, v] of this.map) {
      if (!k.startsWith(prefix)) continue;
      this.map.delete(k);
      this.bytes -= v.data.length;
    }
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
