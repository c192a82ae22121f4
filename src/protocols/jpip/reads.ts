// Reading the bodies of a JPIP response: data-bins are described as pieces (file ranges, or
// bytes made in memory such as placeholder boxes) and every piece of a response is read at once,
// ranges closer than a gap sharing one read. Codestreams written with small precincts have tens
// of thousands of packets of a few bytes in a window; one pread each would dominate the time.

import type { ByteSource } from '../../jpeg2000/source.js';

export type Piece = { readonly offset: number; readonly length: number } | { readonly bytes: Buffer };

export const pieceLength = (p: Piece): number => ('bytes' in p ? p.bytes.length : p.length);

/** Receives the pieces of a data-bin's bytes, in order. */
export interface PieceSink {
  file(offset: number, length: number): void;
  bytes(b: Buffer): void;
}

/** Feeds the pieces of bytes [from, to) of a data-bin made of file ranges [offset, length, ...]. */
export function rangePieces(pairs: readonly number[], from: number, to: number, sink: PieceSink): void {
  let pos = 0;
  for (let i = 0; i < pairs.length && pos < to; i += 2) {
    const len = pairs[i + 1];
    const a = Math.max(from, pos);
    const b = Math.min(to, pos + len);
    if (b > a) sink.file(pairs[i] + (a - pos), b - a);
    pos += len;
  }
}

/** Feeds the pieces of bytes [from, to) of a data-bin made of pieces. */
export function slicePieces(pieces: readonly Piece[], from: number, to: number, sink: PieceSink): void {
  let pos = 0;
  for (const p of pieces) {
    if (pos >= to) break;
    const len = pieceLength(p);
    const a = Math.max(from, pos);
    const b = Math.min(to, pos + len);
    if (b > a) {
      if ('bytes' in p) sink.bytes(p.bytes.subarray(a - pos, b - pos));
      else sink.file(p.offset + (a - pos), b - a);
    }
    pos += len;
  }
}

export interface ReadOptions {
  /** Ranges at most this far apart are read together (the bytes between are read and dropped). */
  readonly gap?: number;
  /** Largest single read. */
  readonly maxSpan?: number;
  /** Reads in flight at once. */
  readonly parallel?: number;
}

/**
 * File ranges to copy into one buffer, kept in typed arrays: a response can have tens of
 * thousands of them, and objects per range would cost more in garbage collection than the reads.
 */
export class Placements {
  private offsets: Float64Array = new Float64Array(1024);
  private lengths: Float64Array = new Float64Array(1024);
  private ats: Float64Array = new Float64Array(1024);
  count = 0;

  /** Bytes [offset, offset+length) of the file go to position `at` of the target. */
  push(offset: number, length: number, at: number): void {
    if (length <= 0) return;
    if (this.count === this.offsets.length) {
      const grow = (a: Float64Array): Float64Array => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.offsets = grow(this.offsets);
      this.lengths = grow(this.lengths);
      this.ats = grow(this.ats);
    }
    this.offsets[this.count] = offset;
    this.lengths[this.count] = length;
    this.ats[this.count] = at;
    this.count++;
  }

  /**
   * Reads every range into `target`, ranges closer than `gap` sharing one read. Returns false
   * when the file ends before some range does (the caller treats that as corruption).
   */
  async readInto(src: ByteSource, target: Buffer, options: ReadOptions = {}): Promise<boolean> {
    const gap = options.gap ?? 64 << 10;
    const maxSpan = options.maxSpan ?? 8 << 20;
    const parallel = options.parallel ?? 4;
    const order = new Uint32Array(this.count);
    let sorted = true;
    for (let i = 0; i < this.count; i++) {
      order[i] = i;
      if (i > 0 && this.offsets[i] < this.offsets[i - 1]) sorted = false;
    }
    if (!sorted) order.sort((a, b) => this.offsets[a] - this.offsets[b]);
    // Spans: [first, last) indices into `order`, and the file range they cover.
    const spans: Array<{ first: number; last: number; start: number; end: number }> = [];
    for (let k = 0; k < order.length; k++) {
      const i = order[k];
      const start = this.offsets[i];
      const end = start + this.lengths[i];
      const cur = spans[spans.length - 1];
      if (cur && start <= cur.end + gap && Math.max(cur.end, end) - cur.start <= maxSpan) {
        cur.end = Math.max(cur.end, end);
        cur.last = k + 1;
      } else spans.push({ first: k, last: k + 1, start, end });
    }
    let complete = true;
    for (let s = 0; s < spans.length; s += parallel) {
      await Promise.all(
        spans.slice(s, s + parallel).map(async (span) => {
          const data = await src.read(span.start, span.end - span.start);
          for (let k = span.first; k < span.last; k++) {
            const i = order[k];
            const from = this.offsets[i] - span.start;
            const to = from + this.lengths[i];
            if (to > data.length) complete = false;
            data.copy(target, this.ats[i], from, Math.min(data.length, to));
          }
        }),
      );
    }
    return complete;
  }
}
