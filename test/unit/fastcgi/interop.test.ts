// Real-world entry points: an inherited listening socket on fd 0 (spawn-fcgi style) and the
// libfcgi client `cgi-fcgi` (libfcgi-bin; a missing tool fails the test, CI installs it).

import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createFastCgiServer, type FastCgiServer } from '../../../src/frontends/fastcgi/server.js';
import { Client, cgi, request, stdoutOf } from './helpers.js';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const hasCgiFcgi = spawnSync('cgi-fcgi', [], { stdio: 'ignore' }).error === undefined;

let fcgi: FastCgiServer;
let port: number;

beforeAll(async () => {
  fcgi = createFastCgiServer(async (req) => {
    const body = Buffer.concat([Buffer.from(`${req.method} ${req.requestUri} `), req.body]);
    return {
      status: 200,
      headers: [
        ['Content-Type', 'text/plain'],
        ['Content-Length', String(body.length)],
      ],
      body,
    };
  });
  port = (await fcgi.listenTcp('127.0.0.1', 0, 16)).port;
});

afterAll(async () => {
  await fcgi.close();
});

it('serves on a listening socket inherited as fd 0', async () => {
  const listener = net.createServer();
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  const { port: childPort } = listener.address() as net.AddressInfo;
  const fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
  const child = spawn(process.execPath, ['--import', here('./ts-register.mjs'), here('./fd0-child.ts')], { stdio: [fd, 'pipe', 'pipe'] });
  // The child holds its own copy now; ours must not accept anything.
  listener.close();
  try {
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d) => String(d).includes('ready') && resolve());
      child.on('exit', (code) => reject(new Error(`child exited ${code}: ${err}`)));
    });
    const c = await Client.connect(childPort);
    c.send(request(1, [['QUERY_STRING', 'fd0']]));
    expect(cgi(stdoutOf(await c.untilEnd(1), 1)).body.toString()).toBe('child says fd0');
  } finally {
    child.kill();
  }
}, 30_000);

it('interoperates with libfcgi cgi-fcgi', async () => {
  expect(hasCgiFcgi, 'cgi-fcgi (libfcgi-bin) must be installed').toBe(true);
  const proc = spawn('cgi-fcgi', ['-bind', '-connect', `127.0.0.1:${port}`], {
    env: {
      REQUEST_METHOD: 'POST',
      REQUEST_URI: '/iipsrv.fcgi?x=1',
      QUERY_STRING: 'x=1',
      CONTENT_LENGTH: '5',
      HTTP_HOST: 'example.org',
    },
  });
  proc.stdin.end('hello');
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((r) => proc.on('close', r));
  expect(code).toBe(0);
  expect(out).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 27\r\n\r\nPOST /iipsrv.fcgi?x=1 hello');
}, 30_000);
