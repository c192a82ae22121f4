import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerRequest, ServerResponse } from '../../../src/handler-types.js';
import { toServerRequest } from '../../../src/frontends/fastcgi/connection.js';
import { createFastCgiServer, type FastCgiServer } from '../../../src/frontends/fastcgi/server.js';
import { Client, T, begin, cgi, deferred, endOf, nv, rec, request, stdoutOf } from './helpers.js';

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 11)) & 0xff;
  return b;
}

function reply(status: number, body: Buffer | string, extra: Array<[string, string]> = []): ServerResponse {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return {
    status,
    headers: [['Content-Type', 'text/plain'], ...extra, ['Content-Length', String(b.length)]],
    body: b,
  };
}

const gates = new Map<string, { promise: Promise<void>; resolve: () => void }>();
const gate = (k: string) => {
  if (!gates.has(k)) gates.set(k, deferred());
  return gates.get(k)!;
};
const arrived = new Map<string, { promise: Promise<void>; resolve: () => void }>();
const arrival = (k: string) => {
  if (!arrived.has(k)) arrived.set(k, deferred());
  return arrived.get(k)!;
};
const seen: ServerRequest[] = [];
const logs: Array<[number, string]> = [];

async function handler(req: ServerRequest): Promise<ServerResponse> {
  seen.push(req);
  const q = new URLSearchParams(req.query);
  if (q.has('throw')) throw new Error('boom');
  if (q.has('big')) return reply(200, pattern(Number(q.get('big'))));
  if (q.has('echo')) return reply(200, req.body, [['X-Method', req.method]]);
  if (q.has('wait')) {
    const k = q.get('wait')!;
    arrival(k).resolve();
    await gate(k).promise;
    return reply(200, `done ${k}`);
  }
  return reply(200, `hello ${req.method} ${req.query}`, [['X-Evil', 'a\r\nInjected: 1']]);
}

const GET = (query: string): Array<[string, string]> => [
  ['REQUEST_METHOD', 'GET'],
  ['QUERY_STRING', query],
  ['REQUEST_URI', `/fcgi?${query}`],
];

let fcgi: FastCgiServer;
let port: number;

beforeAll(async () => {
  fcgi = createFastCgiServer(handler, {
    logger: (level, msg) => logs.push([level, msg]),
    maxConns: 77,
    maxReqs: 50,
    maxBodyBytes: 1 << 20,
  });
  port = (await fcgi.listenTcp('127.0.0.1', 0, 16)).port;
});

afterAll(async () => {
  await fcgi.close();
});

