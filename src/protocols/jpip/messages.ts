// JPP-stream and JPT-stream messages (ISO/IEC 15444-9 Annex A): VBAS numbers, message headers
// with Bin-ID, Class and CSn (the first message of every response in full form, later ones
// inheriting unchanged values), the `len` byte budget (headers and bodies count, the EOR does
// not; a message is cut to fill the budget exactly) and the closing EOR message.

/** Data-bin classes (A.2.2). Extended classes 1 and 5 are never sent (clients choke on Aux). */
export const BIN_CLASS = { PRECINCT: 0, TILE_HEADER: 2, TILE: 4, MAIN_HEADER: 6, METADATA: 8 } as const;
export type BinClass = (typeof BIN_CLASS)[keyof typeof BIN_CLASS];

/** EOR reason codes (D.3). */
export const EOR = {
  IMAGE_DONE: 1,
  WINDOW_DONE: 2,
  WINDOW_CHANGE: 3,
  BYTE_LIMIT: 4,
  QUALITY_LIMIT: 5,
  SESSION_LIMIT: 6,
  RESPONSE_LIMIT: 7,
  UNSPECIFIED: 0xff,
} as const;

/** Bytes of the VBAS coding of a non-negative integer. */
export function vbasLength(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Writes `v` as VBAS at out[pos]; returns the position after it. */
export function writeVbas(out: Buffer, pos: number, v: number): number {
  const n = vbasLength(v);
  for (let i = n - 1; i >= 0; i--) {
    out[pos + i] = (v % 128) | (i === n - 1 ? 0 : 0x80);
    v = Math.floor(v / 128);
  }
  return pos + n;
}

export function vbas(v: number): Buffer {
  const b = Buffer.alloc(vbasLength(v));
  writeVbas(b, 0, v);
  return b;
}

/** Bytes of a Bin-ID: 4 id bits in the first byte, 7 in each extension byte. */
function binIdLength(id: number): number {
  let n = 1;
  let cap = 16;
  while (id >= cap) {
    cap *= 128;
    n++;
  }
  return n;
}

function writeBinId(out: Buffer, pos: number, id: number, indicator: number, last: boolean): number {
  const n = binIdLength(id);
  let v = id;
  for (let i = n - 1; i >= 1; i--) {
    out[pos + i] = (v % 128) | (i === n - 1 ? 0 : 0x80);
    v = Math.floor(v / 128);
  }
  out[pos] = (n > 1 ? 0x80 : 0) | (indicator << 5) | (last ? 0x10 : 0) | (v & 0x0f);
  return pos + n;
}

/**
 * Collects the messages of one response into one growing buffer. `budget` is the `len` limit
 * (Infinity without one). `room` tells how much of a body fits; `add` writes a message (cut by
 * the caller to `room`). A body may be left to be filled later: `add` with a length returns the
 * body's position in `buffer`, so that the caller can read every body of the response from the
 * file at once, straight into place.
 */
export class MessageWriter {
  private out: Buffer;
  private prevClass = -1;
  private prevCsn = -1;
  /** Bytes of messages written (headers + bodies), the quantity `len` limits. */
  used = 0;
  /** Messages written. */
  count = 0;

  constructor(readonly budget: number) {
    this.out = Buffer.allocUnsafe(Math.max(64, Math.min(budget, 1 << 16)));
  }

  /** The bytes written so far (bodies announced by length are filled in place). */
  get buffer(): Buffer {
    return this.out;
  }

  private headerLength(cls: number, csn: number, id: number, offset: number, length: number): number {
    let n = binIdLength(id) + vbasLength(offset) + vbasLength(length);
    if (cls !== this.prevClass || csn !== this.prevCsn) n += vbasLength(cls);
    if (csn !== this.prevCsn) n += vbasLength(csn);
    return n;
  }

  /**
   * How many body bytes of a message of at most `length` bytes fit in the budget: `length` when
   * all of it does, fewer when it must be cut, -1 when not even the header and one byte (or, for
   * an empty message, the header) fit.
   */
  room(cls: BinClass, csn: number, id: number, offset: number, length: number): number {
    const left = this.budget - this.used;
    if (this.headerLength(cls, csn, id, offset, length) + length <= left) return length;
    if (length === 0) return -1;
    // The header shrinks with the length field; find the largest body that fits.
    let n = Math.min(length - 1, left);
    while (n > 0 && this.headerLength(cls, csn, id, offset, n) + n > left) n--;
    return n > 0 ? n : -1;
  }

  private reserve(n: number): void {
    if (this.used + n + 3 <= this.out.length) return;
    let size = this.out.length * 2;
    while (size < this.used + n + 3) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.out.copy(bigger, 0, 0, this.used);
    this.out = bigger;
  }

  /**
   * Appends one message; the first of a response always carries Class and CSn. `body` is the
   * body, or its length when the caller fills it in place later; returns the body's position.
   */
  add(cls: BinClass, csn: number, id: number, offset: number, body: Buffer | number, last: boolean): number {
    const length = typeof body === 'number' ? body : body.length;
    const withClass = cls !== this.prevClass || csn !== this.prevCsn;
    const withCsn = csn !== this.prevCsn;
    const indicator = withCsn ? 3 : withClass ? 2 : 1;
    const headLength = this.headerLength(cls, csn, id, offset, length);
    this.reserve(headLength + length);
    let p = writeBinId(this.out, this.used, id, indicator, last);
    if (withClass) p = writeVbas(this.out, p, cls);
    if (withCsn) p = writeVbas(this.out, p, csn);
    p = writeVbas(this.out, p, offset);
    p = writeVbas(this.out, p, length);
    if (typeof body !== 'number') body.copy(this.out, p);
    this.used = p + length;
    this.count++;
    this.prevClass = cls;
    this.prevCsn = csn;
    return p;
  }

  get empty(): boolean {
    return this.count === 0;
  }

  /** The response body: every message, then the EOR message with `reason` and an empty body. */
  finish(reason: number): Buffer {
    this.reserve(0);
    this.out[this.used] = 0;
    this.out[this.used + 1] = reason;
    this.out[this.used + 2] = 0;
    return this.out.subarray(0, this.used + 3);
  }
}
