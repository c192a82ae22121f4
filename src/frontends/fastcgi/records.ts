// FastCGI 1.0 wire codec: record headers, name-value pairs and an incremental record parser.
// Pure (no sockets). Everything that reads peer bytes validates lengths and throws
// FastCgiProtocolError, so the connection layer can drop just the offending connection.

export const FCGI_VERSION_1 = 1;
export const FCGI_HEADER_LEN = 8;
export const FCGI_MAX_CONTENT = 65535;
/** Largest multiple of 8 that fits a record: full-size records then need no padding. */
export const FCGI_CHUNK = 65528;

export const RecordType = {
  BEGIN_REQUEST: 1,
  ABORT_REQUEST: 2,
  END_REQUEST: 3,
  PARAMS: 4,
  STDIN: 5,
  STDOUT: 6,
  STDERR: 7,
  DATA: 8,
  GET_VALUES: 9,
  GET_VALUES_RESULT: 10,
  UNKNOWN_TYPE: 11,
} as const;

export const Role = { RESPONDER: 1, AUTHORIZER: 2, FILTER: 3 } as const;

export const FCGI_KEEP_CONN = 1;

export const ProtocolStatus = {
  REQUEST_COMPLETE: 0,
  CANT_MPX_CONN: 1,
  OVERLOADED: 2,
  UNKNOWN_ROLE: 3,
} as const;

export class FastCgiProtocolError extends Error {
  override name = 'FastCgiProtocolError';
}

export interface RecordHeader {
  version: number;
  type: number;
  requestId: number;
  contentLength: number;
  paddingLength: number;
}

export interface FcgiRecord {
  type: number;
  requestId: number;
  content: Buffer;
}

const EMPTY = Buffer.alloc(0);

/** Padding that brings a record to a multiple of 8 bytes, as the spec recommends. */
export function paddingFor(contentLength: number): number {
  return (8 - (contentLength & 7)) & 7;
}

export function encodeHeader(h: RecordHeader): Buffer {
  const buf = Buffer.alloc(FCGI_HEADER_LEN);
  buf[0] = h.version;
  buf[1] = h.type;
  buf.writeUInt16BE(h.requestId, 2);
  buf.writeUInt16BE(h.contentLength, 4);
  buf[6] = h.paddingLength;
  return buf;
}

export function decodeHeader(buf: Buffer, offset = 0): RecordHeader {
  if (buf.length - offset < FCGI_HEADER_LEN) throw new FastCgiProtocolError('short record header');
  const h: RecordHeader = {
    version: buf[offset],
    type: buf[offset + 1],
    requestId: buf.readUInt16BE(offset + 2),
    contentLength: buf.readUInt16BE(offset + 4),
    paddingLength: buf[offset + 6],
  };
  if (h.version !== FCGI_VERSION_1) throw new FastCgiProtocolError(`bad version ${h.version}`);
  // These bodies have a fixed 8-byte layout; shorter ones would make us read past the content.
  const fixed = h.type === RecordType.BEGIN_REQUEST || h.type === RecordType.END_REQUEST || h.type === RecordType.UNKNOWN_TYPE;
  if (fixed && h.contentLength < 8) {
    throw new FastCgiProtocolError(`type ${h.type} with content length ${h.contentLength} < 8`);
  }
  return h;
}

/** Encodes several records into one buffer (one socket write). Content must be ≤ 65535 bytes. */
export function encodeRecords(records: readonly FcgiRecord[]): Buffer {
  let total = 0;
  for (const r of records) {
    if (r.content.length > FCGI_MAX_CONTENT) throw new RangeError('record content too long');
    total += FCGI_HEADER_LEN + r.content.length + paddingFor(r.content.length);
  }
  const out = Buffer.alloc(total);
  let pos = 0;
  for (const r of records) {
    const len = r.content.length;
    const pad = paddingFor(len);
    out[pos] = FCGI_VERSION_1;
    out[pos + 1] = r.type;
    out.writeUInt16BE(r.requestId, pos + 2);
    out.writeUInt16BE(len, pos + 4);
    out[pos + 6] = pad;
    r.content.copy(out, pos + FCGI_HEADER_LEN);
    pos += FCGI_HEADER_LEN + len + pad;
  }
  return out;
}

export function encodeRecord(type: number, requestId: number, content: Buffer = EMPTY): Buffer {
  return encodeRecords([{ type, requestId, content }]);
}

