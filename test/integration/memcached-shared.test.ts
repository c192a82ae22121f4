// Two iipsrv instances behind nginx (conf-examples/nginx-upstream.conf, least_conn over both)
// sharing one memcached: a tile made by one instance is served from Memcached by the other.
// Each instance's counters (read over FastCGI from its own port) prove which did what.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePrometheus, sumOf } from '../../src/metrics.js';
import { metricsRequest } from '../../src/status.js';
import { makeSample } from '../../scripts/make-sample.js';
import { startIipsrv, startMemcached, startNginx, type Running } from '../../scripts/servers.js';

describe('two instances behind nginx-upstream.conf sharing one memcached', () => {
  let dir: string;
  let mc: Running;
  let a: Running;
  let b: Running;
  let nginx: Awaited<ReturnType<typeof startNginx>>;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-shared-'));
    await makeSample(path.join(dir, 'sample.tif'), 1024, 768);
    mc = await startMemcached();
    // A generous lookup deadline: this test is about sharing, and CI runs it beside a browser on
    // two cores, where the 40 ms default can fire and (correctly) turn the hit into a miss.
    // The deadline itself is tested in memcached.test.ts.
    const env = { FILESYSTEM_PREFIX: `${dir}/`, MEMCACHED_SERVERS: `127.0.0.1:${mc.port}`, MEMCACHED_DEADLINE_MS: '2000' };
    a = await startIipsrv(env);
    b = await startIipsrv(env);
    nginx = await startNginx([a.port, b.port], 'nginx-upstream.conf');
  }, 60_000);

  afterAll(async () => {
    await nginx?.stop();
    await a?.stop();
    await b?.stop();
    await mc?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const metrics = async (port: number) => {
    const res = await metricsRequest({ host: '127.0.0.1', port });
    expect(res.status).toBe(200);
    return parsePrometheus(res.body.toString());
  };
  const made = (m: ReturnType<typeof parsePrometheus>): number => sumOf(m, 'iipsrv_renders_total') + sumOf(m, 'iipsrv_passthrough_total');

  it('makes each tile once in the pool and serves it from Memcached on the other instance', async () => {
    // A region (not a stored tile) so that making it means decoding and encoding.
    const url = `http://127.0.0.1:${nginx.port}/fcgi-bin/iipsrv.fcgi?IIIF=/sample.tif/100,100,300,300/150,/0/default.jpg`;
    const first = await fetch(url);
    expect(first.status).toBe(200);
    const body = Buffer.from(await first.arrayBuffer());
    // Which instance made it, and wait (bounded) until its fire-and-forget write has landed.
    let maker: Running | undefined;
    const end = Date.now() + 5000;
    while (!maker && Date.now() < end) {
      for (const s of [a, b]) {
        const m = await metrics(s.port);
        if (made(m) === 1 && sumOf(m, 'iipsrv_memcached_operations_total', { op: 'set', result: 'ok' }) === 1) maker = s;
      }
    }
    expect(maker).toBeDefined();
    const other = maker === a ? b : a;

    // nginx alternates between idle backends; ask until the other instance has answered.
    let served = 0;
    for (let i = 0; i < 10 && served === 0; i++) {
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(Buffer.compare(Buffer.from(await res.arrayBuffer()), body)).toBe(0);
      served = sumOf(await metrics(other.port), 'iipsrv_requests_total', { protocol: 'IIIF' });
    }
    const mo = await metrics(other.port);
    const mm = await metrics(maker!.port);
    const failures = { errors: sumOf(mo, 'iipsrv_memcached_errors_total'), timeouts: sumOf(mo, 'iipsrv_memcached_timeouts_total') };
    expect(failures).toEqual({ errors: 0, timeouts: 0 });
    expect(sumOf(mo, 'iipsrv_cache_hits_total', { tier: 'memcached' })).toBe(1);
    expect(made(mo)).toBe(0);
    expect(made(mm)).toBe(1);
  });

  it('answers HEALTH and METRICS through nginx', async () => {
    const h = await fetch(`http://127.0.0.1:${nginx.port}/fcgi-bin/iipsrv.fcgi?HEALTH`);
    expect(h.status).toBe(200);
    expect(await h.text()).toBe('ok\n');
    const m = await fetch(`http://127.0.0.1:${nginx.port}/fcgi-bin/iipsrv.fcgi?METRICS`);
    expect(m.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await m.text();
    expect(text).toMatch(/^# HELP iipsrv_requests_total /m);
    expect(text).toMatch(/^iipsrv_request_duration_seconds_bucket\{worker="0",le="\+Inf"\} \d+$/m);
  });
});
