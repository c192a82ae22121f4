// Decoded tiles of tiled TIFF levels, kept in RAM so that a region (CVT, IIIF x,y,w,h) pays for
// the JPEG (or Deflate, LZW, …) decoding only of the tiles no earlier region decoded. iipsrv
// keeps decoded tiles in its tile cache for the same reason; neighbouring and overlapping
// regions share most of their tiles.
// Tiles are cached as the blocks they were decoded in (the smallest tile-aligned rectangle
// holding a region's missing tiles, one libvips read), not cut into single tiles: cutting costs a
// copy of every row of every tile, and a region that was decoded as one block is served from it
// without any copy at all (a libvips extract over the cached samples). A tile index maps each
// tile to the newest block holding it; blocks leave by LRU (the process's decoded-samples budget,
// ../level-cache.ts decodedCache, IIPSRV_DECODED_CACHE_MB; 0 turns the cache off). A region
// missing tiles that another region is decoding at that moment waits for that decode (many
// viewers opening the same view decode it once).

import type { Rect } from '../../src/core/view.js';
import { copyRows } from '../copy-rows.js';
import { cropLevel, decodedCache, decodedCacheBytes, type DecodedLevel, type LevelCache } from '../level-cache.js';

/** A decoded tile-aligned rectangle of one level. */
export interface Block extends DecodedLevel {
  /** Top-left corner in the level's pixels (a tile corner). */
  readonly x: number;
  readonly y: number;
}

export { decodedCacheBytes as tileCacheBytes } from '../level-cache.js';

/** The shared cache holds other decoders' levels too; this module only reads its own keys. */
const blocks = decodedCache as LevelCache<DecodedLevel> as unknown as LevelCache<Block>;
let nextImage = 0;
let nextBlock = 0;

/** Empties the cache of every TIFF image (tests, SIGHUP). */
export function clearTileBlocks(): void {
  blocks.clear('tif');
}

/** What a region is made of: one block it lies in, or new samples assembled from several. */
export type RegionSamples =
  | { readonly block: Block; readonly assembled?: undefined }
  | { readonly block?: undefined; readonly assembled: Buffer; readonly channels: number };

/** A level's size and tiling. */
export interface LevelGrid {
  readonly level: number;
  readonly width: number;
  readonly height: number;
  readonly tileWidth: number;
  readonly tileHeight: number;
}

/** The tile blocks of one image (one decoder). */
export class TileBlocks {
  private readonly prefix = `tif${++nextImage}:`;
  /** `level:col:row` → key of the newest block holding that tile. */
  private readonly where = new Map<string, string>();
  /** Smallest tile area seen (bounds the tile index). */
  private tileArea = Infinity;
  /** `level:col:row` → the decode in flight that will hold that tile (concurrent regions share it). */
  private readonly pending = new Map<string, Promise<Block>>();