/** Splits a stream payload into records (views, no copy). Empty data gives no records. */
export function splitStream(type: number, requestId: number, data: Buffer): FcgiRecord[] {
  const out: FcgiRecord[] = [];
  for (let off = 0; off < data.length; off += FCGI_CHUNK) {
    out.push({ type, requestId, content: data.subarray(off, off + FCGI_CHUNK) });
  }
  return out;
}

/** A whole stream, terminated by the empty record that marks its end. */
export function encodeStream(type: number, requestId: number, data: Buffer): Buffer {
  return encodeRecords([...splitStream(type, requestId, data), { type, requestId, content: EMPTY }]);
}

export function endRequestRecord(requestId: number, appStatus: number, protocolStatus: number): FcgiRecord {
  const content = Buffer.alloc(8);
  content.writeUInt32BE(appStatus >>> 0, 0);
  content[4] = protocolStatus;
  return { type: RecordType.END_REQUEST, requestId, content };
}

export function unknownTypeRecord(type: number): FcgiRecord {
  const content = Buffer.alloc(8);
  content[0] = type;
  return { type: RecordType.UNKNOWN_TYPE, requestId: 0, content };
}

export function decodeBeginRequest(content: Buffer): { role: number; flags: number } {
  if (content.length < 8) throw new FastCgiProtocolError('BEGIN_REQUEST body shorter than 8 bytes');
  return { role: content.readUInt16BE(0), flags: content[2] };
}

/** Names and values are bytes on the wire; latin1 keeps them byte-for-byte (as node:http does). */
export function decodeNameValuePairs(buf: Buffer): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  let pos = 0;
  const readLength = (): number => {
    if (pos >= buf.length) throw new FastCgiProtocolError('name-value length overruns');
    if (buf[pos] < 0x80) return buf[pos++];
    if (pos + 4 > buf.length) throw new FastCgiProtocolError('name-value length overruns');
    const n = buf.readUInt32BE(pos) & 0x7fffffff;
    pos += 4;
    return n;
  };
  while (pos < buf.length) {
    const nameLen = readLength();
    const valueLen = readLength();
    if (nameLen + valueLen > buf.length - pos) {
      throw new FastCgiProtocolError('name-value pair overruns its record');
    }
    const name = buf.toString('latin1', pos, pos + nameLen);
    pos += nameLen;
    pairs.push([name, buf.toString('latin1', pos, pos + valueLen)]);
    pos += valueLen;
  }
  return pairs;
}

export function encodeNameValuePairs(pairs: Iterable<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  const lengthBytes = (n: number): Buffer => {
    if (n < 0x80) return Buffer.from([n]);
    const b = Buffer.alloc(4);
    b.writeUInt32BE((n | 0x80000000) >>> 0);
    return b;
  };
  for (const [name, value] of pairs) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(lengthBytes(n.length), lengthBytes(v.length), n, v);
  }
  return Buffer.concat(parts);
}

/**
 * Incremental parser: push chunks with any boundaries, get complete records back. Chunks are
 * kept in a list and joined once per record, so a peer trickling single bytes costs linear time.
 */
export class RecordParser {
  private chunks: Buffer[] = [];
  private head = 0;
  private buffered = 0;
  private header: RecordHeader | null = null;

  /** Throws FastCgiProtocolError on malformed input; the parser is unusable afterwards. */
  *push(chunk: Buffer): Generator<FcgiRecord> {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    for (;;) {
      if (!this.header) {
        if (this.buffered < FCGI_HEADER_LEN) return;
        this.header = decodeHeader(this.take(FCGI_HEADER_LEN));
      }
      const h = this.header;
      const need = h.contentLength + h.paddingLength;
      if (this.buffered < need) return;
      const body = this.take(need);
      this.header = null;
      yield { type: h.type, requestId: h.requestId, content: body.subarray(0, h.contentLength) };
    }
  }

  /** Bytes held that do not yet form a complete record. */
  get pending(): number {
    return this.buffered + (this.header ? FCGI_HEADER_LEN : 0);
  }

  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.chunks[this.head];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.head++;
      else this.chunks[this.head] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this.chunks[this.head];
        const k = Math.min(c.length, n - filled);
        c.copy(out, filled, 0, k);
        filled += k;
        if (k === c.length) this.head++;
        else this.chunks[this.head] = c.subarray(k);
      }
    }
    // Drop consumed chunks lazily (amortised O(1)); Array#shift could be O(n) per call.
    if (this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
    this.buffered -= n;
    return out;
  }
}
