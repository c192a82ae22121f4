// conf-examples/iipsrv.service. There is no systemd to start it here, so this test does what
// systemd would do, honestly limited to that: `systemd-analyze verify` checks the unit's syntax
// and that ExecStart's program exists; then the Environment= lines are applied (only HOST,
// PORT and FILESYSTEM_PREFIX replaced), ExecStart= is expanded with systemd's ${VAR} rule and
// run with `iipsrv` on PATH, ExecReload= is run with $MAINPID, and the stop is a SIGTERM to
// the main process as KillMode=mixed does. Not tested: DynamicUser, Restart=, journald.

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
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
import { expectServesTiles, makeImageDir } from './conf-helpers.js';

const UNIT = path.join(ROOT, 'conf-examples/iipsrv.service');

/** The [Service] keys of a unit file, in order (Environment= may repeat). */
function serviceEntries(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) section = sec[1];
    else if (section === 'Service') {
      const eq = line.indexOf('=');
      out.push([line.slice(0, eq), line.slice(eq + 1)]);
    }
  }
  return out;
}

/** systemd's expansion: `${VAR}` is the value as one word, `$VAR` is split at whitespace. */
function expandCommand(line: string, env: Record<string, string>): string[] {
  const words: string[] = [];
  for (const word of line.trim().split(/\s+/)) {
    const whole = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(word);
    if (whole) words.push(...(env[whole[1]] ?? '').split(/\s+/).filter(Boolean));
    else words.push(word.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, n: string) => env[n] ?? ''));
  }
  return words;
}

describe('iipsrv.service', () => {
  let images: string;
  let bin: string;
  let service: Running;
  let nginx: Awaited<ReturnType<typeof startNginx>>;
  let env: Record<string, string>;
  const entries = serviceEntries(fs.readFileSync(UNIT, 'utf8'));

  beforeAll(async () => {
    images = await makeImageDir();
    bin = readableTempDir('iipsrv-conf-bin-');
    writeIipsrvWrapper(bin);
    const port = await freePort();
    env = {};
    for (const [k, v] of entries) {
      if (k !== 'Environment') continue;
      const eq = v.indexOf('=');
      env[v.slice(0, eq)] = v.slice(eq + 1);
    }
    expect(env.PORT).toBe('9000');
    Object.assign(env, { HOST: '127.0.0.1', PORT: String(port), FILESYSTEM_PREFIX: `${images}/`, PATH: `${bin}:${process.env.PATH}` });
    const exec = expandCommand(entries.find(([k]) => k === 'ExecStart')![1], env);
    expect(exec.slice(0, 4)).toEqual(['/usr/bin/env', 'iipsrv', '--bind', `127.0.0.1:${port}`]);
    service = await spawnListening(exec[0], exec.slice(1), env, port);
    nginx = await startNginx([port]);
  }, 60_000);

  afterAll(async () => {
    await nginx?.stop();
    await service?.stop();
    fs.rmSync(images, { recursive: true, force: true });
    fs.rmSync(bin, { recursive: true, force: true });
  });

  it('passes systemd-analyze verify', () => {
    const analyze = requireTool('systemd-analyze', ['systemd-analyze', '/usr/bin/systemd-analyze']);
    const run = spawnSync(analyze, ['verify', UNIT], { encoding: 'utf8', timeout: 30_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).not.toMatch(/iipsrv\.service/);
  });

  it('serves tiles, the health answer and the URI_MAP paths it configures', async () => {
    await expectServesTiles(`http://127.0.0.1:${nginx.port}`);
    const res = await fetch(`http://127.0.0.1:${nginx.port}/iiif/sample.tif/info.json`);
    expect(res.status).toBe(200);
  });

  it('runs WORKERS=auto workers and logs to stderr for LOGFILE=syslog', () => {
    expect(env.WORKERS).toBe('auto');
    expect(service.output()).toMatch(/\[master\] Starting \d+ worker processes/);
  });

  it('empties the caches on ExecReload and stops cleanly on SIGTERM', async () => {
    const reload = expandCommand(entries.find(([k]) => k === 'ExecReload')![1], { MAINPID: String(service.proc.pid) });
    execFileSync(reload[0], reload.slice(1));
    await until(() => /\[worker \d+\] Caught SIGHUP/.test(service.output()), 5000);
    expect(service.output()).toMatch(/\[master\] Caught SIGHUP signal/);
    expect(service.output()).toMatch(/\[worker \d+\] Caught SIGHUP signal: emptying caches/);
    const exited = new Promise<number | null>((resolve) => service.proc.once('exit', (code) => resolve(code)));
    service.proc.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
