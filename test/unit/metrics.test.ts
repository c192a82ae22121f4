// Counters, the Prometheus text exposition (merged over workers), its parser, and the
// server's own routes (HEALTH, METRICS) through a ServerCore in process.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { ServerRequest } from '../../src/handler-types.js';
import { silentLogger } from '../../src/log.js';
import { Histogram, Metrics, parsePrometheus, renderPrometheus, sumOf } from '../../src/metrics.js';
import { createServerCore, serverRoute, type ServerCore } from '../../src/server.js';

function req(uri: string, method = 'GET'): ServerRequest {
  const q = uri.indexOf('?');
  return { method, query: q < 0 ? '' : uri.slice(q + 1), requestUri: uri, headers: {}, https: false, body: Buffer.alloc(0) };
}

describe('Histogram', () => {
  it('counts each observation in its bucket, cumulatively on output', () => {
    const h = new Histogram([0.01, 0.1, 1]);
    for (const v of [0.005, 0.01, 0.05, 0.5, 5]) h.observe(v);
    const s = h.sample();
    expect(s.cumulative).toEqual([2, 3, 4, 5]);
    expect(s.count).toBe(5);
    expect(s.sum).toBeCloseTo(5.565);
  });
});

describe('Prometheus exposition', () => {
  it('merges workers under one HELP/TYPE with a worker label, and parses back', () => {
    const a = new Metrics('1');
    const b = new Metrics('2');
    a.observe('IIIF', 200, 0.002);
    a.observe('IIIF', 404, 0.001);
    b.observe('IIP', 500, 0.3);
    b.addCollector(() => [
      { name: 'iipsrv_cache_hits_total', help: 'Hits.', type: 'counter', samples: [{ labels: { tier: 'ram' }, value: 7 }] },
    ]);
    const text = renderPrometheus(
      [a.snapshot(), b.snapshot()],
      [{ name: 'iipsrv_workers', help: 'Workers.', type: 'gauge', samples: [{ labels: { state: 'running' }, value: 2 }] }],
    );
    expect(text.match(/^# TYPE iipsrv_requests_total counter$/gm)).toHaveLength(1);
    expect(text).toMatch(/^iipsrv_requests_total\{worker="1",protocol="IIIF"\} 2$/m);
    expect(text).toMatch(/^iipsrv_requests_total\{worker="2",protocol="IIP"\} 1$/m);
    expect(text).toMatch(/^iipsrv_workers\{state="running"\} 2$/m);
    expect(text).toMatch(/^iipsrv_request_duration_seconds_bucket\{worker="2",le="\+Inf"\} 1$/m);
    const s = parsePrometheus(text);
    expect(sumOf(s, 'iipsrv_requests_total')).toBe(3);
    expect(sumOf(s, 'iipsrv_responses_total', { class: '4xx' })).toBe(1);
    expect(sumOf(s, 'iipsrv_responses_total', { class: '5xx', worker: '2' })).toBe(1);
    expect(sumOf(s, 'iipsrv_cache_hits_total', { tier: 'ram' })).toBe(7);
    expect(sumOf(s, 'iipsrv_request_duration_seconds_count')).toBe(3);
    // Every sample line is `name{labels} value`; every family has HELP and TYPE first.
    for (const line of text.trim().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? \S+)$/);
  });

  it('escapes label values', () => {
    const m = new Metrics('1');
    m.observe('we"ird\\name\n', 200, 0);
    const text = renderPrometheus([m.snapshot()]);
    expect(text).toContain('protocol="we\\"ird\\\\name\\n"');
    expect(parsePrometheus(text).find((x) => x.name === 'iipsrv_requests_total')?.labels.protocol).toBe('we"ird\\name\n');
  });

  it('a failing collector does not break the snapshot', () => {
    const m = new Metrics('0');
    m.addCollector(() => {
      throw new Error('boom');
    });
    expect(m.snapshot().families.length).toBeGreaterThan(0);
  });
});

describe('server routes', () => {
  it('recognise HEALTH and METRICS in the query (any case) and as paths', () => {
    expect(serverRoute(req('/fcgi-bin/iipsrv.fcgi?HEALTH'))).toBe('health');
    expect(serverRoute(req('/fcgi-bin/iipsrv.fcgi?health'))).toBe('health');
    expect(serverRoute(req('/health'))).toBe('health');
    expect(serverRoute(req('/fcgi-bin/iipsrv.fcgi?METRICS'))).toBe('metrics');
    expect(serverRoute(req('/metrics'))).toBe('metrics');
    expect(serverRoute(req('/fcgi-bin/iipsrv.fcgi?IIIF=health/info.json'))).toBeUndefined();
    expect(serverRoute(req('/iiif/health/info.json'))).toBeUndefined();
  });

  describe('through a server core', () => {
    let dir: string;
    let core: ServerCore;
    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iipsrv-metrics-'));
      await sharp({ create: { width: 600, height: 400, channels: 3, background: { r: 10, g: 200, b: 10 } } })
        .tiff({ tile: true, pyramid: true, compression: 'jpeg', tileWidth: 256, tileHeight: 256 })
        .toFile(path.join(dir, 'g.tif'));
      const { config } = loadConfig({ FILESYSTEM_PREFIX: `${dir}/`, URI_MAP: 'iiif=>IIIF' });
      core = await createServerCore(config, silentLogger, { worker: '3' });
    });
    afterAll(async () => {
      await core.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('answers health with 200 ok, and HEAD without a body', async () => {
      const res = await core.handler(req('/fcgi-bin/iipsrv.fcgi?HEALTH'));
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('ok\n');
      const head = await core.handler(req('/health', 'HEAD'));
      expect(head.body.length).toBe(0);
      expect(head.headers.find(([k]) => k === 'Content-Length')?.[1]).toBe('3');
    });

    it('counts requests by protocol, cache tiers, renders and status classes', async () => {
      const tile = '/iiif/g.tif/0,0,300,300/150,/0/default.jpg';
      expect((await core.handler(req(tile))).status).toBe(200);
      expect((await core.handler(req(tile))).status).toBe(200);
      expect((await core.handler(req('/iiif/none.tif/info.json'))).status).toBe(404);
      await core.handler(req('/fcgi-bin/iipsrv.fcgi'));
      const res = await core.handler(req('/fcgi-bin/iipsrv.fcgi?METRICS'));
      expect(res.headers.find(([k]) => k === 'Content-Type')?.[1]).toBe('text/plain; version=0.0.4; charset=utf-8');
      const s = parsePrometheus(res.body.toString());
      expect(sumOf(s, 'iipsrv_requests_total', { protocol: 'IIIF', worker: '3' })).toBe(3);
      expect(sumOf(s, 'iipsrv_requests_total', { protocol: 'health' })).toBe(2);
      expect(sumOf(s, 'iipsrv_requests_total', { protocol: 'none' })).toBe(1);
      expect(sumOf(s, 'iipsrv_cache_hits_total', { tier: 'ram' })).toBe(1);
      expect(sumOf(s, 'iipsrv_cache_misses_total')).toBe(1);
      expect(sumOf(s, 'iipsrv_renders_total')).toBe(1);
      expect(sumOf(s, 'iipsrv_responses_total', { class: '4xx' })).toBe(1);
      expect(sumOf(s, 'iipsrv_request_duration_seconds_count')).toBe(6);
      expect(s.some((x) => x.name.startsWith('iipsrv_memcached_'))).toBe(false);
    });
  });
});
