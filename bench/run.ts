// `npm run bench`: wrk through nginx (keep-alive to the backend) against this server and, in
// the same run, against Debian's iipsrv (iipimage-server) when it is installed. Prints
// requests per second and p99 latency for both and their ratio. Then, in the same run:
// `--workers 2` against one process on the tile workloads, and the shared-Memcached hit path
// (tiles made by one instance, fetched from another whose RAM cache is off) against decoding
// every time and against RAM hits. The image is a 20000×15000 JPEG-tiled pyramidal TIFF made
// once with sharp and kept in .bench-data/.
// Each measured run follows a warm-up of the same workload with another random sequence (so that
// no measured request was made by the warm-up and sits in a response cache), for both servers.
// Options: BENCH_SECONDS (default 8), BENCH_WARMUP (seconds, default 5), BENCH_CONNECTIONS
// (default 16), BENCH_ONLY (a regular expression over workload names: only those, and only the
// comparison with iipsrv).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeSample } from '../scripts/make-sample.js';
import { parsePrometheus, sumOf } from '../src/metrics.js';
import { fetchMetrics } from '../src/status.js';
import { ROOT, requireTool, startIipsrv, startMemcached, startNginx, startUnderSpawnFcgi, type Running } from '../scripts/servers.js';

const W = 20000;
const H = 15000;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
/** Warm-up before each measured run: long enough for caches that fill over many requests. */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const ONLY = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY, 'i') : undefined;
const REFERENCE = '/usr/lib/iipimage-server/iipsrv.fcgi';

interface Result {
  rps: number;
  p99ms: number;
  errors: number;
}

interface Workload {
  name: string;
  /** Path and query after the host, or a Lua request() body that builds one. */
  path?: string;
  lua?: string;
}

function levelsLua(): string {
  // Level sizes follow sharp's pyramid (halving with floor, down to one tile).
  const levels: string[] = [];
  let w = W;
  let h = H;
  let sf = 1;
  for (;;) {
    levels.push(`{sf=${sf},w=${w},h=${h}}`);
    if (w <= 256 && h <= 256) break;
    w = Math.max(1, Math.floor(w / 2));
    h = Math.max(1, Math.floor(h / 2));
    sf *= 2;
  }
  return `local levels = {${levels.join(',')}}`;
}

const RANDOM_TILE_LUA = (fullRes: boolean): string => `
${levelsLua()}
init = function(args) math.randomseed(42 + (tonumber(args[1]) or 0)) end
request = function()
  local l = ${fullRes ? 'levels[1]' : 'levels[math.random(#levels)]'}
  local cols = math.ceil(l.w / 256)
  local rows = math.ceil(l.h / 256)
  local c = math.random(0, cols - 1)
  local r = math.random(0, rows - 1)
  local x = c * 256 * l.sf
  local y = r * 256 * l.sf
  local w = math.min(256 * l.sf, ${W} - x)
  local h = math.min(256 * l.sf, ${H} - y)
  local ow = math.min(256, l.w - c * 256)
  return wrk.format("GET", "/fcgi-bin/iipsrv.fcgi?IIIF=/bench.tif/" .. x .. "," .. y .. "," .. w .. "," .. h .. "/" .. ow .. ",/0/default.jpg")
end
`;

/**
 * Random tiles over all levels through IIP JTL, Zoomify and DeepZoom URLs, numbered as each
 * protocol numbers them (IIP: resolution 0 = smallest; Zoomify: level 0 = the largest level
 * that fits one tile; DeepZoom: level = IIP resolution + dzi_max − levels + 1, with DeepZoom's
 * own ceil-rounded level sizes).
 */
const PROTOCOL_TILE_LUA = (protocol: 'jtl' | 'zoomify' | 'deepzoom'): string => `
${levelsLua()}
init = function(args) math.randomseed(11 + (tonumber(args[1]) or 0)) end
local dzimax = math.ceil(math.log(math.max(${W}, ${H})) / math.log(2))
request = function()
  local i = math.random(#levels)
  local l = levels[i]
  local res = #levels - i
  local w, h = l.w, l.h
  if "${protocol}" == "deepzoom" then
    local L = res + dzimax - #levels + 1
    w = math.ceil(${W} / 2 ^ (dzimax - L))
    h = math.ceil(${H} / 2 ^ (dzimax - L))
  end
  local cols = math.ceil(w / 256)
  local rows = math.ceil(h / 256)
  local c = math.random(0, cols - 1)
  local r = math.random(0, rows - 1)
  if "${protocol}" == "jtl" then
    return wrk.format("GET", "/fcgi-bin/iipsrv.fcgi?FIF=/bench.tif&JTL=" .. res .. "," .. (r * cols + c))
  elseif "${protocol}" == "zoomify" then
    return wrk.format("GET", "/fcgi-bin/iipsrv.fcgi?Zoomify=/bench.tif/TileGroup0/" .. res .. "-" .. c .. "-" .. r .. ".jpg")
  else
    local L = res + dzimax - #levels + 1
    return wrk.format("GET", "/fcgi-bin/iipsrv.fcgi?DeepZoom=/bench.tif_files/" .. L .. "/" .. c .. "_" .. r .. ".jpg")
  end
end
`;

