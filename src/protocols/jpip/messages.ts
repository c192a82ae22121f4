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

/** A message's place in its data-bin, as recorded by the writer. */
export interface Delivery {
  readonly cls: BinClass;
  readonly csn: number;
  readonly id: number;
  readonly offset: number;
  readonly length: number;
  readonly last: boolean;
}

/**
 * Collects the messages of one response. `budget` is the `len` limit (Infinity without one).
 * `room` tells how much of a body fits; `add` writes a message (cut by the caller to `room`).
 */
export class MessageWriter {
  private readonly chunks: Buffer[] = [];
  private prevClass = -1;
  private prevCsn = -1;
  /** Bytes of messages written (headers + bodies), the quantity `len` limits. */
  used = 0;
  readonly deliveries: Delivery[] = [];

  constructor(readonly budget: number) {}

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

  /** Appends one message. The first message of a response always carries Class and CSn. */
  add(cls: BinClass, csn: number, id: number, offset: number, body: Buffer, last: boolean): void {
    const withClass = cls !== this.prevClass || csn !== this.prevCsn;
    const withCsn = csn !== this.prevCsn;
    const indicator = withCsn ? 3 : withClass ? 2 : 1;
    const head = Buffer.alloc(this.headerLength(cls, csn, id, offset, body.length));
    let p = writeBinId(head, 0, id, indicator, last);
    if (withClass) p = writeVbas(head, p, cls);
    if (withCsn) p = writeVbas(head, p, csn);
    p = writeVbas(head, p, offset);
    writeVbas(head, p, body.length);
    this.chunks.push(head);
    if (body.length > 0) this.chunks.push(body);
    this.used += head.length + body.length;
    this.prevClass = cls;
    this.prevCsn = csn;
    this.deliveries.push({ cls, csn, id, offset, length: body.length, last });
  }

  get empty(): boolean {
    return this.deliveries.length === 0;
  }

  /** The response body: every message, then the EOR message with `reason` and an empty body. */
  finish(reason: number): Buffer {
    return Buffer.concat([...this.chunks, Buffer.from([0, reason, 0])]);
  }
}
