// One FastCGI transport connection: demultiplexes records into requests, runs the handler,
// writes responses with back-pressure and owns the connection's lifetime (KEEP_CONN, half-close,
// protocol errors). Failures stay inside this connection: nothing here throws to the caller.

import type { Socket } from 'node:net';
import { LOG } from '../../log.js';
import { STATUS_TEXT, type RequestHandler, type ServerRequest, type ServerResponse } from '../../handler-types.js';
import {
  FCGI_CHUNK,
  FCGI_KEEP_CONN,
  FastCgiProtocolError,
  ProtocolStatus,
  RecordParser,
  RecordType,
  Role,
  decodeBeginRequest,
  decodeNameValuePairs,
  encodeNameValuePairs,
  encodeRecords,
  endRequestRecord,
  splitStream,
  unknownTypeRecord,
  type FcgiRecord,
} from './records.js';

/** Where the front end reports (levels as ../../log.ts LOG: shown when VERBOSITY >= level). */
export type Logger = (level: number, msg: string) => void;

export interface ConnectionOptions {
  logger?: Logger;
  /** Advertised through FCGI_GET_VALUES. */
  maxConns: number;
  /** Concurrent requests allowed on one connection; more get FCGI_OVERLOADED. */
  maxReqs: number;
  maxBodyBytes: number;
  maxParamsBytes: number;
}

interface PendingRequest {
  id: number;
  keepConn: boolean;
  params: Buffer[];
  paramsBytes: number;
  pairs: Array<[string, string]> | null;
  stdin: Buffer[];
  stdinBytes: number;
  stdinDone: boolean;
  started: boolean;
  /** END_REQUEST queued (answered, aborted or refused): a late handler result is dropped. */
  ended: boolean;
}

/** Records per socket write for large bodies: bounds memory to ~4 MiB per slice. */
const SLICE_RECORDS = 64;
/** Pause reading while this many writes are queued, so a peer that never reads can't grow them. */
const MAX_QUEUED_WRITES = 64;
/** After our FIN, how long a silent half-open peer may keep the socket. */
const LINGER_MS = 5000;
const EMPTY = Buffer.alloc(0);

export function toServerRequest(params: ReadonlyArray<readonly [string, string]>, body: Buffer): ServerRequest {
  const p = new Map(params);
  const headers: Record<string, string> = {};
  for (const [name, value] of params) {
    if (name.startsWith('HTTP_')) headers[name.slice(5).toLowerCase().replace(/_/g, '-')] = value;
  }
  // nginx always passes these, empty for requests without a body.
  if (p.get('CONTENT_TYPE')) headers['content-type'] = p.get('CONTENT_TYPE')!;
  if (p.get('CONTENT_LENGTH')) headers['content-length'] = p.get('CONTENT_LENGTH')!;
  const query = p.get('QUERY_STRING') ?? '';
  const requestUri = p.get('REQUEST_URI') ?? `${p.get('SCRIPT_NAME') ?? ''}${p.get('PATH_INFO') ?? ''}${query ? `?${query}` : ''}`;
  return {
    method: (p.get('REQUEST_METHOD') || 'GET').toUpperCase(),
    query,
    requestUri,
    headers,
    https: /^(on|1)$/i.test(p.get('HTTPS') ?? ''),
    body,
    remoteAddress: p.get('REMOTE_ADDR'),
  };
}

/** CGI response head. CR/LF are blanked so a header value can never inject lines. */
export function responseHead(res: ServerResponse): Buffer {
  const clean = (s: string) => String(s).replace(/[\r\n]/g, ' ');
  let head = `Status: ${res.status} ${STATUS_TEXT[res.status] ?? 'Unknown'}\r\n`;
  for (const [name, value] of res.headers) head += `${clean(name)}: ${clean(value)}\r\n`;
  return Buffer.from(`${head}\r\n`, 'latin1');
}

/** STDOUT records + empty STDOUT + END_REQUEST, produced lazily in write-sized slices. */
function* responseSlices(id: number, head: Buffer, body: Buffer): Generator<Buffer> {
  // Small responses go out as one record pair in one write; large bodies are never copied whole.
  const parts = head.length + body.length <= FCGI_CHUNK ? [Buffer.concat([head, body])] : [head, body];
  let batch: FcgiRecord[] = [];
  for (const part of parts) {
    for (const rec of splitStream(RecordType.STDOUT, id, part)) {
      batch.push(rec);
      if (batch.length === SLICE_RECORDS) {
        yield encodeRecords(batch);
        batch = [];
      }
    }
  }
  batch.push({ type: RecordType.STDOUT, requestId: id, content: EMPTY });
  batch.push(endRequestRecord(id, 0, ProtocolStatus.REQUEST_COMPLETE));
  yield encodeRecords(batch);
}

