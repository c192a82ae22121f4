// conf-examples/lighttpd.conf (lighttpd starts iipsrv through bin-path, socket on fd 0) and
// lighttpd-hostport.conf (lighttpd in front of `iipsrv --bind`), in Debian's lighttpd on a
// free port. Only ports and paths of the examples are replaced.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readableTempDir, startIipsrv, startLighttpd, writeIipsrvWrapper, type Running } from '../../scripts/servers.js';
import { expectServesTiles, makeImageDir } from './conf-helpers.js';

let images: string;

beforeAll(async () => {
  images = await makeImageDir();
}, 60_000);

afterAll(() => {
  fs.rmSync(images, { recursive: true, force: true });
});

describe('lighttpd.conf: lighttpd starts iipsrv (bin-path)', () => {
  let lighttpd: Awaited<ReturnType<typeof startLighttpd>>;
  let bin: string;

  beforeAll(async () => {
    bin = readableTempDir('iipsrv-conf-bin-');
    const wrapper = writeIipsrvWrapper(bin);
    lighttpd = await startLighttpd('lighttpd.conf', (port, dir) => [
      ['server.port = 8080', `server.port = ${port}`],
      ['/run/lighttpd/iipsrv-fastcgi.socket', path.join(dir, 'iipsrv-fastcgi.socket')],
      ['/usr/local/bin/iipsrv', wrapper],
      ['/var/www/images/', `${images}/`],
      ['/var/log/iipsrv.log', path.join(bin, 'iipsrv.log')],
    ]);
  }, 60_000);

  afterAll(async () => {
    await lighttpd?.stop();
    fs.rmSync(bin, { recursive: true, force: true });
  });

  it('serves info.json, a tile and the health answer', async () => {
    await expectServesTiles(`http://127.0.0.1:${lighttpd.port}`);
    const log = fs.readFileSync(path.join(bin, 'iipsrv.log'), 'utf8');
    // lighttpd started iipsrv itself, with the socket as fd 0 (more processes up to max-procs).
    expect(log).toMatch(/Running on the FastCGI socket passed as file descriptor 0/);
  });
});

describe('lighttpd-hostport.conf: lighttpd in front of iipsrv --bind', () => {
  let lighttpd: Awaited<ReturnType<typeof startLighttpd>>;
  let backend: Running;

  beforeAll(async () => {
    backend = await startIipsrv({ FILESYSTEM_PREFIX: `${images}/` });
    lighttpd = await startLighttpd('lighttpd-hostport.conf', (port) => [
      ['server.port = 8080', `server.port = ${port}`],
      ['"port" => 9000', `"port" => ${backend.port}`],
    ]);
  }, 60_000);

  afterAll(async () => {
    await lighttpd?.stop();
    await backend?.stop();
  });

  it('serves info.json, a tile and the health answer', async () => {
    await expectServesTiles(`http://127.0.0.1:${lighttpd.port}`);
  });
});