/**
 * Random regions of 512 to 8192 pixels a side (aspect 1:2 to 2:1) anywhere in the image, each
 * resized to 512 wide: the CVT road (level choice, region decode across tiles, resize, encode).
 */
const RANDOM_REGION_LUA = `
init = function(args) math.randomseed(7 + (tonumber(args[1]) or 0)) end
request = function()
  local w = math.random(512, 8192)
  local h = math.floor(w * (0.5 + 1.5 * math.random()))
  if h > ${H} then h = ${H} end
  local x = math.random(0, ${W} - w)
  local y = math.random(0, ${H} - h)
  return wrk.format("GET", "/fcgi-bin/iipsrv.fcgi?IIIF=/bench.tif/" .. x .. "," .. y .. "," .. w .. "," .. h .. "/512,/0/default.jpg")
end
`;

const WORKLOADS: Workload[] = [
  { name: 'same tile repeated (cached)', path: '/fcgi-bin/iipsrv.fcgi?IIIF=/bench.tif/2560,2560,256,256/256,/0/default.jpg' },
  { name: 'random tiles, all levels', lua: RANDOM_TILE_LUA(false) },
  { name: 'random IIIF tiles, full resolution', lua: RANDOM_TILE_LUA(true) },
  { name: 'random IIP JTL tiles, all levels', lua: PROTOCOL_TILE_LUA('jtl') },
  { name: 'random Zoomify tiles, all levels', lua: PROTOCOL_TILE_LUA('zoomify') },
  { name: 'random DeepZoom tiles, all levels', lua: PROTOCOL_TILE_LUA('deepzoom') },
  { name: 'random regions resized to 512,', lua: RANDOM_REGION_LUA },
  { name: 'info.json', path: '/fcgi-bin/iipsrv.fcgi?IIIF=/bench.tif/info.json' },
];

/** 256 regions that straddle stored tiles, so making one means decoding and encoding. */
const SHARED_COLS = 16;
const SHARED_TILES = SHARED_COLS * 16;
const sharedPath = (k: number): string =>
  `/fcgi-bin/iipsrv.fcgi?IIIF=/bench.tif/${128 + (k % SHARED_COLS) * 256},${128 + Math.floor(k / SHARED_COLS) * 256},256,256/256,/0/default.jpg`;
const SHARED_LUA = `
local i = 0
request = function()
  local k = i % ${SHARED_TILES}
  i = i + 1
  local x = 128 + (k % ${SHARED_COLS}) * 256
  local y = 128 + math.floor(k / ${SHARED_COLS}) * 256
  return wrk.format("GET", "/fcgi-bin/iipsrv.fcgi?IIIF=/bench.tif/" .. x .. "," .. y .. ",256,256/256,/0/default.jpg")
end
`;

/**
 * One wrk run. Scripted workloads take `seed` as their script argument: warm-ups use another
 * sequence than the measured runs, so that a measured request is never one the warm-up left in
 * a response cache (both servers see the same measured sequence).
 */
function wrk(port: number, w: Workload, dir: string, seconds = SECONDS, seed = 0): Result {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency'];
  if (w.lua) {
    const script = path.join(dir, `${w.name.replace(/\W+/g, '_')}.lua`);
    fs.writeFileSync(script, w.lua);
    args.push('-s', script);
  }
  args.push(`http://127.0.0.1:${port}${w.path ?? '/'}`);
  if (w.lua) args.push('--', String(seed));
  const run = spawnSync('wrk', args, { encoding: 'utf8' });
  const out = run.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const p99ms = p99 ? Number(p99[1]) * (p99[2] === 'us' ? 0.001 : p99[2] === 's' ? 1000 : 1) : NaN;
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sockErr ? sockErr.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  return { rps, p99ms, errors };
}

