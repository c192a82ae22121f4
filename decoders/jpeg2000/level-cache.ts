// A byte-bounded LRU of whole decoded resolution levels, shared by every JPEG 2000 image in the
// process. Small levels are decoded whole once and cropped for each tile: a tiled codestream's
// low resolutions touch every tile-part (OpenJPEG reads each one whole), so without this every
// low-resolution tile would cost as much as the whole level. The WebAssembly fallback, which
// can only decode whole levels, uses it for all levels. Concurrent loads of one key share one
// decode.

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

/** Bytes of decoded levels kept (IIPSRV_J2K_LEVEL_CACHE_MB overrides, default 256). */
export const levelCache = new LevelCache(Math.max(1, Number(process.env.IIPSRV_J2K_LEVEL_CACHE_MB) || 256) * 1024 * 1024);

/** Rows [y, y+h) and columns [x, x+w) of an interleaved image (a copy unless it is the whole). */
export function cropLevel(level: DecodedLevel, x: number, y: number, w: number, h: number): Buffer {
  const px = level.channels * (level.bits / 8);
  if (x === 0 && y === 0 && w === level.width && h === level.height) return level.data;
  const out = Buffer.allocUnsafe(w * h * px);
  const rowBytes = w * px;
  for (let r = 0; r < h; r++) {
    const start = ((y + r) * level.width + x) * px;
    level.data.copy(out, r * rowBytes, start, start + rowBytes);
  }
  return out;
}
