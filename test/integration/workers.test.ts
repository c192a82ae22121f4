// `--workers N`: a master and N workers sharing the socket (TCP, UNIX, HTTP; fd 0 is in
// conf-spawn-fcgi.test.ts). Both workers take requests, a killed worker is replaced, SIGHUP
// reaches every worker, SIGTERM stops them all with exit code 0, counters from any worker
// cover all of them, and a socket that cannot be opened fails start-up as one process would.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePrometheus, sumOf, type ParsedSample } from '../../src/metrics.js';
import { fastcgiRequest, metricsRequest, type FastCgiTarget } from '../../src/status.js';
import { makeSample } from '../../scripts/make-sample.js';
import { childEnv, CLI, freePort, startIipsrv, startNginx, until, waitForPort, type Running } from '../../scripts/servers.js';

let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-workers-'));
  await makeSample(path.join(dir, 'sample.tif'), 1024, 768);
}, 60_000);

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const env = (): Record<string, string> => ({ FILESYSTEM_PREFIX: `${dir}/`, LOGFILE: '/dev/stderr', VERBOSITY: '1' });

async function metrics(target: FastCgiTarget, timeoutMs = 5000): Promise<ParsedSample[]> {
  const res = await metricsRequest(target, timeoutMs);
  expect(res.status).toBe(200);
  return parsePrometheus(res.body.toString());
}