/** [CGI head, body] for the few answers this layer makes itself. */
function textReply(status: number, text: string): [Buffer, Buffer] {
  const body = Buffer.from(`${text}\n`);
  const headers: Array<[string, string]> = [
    ['Content-Type', 'text/plain'],
    ['Content-Length', String(body.length)],
  ];
  return [responseHead({ status, headers, body }), body];
}

/** Never throws, whatever a handler chose to throw. */
function describe(err: unknown): string {
  try {
    return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  } catch {
    return 'unprintable error';
  }
}

export class FastCgiConnection {
  private readonly parser = new RecordParser();
  private readonly requests = new Map<number, PendingRequest>();
  private writeChain: Promise<void> = Promise.resolve();
  private queuedWrites = 0;
  private closeWhenIdle = false;
  private paused = false;
  private dead = false;
  /** Read once: Node forgets remoteAddress when the socket is destroyed. */
  private readonly peer: string;

  constructor(
    private readonly socket: Socket,
    private readonly handler: RequestHandler,
    private readonly options: ConnectionOptions,
  ) {
    this.peer = socket.remoteAddress ?? 'local';
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onPeerEnd());
    socket.on('error', (err) => this.log(LOG.DEBUG, `socket error: ${describe(err)}`));
    socket.on('close', () => {
      this.dead = true;
    });
  }

  /** Finish what is in flight, then close (server shutdown). */
  shutdown(): void {
    this.closeWhenIdle = true;
    this.maybeClose();
  }

  destroy(): void {
    this.dead = true;
    this.socket.destroy();
  }

  private log(level: number, msg: string): void {
    try {
      this.options.logger?.(level, `fastcgi ${this.peer}: ${msg}`);
    } catch {
      // A broken logger must not take the connection down.
    }
  }

  private onData(chunk: Buffer): void {
    // Once we have sent FIN nothing more can be answered; ignore what still arrives.
    if (this.dead || !this.socket.writable) return;
    try {
      for (const rec of this.parser.push(chunk)) {
        this.onRecord(rec);
        if (this.dead) return;
      }
    } catch (err) {
      const level = err instanceof FastCgiProtocolError ? LOG.DETAIL : LOG.ERROR;
      this.log(level, `closing connection: ${describe(err)}`);
      this.destroy();
    }
  }

  /** The peer sent FIN: requests still waiting for input can never complete. */
  private onPeerEnd(): void {
    for (const [id, r] of this.requests) if (!r.started) this.requests.delete(id);
    this.closeWhenIdle = true;
    this.maybeClose();
  }

  private onRecord(rec: FcgiRecord): void {
    const { type, requestId: id, content } = rec;
    if (type === RecordType.GET_VALUES) {
      if (id !== 0) throw new FastCgiProtocolError('GET_VALUES with a request id');
      return this.onGetValues(content);
    }
    const isApp =
      type === RecordType.BEGIN_REQUEST ||
      type === RecordType.ABORT_REQUEST ||
      type === RecordType.PARAMS ||
      type === RecordType.STDIN ||
      type === RecordType.DATA;
    if (!isApp) return this.send([encodeRecords([unknownTypeRecord(type)])]);
    if (id === 0) throw new FastCgiProtocolError(`record type ${type} with request id 0`);
    if (type === RecordType.BEGIN_REQUEST) return this.onBegin(id, content);
    // The spec says records for inactive ids are ignored: they race with our END_REQUEST.
    const r = this.requests.get(id);
    if (!r) return;
    if (type === RecordType.PARAMS) this.onParams(r, content);
    else if (type === RecordType.STDIN) this.onStdin(r, content);
    else if (type === RecordType.ABORT_REQUEST) this.end(r, null);
    // DATA belongs to the FILTER role, which is refused at BEGIN_REQUEST.
  }

  private onBegin(id: number, content: Buffer): void {
    if (this.requests.has(id)) throw new FastCgiProtocolError(`request id ${id} already active`);
    const { role, flags } = decodeBeginRequest(content);
    const keepConn = (flags & FCGI_KEEP_CONN) !== 0;
    let refusal: number | null = null;
    if (role !== Role.RESPONDER) refusal = ProtocolStatus.UNKNOWN_ROLE;
    else if (this.requests.size >= this.options.maxReqs) refusal = ProtocolStatus.OVERLOADED;
    if (refusal !== null) {
      if (!keepConn) this.closeWhenIdle = true;
      this.send([encodeRecords([endRequestRecord(id, 0, refusal)])]);
      return;
    }
    this.requests.set(id, {
      id,
      keepConn,
      params: [],
      paramsBytes: 0,
      pairs: null,
      stdin: [],
      stdinBytes: 0,
      stdinDone: false,
      started: false,
      ended: false,
    });
  }

  private onParams(r: PendingRequest, content: Buffer): void {
    if (r.pairs) throw new FastCgiProtocolError(`PARAMS after the end of params (id ${r.id})`);
    if (content.length > 0) {
      r.paramsBytes += content.length;
      if (r.paramsBytes > this.options.maxParamsBytes) {
        throw new FastCgiProtocolError(`params larger than ${this.options.maxParamsBytes} bytes`);
      }
      r.params.push(content);
      return;
    }
    r.pairs = decodeNameValuePairs(Buffer.concat(r.params));
    r.params = [];
    this.maybeStart(r);
  }

  private onStdin(r: PendingRequest, content: Buffer): void {
    if (r.stdinDone) throw new FastCgiProtocolError(`STDIN after the end of stdin (id ${r.id})`);
    if (content.length === 0) {
      r.stdinDone = true;
      this.maybeStart(r);
      return;
    }
    r.stdinBytes += content.length;
    if (r.stdinBytes > this.options.maxBodyBytes) {
      this.log(LOG.DETAIL, `request body over ${this.options.maxBodyBytes} bytes (id ${r.id})`);
      this.end(r, textReply(413, 'Request body too large'));
      return;
    }
    r.stdin.push(content);
  }

  private maybeStart(r: PendingRequest): void {
    if (!r.pairs || !r.stdinDone || r.started) return;
    r.started = true;
    this.run(r, r.pairs, Buffer.concat(r.stdin)).catch((err: unknown) => {
      this.log(LOG.ERROR, `closing connection: ${describe(err)}`);
      this.destroy();
    });
    r.stdin = [];
  }

  private async run(r: PendingRequest, pairs: Array<[string, string]>, body: Buffer): Promise<void> {
    let reply: [Buffer, Buffer];
    try {
      const res = await this.handler(toServerRequest(pairs, body));
      // A malformed response must become a 500, not a dead connection.
      if (!(res.body instanceof Uint8Array)) throw new TypeError('response body is not a Buffer');
      reply = [responseHead(res), Buffer.from(res.body.buffer, res.body.byteOffset, res.body.length)];
    } catch (err) {
      this.log(LOG.ERROR, `handler failed: ${describe(err)}`);
      reply = textReply(500, 'Internal Server Error');
    }
    if (!r.ended && !this.dead) this.end(r, reply);
  }

  /** Queues the response (null: aborted, END_REQUEST only) and retires the request id. */
  private end(r: PendingRequest, reply: [Buffer, Buffer] | null): void {
    r.ended = true;
    this.requests.delete(r.id);
    if (!r.keepConn) this.closeWhenIdle = true;
    if (reply) this.send(responseSlices(r.id, reply[0], reply[1]));
    else this.send([encodeRecords([endRequestRecord(r.id, 0, ProtocolStatus.REQUEST_COMPLETE)])]);
  }

  private onGetValues(content: Buffer): void {
    const known: Record<string, number> = {
      FCGI_MAX_CONNS: this.options.maxConns,
      FCGI_MAX_REQS: this.options.maxReqs,
      FCGI_MPXS_CONNS: 1,
    };
    const answer = new Map<string, string>();
    for (const [name] of decodeNameValuePairs(content)) {
      if (Object.hasOwn(known, name)) answer.set(name, String(known[name]));
    }
    const record = {
      type: RecordType.GET_VALUES_RESULT,
      requestId: 0,
      content: encodeNameValuePairs(answer),
    };
    this.send([encodeRecords([record])]);
  }

  /** Serialises writes so each response's records stay contiguous and back-pressure holds. */
  private send(slices: Iterable<Buffer>): void {
    this.queuedWrites++;
    if (this.queuedWrites > MAX_QUEUED_WRITES && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    // The trailing catch keeps the chain from ever rejecting (an unhandled rejection kills Node).
    this.writeChain = this.writeChain
      .then(() => this.write(slices))
      .finally(() => {
        this.queuedWrites--;
        if (this.paused && this.queuedWrites <= MAX_QUEUED_WRITES / 2) {
          this.paused = false;
          this.socket.resume();
        }
        this.maybeClose();
      })
      .catch((err: unknown) => this.log(LOG.DEBUG, `write failed: ${describe(err)}`));
  }

  private async write(slices: Iterable<Buffer>): Promise<void> {
    for (const slice of slices) {
      if (this.dead || !this.socket.writable) return;
      if (!this.socket.write(slice)) await this.drained();
    }
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  private maybeClose(): void {
    if (!this.closeWhenIdle || this.requests.size > 0 || this.queuedWrites > 0) return;
    if (this.dead || !this.socket.writable) return;
    this.socket.end();
    // A peer that never closes its side would otherwise hold the socket half-open forever.
    this.socket.setTimeout(LINGER_MS, () => this.socket.destroy());
  }
}
