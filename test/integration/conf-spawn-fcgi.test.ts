// conf-examples/spawn-fcgi.sh run as it is, with its documented environment overrides (port,
// image folder, the iipsrv executable, WORKERS=2): spawn-fcgi opens the socket, iipsrv's
// master and both workers serve on it as fd 0; nginx (conf-examples/nginx.conf) in front.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI,
  freePort,
  readableTempDir,
  requireTool,
  ROOT,
  spawnListening,
  startNginx,
  until,
  writeIipsrvWrapper,
  type Running,
} from '../../scripts/servers.js';
import { execFileSync } from 'node:child_process';
import { expectServesTiles, makeImageDir } from './conf-helpers.js';

describe('spawn-fcgi.sh: spawn-fcgi hands the socket to iipsrv --workers 2', () => {
  let images: string;
  let bin: string;
  let fcgi: Running;
  let nginx: Awaited<ReturnType<typeof startNginx>>;

  beforeAll(async () => {
    requireTool('spawn-fcgi');
    images = await makeImageDir();
    bin = readableTempDir('iipsrv-conf-bin-');
    const port = await freePort();
    fcgi = await spawnListening(
      'sh',
      [path.join(ROOT, 'conf-examples/spawn-fcgi.sh')],
      {
        HOST: '127.0.0.1',
        PORT: String(port),
        WORKERS: '2',
        IIPSRV: writeIipsrvWrapper(bin),
        FILESYSTEM_PREFIX: `${images}/`,
        LOGFILE: path.join(bin, 'iipsrv.log'),
        VERBOSITY: '1',
      },
      port,
    );
    nginx = await startNginx([port]);
  }, 60_000);

  afterAll(async () => {
    await nginx?.stop();
    await fcgi?.stop();
    fs.rmSync(images, { recursive: true, force: true });
    fs.rmSync(bin, { recursive: true, force: true });
  });

  it('serves info.json, a tile and the health answer', async () => {
    await expectServesTiles(`http://127.0.0.1:${nginx.port}`);
  });

  it('runs a master and two workers on the inherited socket', async () => {
    // spawn-fcgi's socket accepts before the workers start, so the first tests may be
    // served while the second worker is still booting: wait for it, boundedly.
    const status = (): string => execFileSync(process.execPath, [CLI, 'status', '--bind', `127.0.0.1:${fcgi.port}`], { encoding: 'utf8' });
    const workerLines = (): number =>
      fs
        .readFileSync(path.join(bin, 'iipsrv.log'), 'utf8')
        .match(/\[worker \d\] Running on the FastCGI socket passed as file descriptor 0/g)?.length ?? 0;
    expect(await until(async () => /2 of 2 workers running/.test(status()), 10_000)).toBe(true);
    expect(await until(async () => workerLines() === 2, 5_000)).toBe(true);
    expect(status()).toMatch(/2 of 2 workers running, 0 restarts/);
  });

  it('stops master and workers on SIGTERM with exit code 0', async () => {
    const exited = new Promise<number | null>((resolve) => fcgi.proc.once('exit', (code) => resolve(code)));
    fcgi.proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    const log = fs.readFileSync(path.join(bin, 'iipsrv.log'), 'utf8');
    expect(log).toMatch(/\[master\] master: all workers stopped/);
  });
});
