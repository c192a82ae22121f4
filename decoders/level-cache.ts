// A byte-bounded LRU of whole decoded resolution levels, for decoders whose formats cannot
// decode one tile cheaply: a level is decoded whole once and cropped for each of its tiles.
// JPEG 2000 (a tiled codestream's low resolutions touch every tile-part; the WebAssembly
// fallback can only decode whole levels) and plain JPEG (no tiles at all) use it. Concurrent
// loads of one key share one decode.

export interface DecodedLevel {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly bits: 8 | 16;
}

export class LevelCache {
  private readonly map = new Map<string, DecodedLevel>();
  private readonly loading = new Map<string, Promise<DecodedLevel>>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get size(): number {
    return this.map.size;
  }

  async getOrLoad(key: string, load: () => Promise<DecodedLevel>): Promise<DecodedLevel> {
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

  private remember(key: string, level: DecodedLevel): void {
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
  for (let r = 0; r < h; r++) {
    const start = ((y + r) * level.width + x) * px;
    level.data.copy(out, r * rowBytes, start, start + rowBytes);
  }
  return out;
}
