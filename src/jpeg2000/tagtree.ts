// Packet-header primitives of JPEG 2000 tier-2 (ISO/IEC 15444-1 B.10): the bit reader with
// the 0xFF bit-stuffing rule and the tag tree decoder. Used by the packet-header parser
// (./packets.ts) that finds packet lengths in codestreams without PLT markers. No I/O.

/** Thrown when a packet header runs past the bytes it was given (the caller may retry with more). */
export class HeaderOverrun extends Error {
  constructor() {
    super('packet header runs past the available bytes');
    this.name = 'HeaderOverrun';
  }
}

/**
 * Reads packet-header bits MSB first. After a 0xFF byte the next byte carries only 7 bits (its
 * MSB is a stuffed 0), so that no marker code can appear inside a header (B.10.1).
 */
export class PacketBitReader {
  /** Next byte to load. */
  pos: number;
  private cur = 0;
  private left = 0;
  private lastWasFF = false;

  constructor(
    private readonly buf: Uint8Array,
    start: number,
    private readonly end: number = buf.length,
  ) {
    this.pos = start;
  }

  bit(): number {
    if (this.left === 0) {
      if (this.pos >= this.end) throw new HeaderOverrun();
      const b = this.buf[this.pos++];
      this.left = this.lastWasFF ? 7 : 8;
      this.lastWasFF = b === 0xff;
      this.cur = b;
    }
    this.left--;
    return (this.cur >> this.left) & 1;
  }

  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.bit();
    return v;
  }

  /**
   * Ends the header at a byte boundary. A header whose last byte is 0xFF is followed by one
   * more byte (the stuffed bit's byte), which belongs to the header too.
   */
  align(): void {
    this.left = 0;
    if (this.lastWasFF) {
      if (this.pos >= this.end) throw new HeaderOverrun();
      this.pos++;
      this.lastWasFF = false;
    }
  }
}

const UNKNOWN = 0x7fffffff;

/**
 * A tag tree over a w×h grid of leaves (B.10.2): each node holds the minimum of its children,
 * coded incrementally against growing thresholds. The state persists across the layers of a
 * precinct, which is why one tree lives as long as its precinct's parser.
 */
export class TagTree {
  private constructor(
    /** Level 0 is the leaves; the last level is the 1×1 root. */
    private readonly widths: readonly number[],
    private readonly values: Int32Array[],
    private readonly lows: Int32Array[],
  ) {}

  static create(w: number, h: number): TagTree {
    if (w <= 0 || h <= 0) throw new RangeError(`tag tree of ${w}×${h} leaves`);
    const widths: number[] = [];
    const values: Int32Array[] = [];
    const lows: Int32Array[] = [];
    for (;;) {
      widths.push(w);
      values.push(new Int32Array(w * h).fill(UNKNOWN));
      lows.push(new Int32Array(w * h));
      if (w * h <= 1) break;
      w = Math.ceil(w / 2);
      h = Math.ceil(h / 2);
    }
    return new TagTree(widths, values, lows);
  }

  /**
   * Reads bits until it is known whether leaf (x, y) is below `threshold`; returns that. The
   * leaf's value becomes known once this returns true.
   */
  decode(r: PacketBitReader, x: number, y: number, threshold: number): boolean {
    const n = this.widths.length;
    const idx = new Array<number>(n);
    for (let k = 0; k < n; k++) {
      idx[k] = x + y * this.widths[k];
      x >>= 1;
      y >>= 1;
    }
    let lo = 0;
    for (let k = n - 1; k >= 0; k--) {
      const i = idx[k];
      const value = this.values[k];
      const low = this.lows[k];
      if (lo > low[i]) low[i] = lo;
      else lo = low[i];
      while (lo < threshold && lo < value[i]) {
        if (r.bit()) value[i] = lo;
        else lo++;
      }
      low[i] = lo;
    }
    return this.values[0][idx[0]] < threshold;
  }

  /** The decoded value of a leaf (only meaningful once `decode` returned true for it). */
  value(x: number, y: number): number {
    return this.values[0][x + y * this.widths[0]];
  }

  /** A deep copy, so that a parse that ran out of bytes can be retried from the same state. */
  clone(): TagTree {
    return new TagTree(
      this.widths,
      this.values.map((v) => v.slice()),
      this.lows.map((v) => v.slice()),
    );
  }
}
