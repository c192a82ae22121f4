// Sends thousands of random and mutated record streams over real connections; the server must
// close or answer each of them, never hang or crash, and still serve a valid request afterwards.

import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ServerRequest, ServerResponse } from '../../../src/handler-types.js';
import { createFastCgiServer, type FastCgiServer } from '../../../src/frontends/fastcgi/server.js';
import { Client, T, begin, cgi, nv, prng, rec, request, stdoutOf, streamRecs } from './helpers.js';

const CASES = 3000;
const TIME_BUDGET_MS = 15_000;
const CONCURRENCY = 8;
const CASE_TIMEOUT_MS = 5_000;

let handled = 0;
async function handler(req: ServerRequest): Promise<ServerResponse> {
  handled++;
  if (req.query.includes('throw')) throw new Error('fuzz');
  const body = req.query.includes('big') ? Buffer.alloc(300_000, 0x5a) : Buffer.from(`ok ${req.query}`);
  return { status: 200, headers: [['Content-Length', String(body.length)]], body };
}

let fcgi: FastCgiServer;
let port: number;
const logs: string[] = [];

beforeAll(async () => {
  fcgi = createFastCgiServer(handler, {
    logger: (_level, msg) => logs.push(msg),
    maxReqs: 4,
    maxBodyBytes: 4096,
  });
  port = (await fcgi.listenTcp('127.0.0.1', 0, 64)).port;
});

afterAll(async () => {
  await fcgi.close();
});

const rand = prng(0x5eed1234);
const int = (n: number) => Math.floor(rand() * n);
const pick = <X>(xs: readonly X[]): X => xs[int(xs.length)];
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));

/** A valid stream as a list of records: a few requests, maybe GET_VALUES or an abort. */
function validRecords(): Buffer[] {
  const out: Buffer[] = [];
  const ids = [1, 2, 3, 4, 5, 300, 65535].filter(() => rand() < 0.4);
  if (ids.length === 0) ids.push(1);
  for (const id of ids) {
    const params: Array<[string, string]> = [
      ['REQUEST_METHOD', pick(['GET', 'HEAD', 'post', ''])],
      ['QUERY_STRING', pick(['a=1', 'throw', 'big', 'IIIF=x.tif/info.json', ''])],
      ['HTTP_X_PAD', 'p'.repeat(pick([0, 5, 127, 128, 1000]))],
    ];
    out.push(begin(id, rand() < 0.5, rand() < 0.9 ? 1 : pick([0, 2, 3, 999])));
    out.push(...streamRecs(T.PARAMS, id, nv(params), 1 + int(300)));
    out.push(...streamRecs(T.STDIN, id, bytes(pick([0, 0, 10, 3000, 5000])), 1 + int(2000)));
    if (rand() < 0.1) out.push(rec(T.ABORT, id));
  }
  if (rand() < 0.2)
    out.push(
      rec(
        T.GET_VALUES,
        0,
        nv([
          ['FCGI_MAX_REQS', ''],
          ['X', 'y'],
        ]),
      ),
    );
  // Interleave by swapping neighbours now and then, as a multiplexing web server could.
  for (let i = 1; i < out.length; i++) if (rand() < 0.1) [out[i - 1], out[i]] = [out[i], out[i - 1]];
  return out;
}

type Mutation = (recs: Buffer[]) => Buffer[];
const at = (recs: Buffer[]) => int(recs.length);
const replaceAt = (r: Buffer[], i: number, b: Buffer) => [...r.slice(0, i), b, ...r.slice(i + 1)];
const insertAt = (r: Buffer[], i: number, b: Buffer) => [...r.slice(0, i), b, ...r.slice(i)];
const mutations: Mutation[] = [
  (r) => r, // valid
  (r) => {
    const i = at(r);
    const b = Buffer.from(r[i]);
    for (let k = 0; k < 1 + int(4); k++) b[int(b.length)] ^= 1 << int(8);
    return replaceAt(r, i, b);
  },
  (r) => r.slice(0, at(r)), // drop the tail
  (r) => insertAt(r, at(r), rec(int(256), int(4), bytes(int(40)), int(9))), // random type
  (r) => {
    const i = at(r);
    const b = Buffer.from(r[i]);
    if (b.length >= 8) b.writeUInt16BE(pick([0xffff, 0x8000, int(0x10000)]), 4); // huge length
    return replaceAt(r, i, b);
  },
  (r) => {
    const i = at(r);
    const b = Buffer.from(r[i]);
    b[0] = pick([0, 2, 255]); // bogus version
    return replaceAt(r, i, b);
  },
  (r) => insertAt(r, at(r), rec(T.BEGIN, 1 + int(3), bytes(int(8)))), // short BEGIN
  (r) => {
    const i = r.findIndex((b) => b[1] === T.BEGIN);
    return i < 0 ? r : insertAt(r, i, r[i]); // duplicate request id
  },
  (r) => insertAt(r, at(r), rec(T.PARAMS, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 3, 1, 2]))),
  (r) => insertAt(r, at(r), rec(pick([T.PARAMS, T.STDIN, T.ABORT, T.DATA, T.GET_VALUES]), int(3))),
  () => [bytes(1 + int(200))], // pure garbage
  (r) => insertAt(r, at(r), bytes(1 + int(7))), // misaligned stream
];

function nextCase(): Buffer {
  let recs = validRecords();
  for (let k = rand() < 0.3 ? 2 : 1; k > 0 && recs.length > 0; k--) recs = pick(mutations)(recs);
  let buf = Buffer.concat(recs);
  if (rand() < 0.15) buf = buf.subarray(0, int(buf.length + 1)); // truncate mid-record
  return buf;
}

async function runCase(stream: Buffer): Promise<boolean> {
  const c = await Client.connect(port);
  // Random chunking; then half-close so the server knows no more input will come.
  let pos = 0;
  while (pos < stream.length) {
    const n = rand() < 0.5 ? stream.length : 1 + int(64);
    c.socket.write(stream.subarray(pos, pos + n));
    pos += n;
  }
  c.socket.end();
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    c.closed.then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), CASE_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  if (!closed) c.socket.destroy();
  return closed;
}

it('survives thousands of mutated record streams', async () => {
  const start = Date.now();
  let done = 0;
  let hung = 0;
  let next = 0;
  const worker = async () => {
    while (next < CASES && Date.now() - start < TIME_BUDGET_MS) {
      next++;
      if (!(await runCase(nextCase()))) hung++;
      done++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));

  expect(hung).toBe(0);
  expect(done).toBeGreaterThanOrEqual(Math.min(CASES, 300));
  expect(handled).toBeGreaterThan(done / 20); // the streams do reach the handler
  expect(logs.some((m) => m.includes('closing connection'))).toBe(true);

  const c = await Client.connect(port);
  c.send(request(42, [['QUERY_STRING', 'final']], { keepConn: true }));
  const res = cgi(stdoutOf(await c.untilEnd(42), 42));
  expect(res.status).toBe('Status: 200 OK');
  expect(res.body.toString()).toBe('ok final');
  c.socket.destroy();

  // Every fuzz connection was released.
  const deadline = Date.now() + 5_000;
  let open = -1;
  while (Date.now() < deadline) {
    open = await new Promise<number>((r) => fcgi.server.getConnections((_e, n) => r(n)));
    if (open === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(open).toBe(0);
}, 60_000);