describe('FastCGI server over TCP', () => {
  it('answers a simple request, then closes without KEEP_CONN', async () => {
    const c = await Client.connect(port);
    c.send(request(1, GET('a=1')));
    const records = await c.untilEnd(1);
    const res = cgi(stdoutOf(records, 1));
    expect(res.status).toBe('Status: 200 OK');
    expect(res.headers).toEqual(['Content-Type: text/plain', 'X-Evil: a  Injected: 1', 'Content-Length: 13']);
    expect(res.body.toString()).toBe('hello GET a=1');
    expect(endOf(records, 1)).toEqual({ appStatus: 0, protocolStatus: 0 });
    // STDOUT is terminated by an empty record before END_REQUEST.
    const mine = records.filter((r) => r.id === 1);
    expect(mine.at(-2)).toMatchObject({ type: T.STDOUT, content: Buffer.alloc(0) });
    expect(mine.at(-1)!.type).toBe(T.END);
    await c.closed;
    expect(c.ended).toBe(true);
  });

  it('accepts params split over several records and a stdin body', async () => {
    const c = await Client.connect(port);
    const body = pattern(200_000);
    const params: Array<[string, string]> = [
      ...GET('echo'),
      ['REQUEST_METHOD', 'post'],
      ['CONTENT_TYPE', 'application/octet-stream'],
      ['CONTENT_LENGTH', String(body.length)],
      ['HTTP_X_LONG', 'v'.repeat(1000)],
    ];
    c.send(request(7, params, { body, chunk: 100 }));
    const records = await c.untilEnd(7);
    const res = cgi(stdoutOf(records, 7));
    expect(res.status).toBe('Status: 200 OK');
    expect(res.headers).toContain('X-Method: POST');
    expect(res.body.equals(body)).toBe(true);
    const req = seen.at(-1)!;
    expect(req.headers['content-type']).toBe('application/octet-stream');
    expect(req.headers['x-long']).toBe('v'.repeat(1000));
  });

  it('serves sequential requests on one KEEP_CONN connection', async () => {
    const c = await Client.connect(port);
    c.send(request(1, GET('n=1'), { keepConn: true }));
    await c.untilEnd(1);
    c.send(request(1, GET('n=2'), { keepConn: true }));
    const records = await c.until((rs) => rs.filter((r) => r.type === T.END).length === 2);
    const out = stdoutOf(records, 1).toString();
    expect(out).toContain('hello GET n=1');
    expect(out).toContain('hello GET n=2');
    expect(c.ended).toBe(false);
    c.socket.destroy();
  });

  it('multiplexes interleaved requests answered out of order', async () => {
    const c = await Client.connect(port);
    const p1 = nv(GET('wait=m1'));
    const p2 = nv(GET('wait=m2'));
    c.send(
      Buffer.concat([
        begin(1, true),
        begin(2, true),
        rec(T.PARAMS, 1, p1.subarray(0, 10)),
        rec(T.PARAMS, 2, p2.subarray(0, 5)),
        rec(T.PARAMS, 1, p1.subarray(10)),
        rec(T.PARAMS, 2, p2.subarray(5)),
        rec(T.PARAMS, 2),
        rec(T.PARAMS, 1),
        rec(T.STDIN, 2),
        rec(T.STDIN, 1),
      ]),
    );
    await Promise.all([arrival('m1').promise, arrival('m2').promise]);
    gate('m2').resolve();
    let records = await c.untilEnd(2);
    expect(endOf(records, 1)).toBeUndefined();
    gate('m1').resolve();
    records = await c.untilEnd(1);
    expect(cgi(stdoutOf(records, 1)).body.toString()).toBe('done m1');
    expect(cgi(stdoutOf(records, 2)).body.toString()).toBe('done m2');
    c.socket.destroy();
  });

  it('answers FCGI_GET_VALUES with only the names asked', async () => {
    const c = await Client.connect(port);
    c.send(
      rec(
        T.GET_VALUES,
        0,
        nv([
          ['FCGI_MAX_CONNS', ''],
          ['FCGI_MPXS_CONNS', ''],
          ['BOGUS', ''],
        ]),
      ),
    );
    const records = await c.until((rs) => rs.some((r) => r.type === T.GET_VALUES_RESULT));
    const content = records.find((r) => r.type === T.GET_VALUES_RESULT)!.content;
    expect(
      content.equals(
        nv([
          ['FCGI_MAX_CONNS', '77'],
          ['FCGI_MPXS_CONNS', '1'],
        ]),
      ),
    ).toBe(true);
    c.socket.destroy();
  });

  it('replies UNKNOWN_TYPE to an unknown record type and stays usable', async () => {
    const c = await Client.connect(port);
    c.send(rec(99, 0, Buffer.from('whatever')));
    const records = await c.until((rs) => rs.some((r) => r.type === T.UNKNOWN_TYPE));
    expect(records[0].content[0]).toBe(99);
    c.send(request(3, GET('after=unknown')));
    const after = await c.untilEnd(3);
    expect(cgi(stdoutOf(after, 3)).body.toString()).toBe('hello GET after=unknown');
  });

  it('ends an aborted request and drops the handler result', async () => {
    const c = await Client.connect(port);
    c.send(request(4, GET('wait=ab'), { keepConn: true }));
    await arrival('ab').promise;
    c.send(rec(T.ABORT, 4));
    let records = await c.untilEnd(4);
    expect(endOf(records, 4)).toEqual({ appStatus: 0, protocolStatus: 0 });
    gate('ab').resolve();
    c.send(request(5, GET('next'), { keepConn: true }));
    records = await c.untilEnd(5);
    expect(stdoutOf(records, 4).length).toBe(0);
    expect(records.filter((r) => r.id === 4)).toHaveLength(1);
    c.socket.destroy();
  });

  it('refuses roles other than RESPONDER', async () => {
    const c = await Client.connect(port);
    c.send(begin(9, true, 2));
    const records = await c.untilEnd(9);
    expect(endOf(records, 9)).toEqual({ appStatus: 0, protocolStatus: 3 });
    c.socket.destroy();
  });

  it('answers 500 when the handler throws', async () => {
    const c = await Client.connect(port);
    c.send(request(1, GET('throw')));
    const res = cgi(stdoutOf(await c.untilEnd(1), 1));
    expect(res.status).toBe('Status: 500 Internal Server Error');
    expect(res.body.toString()).toBe('Internal Server Error\n');
    expect(logs.some(([level, msg]) => level === 1 && msg.includes('boom'))).toBe(true);
  });

  it('answers 413 to a body over the limit', async () => {
    const c = await Client.connect(port);
    c.send(request(1, GET('echo'), { body: Buffer.alloc((1 << 20) + 1) }));
    const res = cgi(stdoutOf(await c.untilEnd(1), 1));
    expect(res.status).toBe('Status: 413 Content Too Large');
    await c.closed;
  });

  it('closes only the connection that breaks the protocol', async () => {
    const good = await Client.connect(port);
    const bad = await Client.connect(port);
    bad.send(Buffer.concat([begin(1, true), begin(1, true)]));
    await bad.closed;
    const worse = await Client.connect(port);
    worse.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    await worse.closed;
    good.send(request(1, GET('still=ok')));
    expect(cgi(stdoutOf(await good.untilEnd(1), 1)).body.toString()).toBe('hello GET still=ok');
    expect(logs.some(([, msg]) => msg.includes('already active'))).toBe(true);
  });

  it('delivers a 5 MB response intact to a slow reader', async () => {
    const c = await Client.connect(port);
    c.socket.pause();
    c.send(request(1, GET('big=5000000')));
    await new Promise((r) => setTimeout(r, 300));
    c.socket.resume();
    const res = cgi(stdoutOf(await c.untilEnd(1, 30_000), 1));
    expect(res.headers).toContain('Content-Length: 5000000');
    expect(res.body.equals(pattern(5_000_000))).toBe(true);
  }, 60_000);

  it('respects back-pressure: never queues more than a slice in user space', async () => {
    let maxQueued = 0;
    const spy = (socket: net.Socket) => {
      const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
      socket.write = ((chunk: Buffer) => {
        const ok = write(chunk);
        maxQueued = Math.max(maxQueued, socket.writableLength);
        return ok;
      }) as typeof socket.write;
    };
    fcgi.server.once('connection', spy);
    const c = await Client.connect(port);
    c.socket.pause();
    const size = 40_000_000;
    c.send(request(1, GET(`big=${size}`)));
    await new Promise((r) => setTimeout(r, 300));
    c.socket.resume();
    const out = stdoutOf(await c.untilEnd(1, 60_000), 1);
    expect(out.length).toBeGreaterThan(size);
    // One slice is 64 records of 64 KiB; without back-pressure ~40 MB would pile up at once.
    expect(maxQueued).toBeLessThan(64 * 65536 + 65536);
    expect(cgi(out).body.equals(pattern(size))).toBe(true);
  }, 60_000);

  it('survives a client that vanishes mid-response', async () => {
    const c = await Client.connect(port);
    c.socket.pause();
    c.send(request(1, GET('big=20000000')));
    await new Promise((r) => setTimeout(r, 100));
    c.socket.destroy();
    const d = await Client.connect(port);
    d.send(request(1, GET('alive')));
    expect(cgi(stdoutOf(await d.untilEnd(1), 1)).body.toString()).toBe('hello GET alive');
  }, 30_000);
});

