// conf-examples/apache-fcgid.conf and apache-proxy-fcgi.conf in a real Apache 2.4 (Debian's
// apache2, foreground, private ServerRoot on a free port). Only ports and paths of the examples
// are replaced. mod_fcgid starts iipsrv itself through an executable wrapper; mod_proxy_fcgi
// talks to a persistent `iipsrv --bind` with two workers.

import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApache, startIipsrv, writeIipsrvWrapper, readableTempDir, type Running } from '../../scripts/servers.js';
import { expectServesTiles, makeImageDir, writableTempDir } from './conf-helpers.js';

let images: string;

beforeAll(async () => {
  images = await makeImageDir();
}, 60_000);

afterAll(() => {
  fs.rmSync(images, { recursive: true, force: true });
});

/** Processes whose command line mentions `marker` (ours: the marker is a temp folder we made). */
function processesMentioning(marker: string): number[] {
  const ps = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).stdout;
  return ps
    .split('\n')
    .filter((l) => l.includes(marker) && !l.includes('ps -eo'))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

describe('apache-fcgid.conf: Apache starts iipsrv with mod_fcgid', () => {
  let apache: Awaited<ReturnType<typeof startApache>>;
  let cgi: string;
  let logs: string;

  beforeAll(async () => {
    cgi = readableTempDir('iipsrv-conf-cgi-');
    logs = writableTempDir('iipsrv-conf-log-');
    writeIipsrvWrapper(cgi, 'iipsrv.fcgi');
    apache = await startApache(
      'apache-fcgid.conf',
      [
        ['/usr/lib/iipsrv/', `${cgi}/`],
        ['/var/www/images/', `${images}/`],
        ['/var/log/iipsrv.log', `${logs}/iipsrv.log`],
      ],
      { modules: ['fcgid'], globalConfig: (dir) => `FcgidIPCDir ${dir}/fcgid\nFcgidProcessTableFile ${dir}/fcgid_shm\n` },
    );
  }, 60_000);

  afterAll(async () => {
    await apache?.stop();
    // mod_fcgid's process manager stops its iipsrv processes with Apache; anything left of
    // ours (the wrapper lives in our temp folder) is stopped here rather than leaked.
    for (const pid of processesMentioning(cgi)) process.kill(pid, 'SIGTERM');
    fs.rmSync(cgi, { recursive: true, force: true });
    fs.rmSync(logs, { recursive: true, force: true });
  });

  it('serves info.json, a tile and the health answer', async () => {
    await expectServesTiles(`http://127.0.0.1:${apache.port}`);
    expect(fs.readFileSync(`${logs}/iipsrv.log`, 'utf8')).toMatch(/Running on the FastCGI socket passed as file descriptor 0/);
  }, 60_000);

  it('leaves no iipsrv process behind when Apache stops', async () => {
    await apache.stop();
    const end = Date.now() + 10_000;
    while (processesMentioning(cgi).length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    expect(processesMentioning(cgi)).toEqual([]);
  }, 20_000);
});

describe('apache-proxy-fcgi.conf: Apache in front of iipsrv --bind --workers 2', () => {
  let apache: Awaited<ReturnType<typeof startApache>>;
  let backend: Running;

  beforeAll(async () => {
    backend = await startIipsrv({ FILESYSTEM_PREFIX: `${images}/`, URI_MAP: 'iiif=>IIIF' }, ['--workers', '2']);
    apache = await startApache('apache-proxy-fcgi.conf', [['127.0.0.1:9000', `127.0.0.1:${backend.port}`]], {
      modules: ['proxy', 'proxy_fcgi'],
    });
  }, 60_000);

  afterAll(async () => {
    await apache?.stop();
    await backend?.stop();
  });

  it('serves info.json, a tile and the health answer through the script URL', async () => {
    await expectServesTiles(`http://127.0.0.1:${apache.port}`);
  });

  it('serves the URI_MAP paths', async () => {
    const res = await fetch(`http://127.0.0.1:${apache.port}/iiif/sample.tif/info.json`);
    expect(res.status).toBe(200);
    expect((await res.json()).id).toBe(`http://127.0.0.1:${apache.port}/iiif/sample.tif`);
    const tile = await fetch(`http://127.0.0.1:${apache.port}/iiif/sample.tif/0,0,256,256/256,/0/default.jpg`);
    expect(tile.status).toBe(200);
    expect(tile.headers.get('content-type')).toBe('image/jpeg');
  });
});