  /**
   * The samples of `rect` of a level: tiles found in blocks, the others decoded by `decode` in
   * one tile-aligned rectangle, which is cached. Samples from several blocks are assembled into
   * a buffer from `alloc`.
   */
  async region(
    g: LevelGrid,
    rect: Rect,
    decode: (r: Rect) => Promise<DecodedLevel>,
    alloc: (n: number) => Buffer = Buffer.allocUnsafe,
    waited = false,
  ): Promise<RegionSamples> {
    const { level, tileWidth: tw, tileHeight: th } = g;
    this.tileArea = Math.min(this.tileArea, tw * th);
    const c0 = Math.floor(rect.x / tw);
    const c1 = Math.floor((rect.x + rect.width - 1) / tw);
    const r0 = Math.floor(rect.y / th);
    const r1 = Math.floor((rect.y + rect.height - 1) / th);
    const across = c1 - c0 + 1;
    const found: Array<Block | undefined> = [];
    const waits = new Set<Promise<Block>>();
    let m = { c0: Infinity, c1: -1, r0: Infinity, r1: -1 };
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const tile = `${level}:${c}:${r}`;
        const key = this.where.get(tile);
        const block = key === undefined ? undefined : blocks.peek(key);
        if (key !== undefined && !block) this.where.delete(tile);
        found.push(block);
        if (block) continue;
        m = { c0: Math.min(m.c0, c), c1: Math.max(m.c1, c), r0: Math.min(m.r0, r), r1: Math.max(m.r1, r) };
        const inFlight = this.pending.get(tile);
        if (inFlight) waits.add(inFlight);
      }
    }
    // Tiles another region is decoding right now: wait for that decode, then look again (once).
    if (waits.size > 0 && !waited) {
      await Promise.allSettled(waits);
      return this.region(g, rect, decode, alloc, true);
    }
    if (m.c1 >= 0) {
      const x = m.c0 * tw;
      const y = m.r0 * th;
      const want = { x, y, width: Math.min((m.c1 + 1) * tw, g.width) - x, height: Math.min((m.r1 + 1) * th, g.height) - y };
      const job = decode(want).then((d) => {
        const b: Block = { data: d.data, width: d.width, height: d.height, channels: d.channels, bits: d.bits, x, y };
        this.remember(level, b, m.c0, m.c1, m.r0, m.r1);
        return b;
      });
      const tiles: string[] = [];
      for (let r = m.r0; r <= m.r1; r++) for (let c = m.c0; c <= m.c1; c++) tiles.push(`${level}:${c}:${r}`);
      for (const t of tiles) this.pending.set(t, job);
      let block: Block;
      try {
        block = await job;
      } finally {
        for (const t of tiles) if (this.pending.get(t) === job) this.pending.delete(t);
      }
      for (let r = m.r0; r <= m.r1; r++) {
        for (let c = m.c0; c <= m.c1; c++) if (r >= r0 && r <= r1 && c >= c0 && c <= c1) found[(r - r0) * across + (c - c0)] = block;
      }
    }
    const first = found[0]!;
    if (found.every((b) => b === first)) return { block: first };
    return { assembled: assemble(found, across, { c0, r0 }, rect, tw, th, alloc), channels: first.channels };
  }

  private remember(level: number, block: Block, c0: number, c1: number, r0: number, r1: number): void {
    const key = `${this.prefix}${++nextBlock}`;
    blocks.put(key, block);
    this.forgetStale();
    for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) this.where.set(`${level}:${c}:${r}`, key);
  }

  /** The samples of `rect` as a new buffer (the caller may change them). */
  async copy(g: LevelGrid, rect: Rect, decode: (r: Rect) => Promise<DecodedLevel>): Promise<{ data: Buffer; channels: number }> {
    const got = await this.region(g, rect, decode);
    if (got.assembled) return { data: got.assembled, channels: got.channels };
    const b = got.block;
    return { data: cropLevel(b, rect.x - b.x, rect.y - b.y, rect.width, rect.height), channels: b.channels };
  }

  /** Drops the tile index entries of evicted blocks once the index outgrows what the cache can hold. */
  private forgetStale(): void {
    const most = 4 * Math.ceil(decodedCacheBytes() / this.tileArea);
    if (this.where.size <= most) return;
    for (const [tile, key] of this.where) if (!blocks.has(key)) this.where.delete(tile);
  }

  /** Drops this image's blocks. */
  clear(): void {
    blocks.clear(this.prefix);
    this.where.clear();
    this.pending.clear();
  }
}

/**
 * Copies `rect` out of the blocks holding its tiles (row-major grid from tile c0, r0): one copy
 * per row and run of neighbouring tiles that share a block.
 */
function assemble(
  found: ReadonlyArray<Block | undefined>,
  across: number,
  at: { c0: number; r0: number },
  rect: Rect,
  tw: number,
  th: number,
  alloc: (n: number) => Buffer,
): Buffer {
  const ch = found[0]!.channels;
  const out = alloc(rect.width * rect.height * ch);
  const down = found.length / across;
  for (let j = 0; j < down; j++) {
    const ty0 = Math.max(rect.y, (at.r0 + j) * th);
    const ty1 = Math.min(rect.y + rect.height, (at.r0 + j + 1) * th);
    for (let i = 0; i < across;) {
      const b = found[j * across + i]!;
      let k = i + 1;
      while (k < across && found[j * across + k] === b) k++;
      const x0 = Math.max(rect.x, (at.c0 + i) * tw);
      const x1 = Math.min(rect.x + rect.width, (at.c0 + k) * tw);
      copyRows(
        out,
        ((ty0 - rect.y) * rect.width + (x0 - rect.x)) * ch,
        rect.width * ch,
        b.data,
        ((ty0 - b.y) * b.width + (x0 - b.x)) * ch,
        b.width * ch,
        (x1 - x0) * ch,
        ty1 - ty0,
      );
      i = k;
    }
  }
  return out;
}