const pidOf = (m: ParsedSample[], worker: string): number => sumOf(m, 'iipsrv_process_id', { worker });

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('--workers 2 on --bind TCP behind nginx', () => {
  let srv: Running;
  let nginx: Awaited<ReturnType<typeof startNginx>>;
  const target = (): FastCgiTarget => ({ host: '127.0.0.1', port: srv.port });

  beforeAll(async () => {
    srv = await startIipsrv(env(), ['--workers', '2']);
    nginx = await startNginx([srv.port]);
    // Both workers have registered with the master once they are listening.
    expect(await until(async () => sumOf(await metrics(target()), 'iipsrv_workers', { state: 'running' }) === 2, 10_000)).toBe(true);
  }, 60_000);

  afterAll(async () => {
    await nginx?.stop();
    await srv?.stop();
  });

  it('spreads concurrent requests over both workers and reports them per worker', async () => {
    const urls: string[] = [];
    for (let r = 0; r < 3; r++)
      for (let c = 0; c < 4; c++)
        urls.push(`http://127.0.0.1:${nginx.port}/fcgi-bin/iipsrv.fcgi?IIIF=/sample.tif/${c * 256},${r * 256},256,256/128,/0/default.jpg`);
    for (let round = 0; round < 3; round++) {
      const statuses = await Promise.all(urls.map((u) => fetch(u).then((res) => res.status)));
      expect(statuses.every((s) => s === 200)).toBe(true);
    }
    const m = await metrics(target());
    const w1 = sumOf(m, 'iipsrv_requests_total', { worker: '1', protocol: 'IIIF' });
    const w2 = sumOf(m, 'iipsrv_requests_total', { worker: '2', protocol: 'IIIF' });
    expect(w1 + w2).toBe(36);
    expect(w1).toBeGreaterThan(0);
    expect(w2).toBeGreaterThan(0);
    expect(pidOf(m, '1')).not.toBe(pidOf(m, '2'));
    expect(sumOf(m, 'iipsrv_workers', { state: 'configured' })).toBe(2);
  });

  it('`iipsrv status` prints every worker and the totals', () => {
    const out = execFileSync(process.execPath, [CLI, 'status', '--bind', `127.0.0.1:${srv.port}`], { encoding: 'utf8' });
    expect(out).toMatch(/2 of 2 workers running, 0 restarts/);
    expect(out).toMatch(/^1\s+\d+/m);
    expect(out).toMatch(/^2\s+\d+/m);
    expect(out).toMatch(/^total\s/m);
    const raw = execFileSync(process.execPath, [CLI, 'status', '--url', `http://127.0.0.1:${nginx.port}/fcgi-bin/iipsrv.fcgi`, '--raw'], {
      encoding: 'utf8',
    });
    expect(raw).toMatch(/^# TYPE iipsrv_requests_total counter$/m);
  });

  it('forwards SIGHUP to every worker', async () => {
    srv.proc.kill('SIGHUP');
    expect(await until(() => (srv.output().match(/\[worker \d\] Caught SIGHUP signal: emptying caches/g) ?? []).length === 2, 5000)).toBe(
      true,
    );
  });

  it('replaces a killed worker and keeps serving', async () => {
    const before = await metrics(target());
    const victim = pidOf(before, '1');
    process.kill(victim, 'SIGKILL');
    // A connection the master hands to the worker in the instant it dies is lost with it
    // (as with any crashed process): ask with a short timeout and again.
    expect(
      await until(async () => {
        try {
          const m = await metrics(target(), 1000);
          return pidOf(m, '1') > 0 && pidOf(m, '1') !== victim && sumOf(m, 'iipsrv_workers', { state: 'running' }) === 2;
        } catch {
          return false;
        }
      }, 10_000),
    ).toBe(true);
    const m = await metrics(target());
    expect(sumOf(m, 'iipsrv_worker_restarts_total', { worker: '1' })).toBe(1);
    expect(srv.output()).toMatch(/\[master\] master: worker 1 \(pid \d+\) exited with signal SIGKILL/);
    const res = await fetch(`http://127.0.0.1:${nginx.port}/fcgi-bin/iipsrv.fcgi?IIIF=/sample.tif/info.json`);
    expect(res.status).toBe(200);
  });

  it('stops master and workers on SIGTERM, exit code 0', async () => {
    const m = await metrics(target());
    const pids = [pidOf(m, '1'), pidOf(m, '2')];
    const exited = new Promise<number | null>((resolve) => srv.proc.once('exit', (code) => resolve(code)));
    srv.proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(await until(() => pids.every((p) => !alive(p)), 5000)).toBe(true);
    expect(srv.output()).toMatch(/\[worker 1\] Caught SIGTERM signal\. Terminating after/);
    expect(srv.output()).toMatch(/\[worker 2\] Caught SIGTERM signal\. Terminating after/);
  });
});

describe('--workers 2 on a UNIX socket', () => {
  it('removes a stale socket file, serves from both workers, and stops', async () => {
    const sock = path.join(dir, 'iipsrv.sock');
    // A stale socket: bound once, its server gone.
    const stale = net.createServer();
    await new Promise<void>((r) => stale.listen(sock, r));
    await new Promise<void>((r) => {
      (stale as unknown as { _handle: { close(): void } | null })._handle?.close();
      r();
    });
    const proc = spawn(process.execPath, [CLI, '--bind', sock, '--workers', '2'], {
      env: childEnv(env()),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const target = { path: sock };
      const ok = await until(async () => {
        try {
          return sumOf(await metrics(target), 'iipsrv_workers', { state: 'running' }) === 2;
        } catch {
          return false;
        }
      }, 10_000);
      expect(ok, out).toBe(true);
      const answers = await Promise.all(
        Array.from({ length: 8 }, () =>
          fastcgiRequest(target, {
            QUERY_STRING: 'IIIF=/sample.tif/info.json',
            REQUEST_URI: '/fcgi-bin/iipsrv.fcgi?IIIF=/sample.tif/info.json',
          }),
        ),
      );
      expect(answers.every((a) => a.status === 200)).toBe(true);
      const m = await metrics(target);
      expect(sumOf(m, 'iipsrv_requests_total', { worker: '1' })).toBeGreaterThan(0);
      expect(sumOf(m, 'iipsrv_requests_total', { worker: '2' })).toBeGreaterThan(0);
    } finally {
      const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
      proc.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});

describe('--workers 2 with --http', () => {
  it('answers /health and /metrics', async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, [CLI, '--http', `127.0.0.1:${port}`, '--workers', '2'], {
      env: childEnv(env()),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      await waitForPort(port);
      const h = await fetch(`http://127.0.0.1:${port}/health`);
      expect(await h.text()).toBe('ok\n');
      const m = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(m.status).toBe(200);
      expect(await m.text()).toMatch(/^iipsrv_workers\{state="configured"\} 2$/m);
    } finally {
      const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
      proc.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});

describe('start-up failures with --workers', () => {
  it('exits 1 when the socket cannot be opened', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const run = spawnSync(process.execPath, [CLI, '--bind', `127.0.0.1:${port}`, '--workers', '2'], {
        env: childEnv(env()),
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/unable to open socket/);
      expect(run.stderr).toMatch(/workers failed to start/);
    } finally {
      taken.close();
    }
  });

  it('refuses a bad --workers value', () => {
    const run = spawnSync(process.execPath, [CLI, '--bind', ':9', '--workers', '0'], {
      env: childEnv(env()),
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/--workers expects a positive integer or "auto" but received "0"/);
  });
});