describe('other listeners and shutdown', () => {
  it('listens on a UNIX socket, replacing a stale socket file but not a live one', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcgi-'));
    const sock = path.join(dir, 's.sock');
    // A killed process leaves its socket file behind.
    const code = `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`;
    spawnSync(process.execPath, ['-e', code]);
    expect(fs.lstatSync(sock).isSocket()).toBe(true);

    const s = createFastCgiServer(handler);
    await s.listenPath(sock, 8);
    const c = await Client.connect(sock);
    c.send(request(1, GET('unix')));
    expect(cgi(stdoutOf(await c.untilEnd(1), 1)).body.toString()).toBe('hello GET unix');

    const other = createFastCgiServer(handler);
    await expect(other.listenPath(sock, 8)).rejects.toThrow(/already listening/);
    await s.close();

    const plain = path.join(dir, 'plain');
    fs.writeFileSync(plain, 'keep me');
    await expect(other.listenPath(plain, 8)).rejects.toThrow();
    expect(fs.readFileSync(plain, 'utf8')).toBe('keep me');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('close() waits for in-flight requests and stops accepting', async () => {
    const s = createFastCgiServer(handler);
    const p = (await s.listenTcp('127.0.0.1', 0, 4)).port;
    const idle = await Client.connect(p);
    const busy = await Client.connect(p);
    busy.send(request(1, GET('wait=shutdown'), { keepConn: true }));
    await arrival('shutdown').promise;
    const closing = s.close();
    await idle.closed;
    gate('shutdown').resolve();
    const records = await busy.untilEnd(1);
    expect(cgi(stdoutOf(records, 1)).body.toString()).toBe('done shutdown');
    await closing;
    await busy.closed;
    await expect(Client.connect(p)).rejects.toThrow();
  });
});

describe('toServerRequest', () => {
  it('maps CGI params', () => {
    const req = toServerRequest(
      [
        ['REQUEST_METHOD', 'head'],
        ['QUERY_STRING', 'IIIF=a.tif/info.json'],
        ['SCRIPT_NAME', '/fcgi-bin/iipsrv.fcgi'],
        ['HTTP_IF_MODIFIED_SINCE', 'Mon'],
        ['HTTP_HOST', 'example.org'],
        ['CONTENT_TYPE', ''],
        ['HTTPS', 'ON'],
        ['REMOTE_ADDR', '10.0.0.1'],
      ],
      Buffer.alloc(0),
    );
    expect(req).toEqual({
      method: 'HEAD',
      query: 'IIIF=a.tif/info.json',
      requestUri: '/fcgi-bin/iipsrv.fcgi?IIIF=a.tif/info.json',
      headers: { 'if-modified-since': 'Mon', host: 'example.org' },
      https: true,
      body: Buffer.alloc(0),
      remoteAddress: '10.0.0.1',
    });
    const bare = toServerRequest([['HTTPS', 'off']], Buffer.alloc(0));
    expect(bare).toMatchObject({
      method: 'GET',
      query: '',
      requestUri: '',
      https: false,
      headers: {},
    });
  });
});
