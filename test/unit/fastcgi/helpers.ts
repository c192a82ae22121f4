// Test-side FastCGI client: builds records by hand (independently of records.ts, so the codec is
// not tested against itself) and collects what the server sends back.

import net from 'node:net';

export const T = {
  BEGIN: 1,
  ABORT: 2,
  END: 3,
  PARAMS: 4,
  STDIN: 5,
  STDOUT: 6,
  STDERR: 7,
  DATA: 8,
  GET_VALUES: 9,
  GET_VALUES_RESULT: 10,
  UNKNOWN_TYPE: 11,
} as const;

export interface Rec {
  type: number;
  id: number;
  content: Buffer;
}

export function rec(type: number, id: number, content: Buffer = Buffer.alloc(0), pad = 0): Buffer {
  const h = Buffer.alloc(8);
  h[0] = 1;
  h[1] = type;
  h.writeUInt16BE(id, 2);
  h.writeUInt16BE(content.length, 4);
  h[6] = pad;
  return Buffer.concat([h, content, Buffer.alloc(pad)]);
}

export function nv(pairs: Array<[string, string]>): Buffer {
  const len = (n: number) => {
    if (n < 128) return Buffer.from([n]);
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n + 0x80000000);
    return b;
  };
  return Buffer.concat(pairs.flatMap(([k, v]) => [len(Buffer.byteLength(k)), len(Buffer.byteLength(v)), Buffer.from(k), Buffer.from(v)]));
}

export function begin(id: number, keepConn: boolean, role = 1): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt16BE(role, 0);
  body[2] = keepConn ? 1 : 0;
  return rec(T.BEGIN, id, body);
}

/** A stream's records: data cut into pieces of at most `chunk` bytes, then the empty record. */
export function streamRecs(type: number, id: number, data: Buffer, chunk = 65535): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunk) out.push(rec(type, id, data.subarray(i, i + chunk)));
  out.push(rec(type, id));
  return out;
}

/** A complete request: BEGIN, PARAMS records, empty PARAMS, STDIN records, empty STDIN. */
export function request(
  id: number,
  params: Array<[string, string]>,
  opts: { keepConn?: boolean; body?: Buffer; chunk?: number } = {},
): Buffer {
  return Buffer.concat([
    begin(id, opts.keepConn ?? false),
    ...streamRecs(T.PARAMS, id, nv(params), opts.chunk),
    ...streamRecs(T.STDIN, id, opts.body ?? Buffer.alloc(0), opts.chunk),
  ]);
}

export function parseAll(buf: Buffer): { records: Rec[]; rest: number } {
  const records: Rec[] = [];
  let pos = 0;
  while (buf.length - pos >= 8) {
    const len = buf.readUInt16BE(pos + 4);
    const total = 8 + len + buf[pos + 6];
    if (buf.length - pos < total) break;
    records.push({
      type: buf[pos + 1],
      id: buf.readUInt16BE(pos + 2),
      content: buf.subarray(pos + 8, pos + 8 + len),
    });
    pos += total;
  }
  return { records, rest: buf.length - pos };
}

export function stdoutOf(records: Rec[], id: number): Buffer {
  return Buffer.concat(records.filter((r) => r.type === T.STDOUT && r.id === id).map((r) => r.content));
}

export function endOf(records: Rec[], id: number): { appStatus: number; protocolStatus: number } | undefined {
  const r = records.find((x) => x.type === T.END && x.id === id);
  return r && { appStatus: r.content.readUInt32BE(0), protocolStatus: r.content[4] };
}

/** Splits a CGI response into status line, headers and body. */
export function cgi(out: Buffer): { status: string; headers: string[]; body: Buffer } {
  const sep = out.indexOf('\r\n\r\n');
  const lines = out.subarray(0, sep).toString('latin1').split('\r\n');
  return { status: lines[0], headers: lines.slice(1), body: out.subarray(sep + 4) };
}

export class Client {
  readonly socket: net.Socket;
  /** Records received so far, parsed as data arrives (a 40 MB answer must not be re-parsed). */
  readonly records: Rec[] = [];
  private rest: Buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  readonly closed: Promise<void>;
  ended = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      const buf = this.rest.length ? Buffer.concat([this.rest, c]) : c;
      const { records, rest } = parseAll(buf);
      for (const r of records) this.records.push({ ...r, content: Buffer.from(r.content) });
      this.rest = Buffer.from(buf.subarray(buf.length - rest));
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
  }

  /** A TCP port on 127.0.0.1, or a UNIX socket path. */
  static connect(to: number | string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const where = typeof to === 'number' ? { host: '127.0.0.1', port: to } : { path: to };
      const s = net.connect(where, () => resolve(new Client(s)));
      s.once('error', reject);
    });
  }

  send(buf: Buffer): void {
    this.socket.write(buf);
  }

  /** Resolves once the records received satisfy `pred`; rejects on close or after timeoutMs. */
  async until(pred: (records: Rec[]) => boolean, timeoutMs = 10_000): Promise<Rec[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const records = this.records;
      if (pred(records)) return records;
      if (this.ended) throw new Error('connection ended before the expected records arrived');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for records');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  untilEnd(id: number, timeoutMs?: number): Promise<Rec[]> {
    return this.until((rs) => rs.some((r) => r.type === T.END && r.id === id), timeoutMs);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** mulberry32: small fixed-seed PRNG so the fuzz run is reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