const fmt = (r: Result | undefined): [string, string] =>
  r ? [`${r.rps.toFixed(0)}${r.errors ? ` (${r.errors} err)` : ''}`, `${r.p99ms.toFixed(2)} ms`] : ['-', '-'];

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i])).join('  ')}\n`);
}

async function main(): Promise<void> {
  requireTool('wrk');
  requireTool('nginx', ['nginx', '/usr/sbin/nginx']);
  const data = path.join(ROOT, '.bench-data');
  fs.mkdirSync(data, { recursive: true });
  const image = path.join(data, 'bench.tif');
  if (!fs.existsSync(image)) {
    process.stdout.write(`making ${W}×${H} pyramidal JPEG TIFF (once)…\n`);
    await makeSample(image, W, H);
  }
  const env = { FILESYSTEM_PREFIX: `${data}/`, MAX_IMAGE_CACHE_SIZE: '10', VERBOSITY: '0', LOGFILE: '/dev/null' };
  const started: Running[] = [];
  try {
    const ours = await startIipsrv(env);
    started.push(ours);
    const oursNginx = await startNginx([ours.port]);
    started.push(oursNginx);
    let refPort: number | undefined;
    if (fs.existsSync(REFERENCE)) {
      const ref = await startUnderSpawnFcgi(env, [REFERENCE]);
      started.push(ref);
      // As iipsrv's own documentation configures nginx: one connection per request.
      const refNginx = await startNginx([ref.port], 'nginx.conf', { keepAlive: false });
      started.push(refNginx);
      refPort = refNginx.port;
    } else {
      process.stdout.write(`(${REFERENCE} not installed: apt-get install iipimage-server for the reference)\n`);
    }
    process.stdout.write(`\nwrk -t1 -c${CONNECTIONS} -d${SECONDS}s through nginx; image ${W}×${H} JPEG-tiled TIFF\n\n`);
    const rows: string[][] = [['workload', 'ours req/s', 'ours p99', 'iipsrv req/s', 'iipsrv p99', 'ratio']];
    for (const w of WORKLOADS.filter((x) => !ONLY || ONLY.test(x.name))) {
      // Warm both the same way, then measure alternately so background load hits both.
      wrk(oursNginx.port, w, data, WARMUP, 1000);
      if (refPort) wrk(refPort, w, data, WARMUP, 1000);
      const a = wrk(oursNginx.port, w, data);
      const b = refPort ? wrk(refPort, w, data) : undefined;
      rows.push([w.name, ...fmt(a), ...fmt(b), b && b.rps > 0 ? `${(a.rps / b.rps).toFixed(2)}×` : '-']);
    }
    printTable(rows);
    if (ONLY) return;

    // --workers 2 against one process, same image, same nginx set-up.
    const two = await startIipsrv(env, ['--workers', '2']);
    started.push(two);
    const twoNginx = await startNginx([two.port]);
    started.push(twoNginx);
    process.stdout.write(`\n--workers 2 against 1 (${os.availableParallelism()} cores; wrk and nginx run on the same machine)\n\n`);
    const wrows: string[][] = [['workload', '1 worker req/s', 'p99', '2 workers req/s', 'p99', 'ratio']];
    for (const w of WORKLOADS.filter((x) => x.name !== 'info.json')) {
      wrk(oursNginx.port, w, data, WARMUP, 1000);
      wrk(twoNginx.port, w, data, WARMUP, 1000);
      const a = wrk(oursNginx.port, w, data);
      const b = wrk(twoNginx.port, w, data);
      wrows.push([w.name, ...fmt(a), ...fmt(b), a.rps > 0 ? `${(b.rps / a.rps).toFixed(2)}×` : '-']);
    }
    printTable(wrows);

    // Shared Memcached: A makes the tiles, B (RAM cache off) fetches them from Memcached.
    const mc = await startMemcached();
    started.push(mc);
    const shared = { ...env, MEMCACHED_SERVERS: `127.0.0.1:${mc.port}` };
    const maker = await startIipsrv(shared);
    started.push(maker);
    const fetcher = await startIipsrv({ ...shared, MAX_IMAGE_CACHE_SIZE: '0' });
    started.push(fetcher);
    const nocache = await startIipsrv({ ...env, MAX_IMAGE_CACHE_SIZE: '0' });
    started.push(nocache);
    const [makerNginx, fetcherNginx, nocacheNginx] = [
      await startNginx([maker.port]),
      await startNginx([fetcher.port]),
      await startNginx([nocache.port]),
    ];
    started.push(makerNginx, fetcherNginx, nocacheNginx);
    for (let k = 0; k < SHARED_TILES; k++) {
      const res = await fetch(`http://127.0.0.1:${makerNginx.port}${sharedPath(k)}`);
      if (res.status !== 200) throw new Error(`warm-up of ${sharedPath(k)}: ${res.status}`);
      await res.arrayBuffer();
    }
    await new Promise((r) => setTimeout(r, 200)); // the last fire-and-forget writes
    const shw: Workload = { name: `${SHARED_TILES} regions in turn`, lua: SHARED_LUA };
    process.stdout.write(`\nshared Memcached hit path: ${SHARED_TILES} 256×256 regions straddling stored tiles, made by instance A\n\n`);
    wrk(nocacheNginx.port, shw, data, 2);
    const made = wrk(nocacheNginx.port, shw, data);
    const fromMc = wrk(fetcherNginx.port, shw, data);
    const fromRam = wrk(makerNginx.port, shw, data);
    const m = parsePrometheus(await fetchMetrics({ bind: `127.0.0.1:${fetcher.port}` }));
    const hits = sumOf(m, 'iipsrv_cache_hits_total', { tier: 'memcached' });
    const misses = sumOf(m, 'iipsrv_cache_misses_total');
    printTable([
      ['path', 'req/s', 'p99', 'vs decoding'],
      ['decode + encode every time (no cache)', ...fmt(made), '1.00×'],
      [
        `instance B from Memcached (${hits} hits, ${misses} misses)`,
        ...fmt(fromMc),
        made.rps > 0 ? `${(fromMc.rps / made.rps).toFixed(2)}×` : '-',
      ],
      ['instance A from its RAM', ...fmt(fromRam), made.rps > 0 ? `${(fromRam.rps / made.rps).toFixed(2)}×` : '-'],
    ]);
  } finally {
    for (const s of started.reverse()) await s.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
