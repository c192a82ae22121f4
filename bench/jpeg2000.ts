// `npm run bench:j2k`: JPEG 2000 decode times through the decoder module (not HTTP). Makes two
// 20000×20000 RGB JP2s once in .bench-data/ (a synthetic picture rendered by sharp, upscaled,
// with noise so that it does not compress to nothing; then opj_compress, tiled and untiled,
// RPCL with precincts, 3 layers) and prints medians of:
//   - a 256×256 tile at full resolution (target: ≤ 30 ms), random aligned positions;
//   - the whole lowest resolution level: first decode of the file in this process (it builds
//     the packet index, ./decoders/jpeg2000/sparse.ts), cold (a newly opened image whose index
//     is built: the level itself is decoded), evicted (the same image still open, its decoded
//     level dropped from the cache: how a server meets it) and cached (the decoder keeps small
//     levels whole: ./decoders/level-cache.ts) (target: ≤ 10 ms);
//   - opening the file (structure parse).
// Wall-clock times depend on the machine's load, so the process CPU time is printed as well.
// Options: J2K_BENCH_SIZE (default 20000), J2K_BENCH_RUNS (default 40), IIPSRV_J2K_BACKEND.
// The opj_compress commands are printed when the files are made.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, writeSync, closeSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { clearLevelCache, jpeg2000Backend, jpeg2000Decoder } from '../decoders/jpeg2000/index.js';
import { packageRoot } from '../decoders/jpeg2000/native.js';
import { decodedCache } from '../decoders/level-cache.js';

const SIZE = Number(process.env.J2K_BENCH_SIZE ?? 20000);
const RUNS = Number(process.env.J2K_BENCH_RUNS ?? 40);
const ROOT = packageRoot() ?? process.cwd();
const DATA = join(ROOT, '.bench-data');

const FILES = [
  {
    name: `j2k-tiled-${SIZE}.jp2`,
    args: ['-t', '1024,1024', '-n', '8', '-c', '[256,256],[256,256],[128,128]', '-p', 'RPCL', '-r', '40,20,10', '-PLT', '-TLM'],
  },
  { name: `j2k-untiled-${SIZE}.jp2`, args: ['-n', '8', '-c', '[256,256],[256,256],[128,128]', '-p', 'RPCL', '-r', '40,20,10', '-PLT'] },
];

async function makeSource(ppm: string): Promise<void> {
  const small = Math.max(256, Math.round(SIZE / 8));
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${small}" height="${small}">
    <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#1d3b8a"/><stop offset="0.5" stop-color="#e8c15a"/><stop offset="1" stop-color="#8a1d4b"/></linearGradient></defs>
    <rect width="100%" height="100%" fill="url(#g)"/>
    ${Array.from({ length: 60 }, (_, i) => `<circle cx="${(i * 397) % small}" cy="${(i * 631) % small}" r="${20 + ((i * 53) % 120)}" fill="hsl(${(i * 47) % 360},60%,50%)" stroke="#111" stroke-width="3"/>`).join('')}
  </svg>`;
  const noise = await sharp({
    create: { width: 512, height: 512, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 24 } },
  })
    .png()
    .toBuffer();
  const raw = await sharp(Buffer.from(svg))
    .removeAlpha()
    .resize(SIZE, SIZE, { kernel: 'cubic' })
    .composite([{ input: noise, tile: true, blend: 'soft-light' }])
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (raw.info.channels !== 3) throw new Error(`expected RGB, got ${raw.info.channels} channels`);
  const fd = openSync(ppm, 'w');
  try {
    writeSync(fd, Buffer.from(`P6\n${SIZE} ${SIZE}\n255\n`, 'latin1'));
    for (let off = 0; off < raw.data.length; off += 1 << 26) writeSync(fd, raw.data, off, Math.min(1 << 26, raw.data.length - off));
  } finally {
    closeSync(fd);
  }
}

async function ensureFiles(): Promise<void> {
  mkdirSync(DATA, { recursive: true });
  const missing = FILES.filter((f) => !existsSync(join(DATA, f.name)));
  if (missing.length === 0) return;
  const ppm = join(DATA, `j2k-src-${SIZE}.ppm`);
  if (!existsSync(ppm)) {
    console.log(`making ${SIZE}×${SIZE} source with sharp…`);
    await makeSource(ppm);
  }
  for (const f of missing) {
    const args = ['-i', ppm, '-o', join(DATA, f.name), ...f.args, '-threads', '2'];
    console.log(`$ opj_compress ${args.join(' ')}`);
    const t = performance.now();
    execFileSync('opj_compress', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    console.log(`  ${((performance.now() - t) / 1000).toFixed(0)} s`);
  }
  rmSync(ppm, { force: true });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function p90(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length * 0.9)];
}

/** Deterministic pseudo-random numbers (positions must not depend on the run). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

type Sample = { wall: number; cpu: number };

/** Wall-clock and process CPU time (all threads) of one call, in ms. */
async function timed(fn: () => Promise<unknown>): Promise<Sample> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000 };
}

/** `n` samples of `run`, after `skip` runs that are not kept (warming up). */
async function samples(n: number, skip: number, run: () => Promise<Sample>): Promise<Sample[]> {
  const out: Sample[] = [];
  for (let i = 0; i < skip + n; i++) {
    const t = await run();
    if (i >= skip) out.push(t);
  }
  return out;
}

function stats(xs: Sample[]): string {
  return `${median(xs.map((x) => x.wall)).toFixed(1)} / ${p90(xs.map((x) => x.wall)).toFixed(1)} / ${median(xs.map((x) => x.cpu)).toFixed(1)}`;
}

async function main(): Promise<void> {
  const { backend, reason } = jpeg2000Backend();
  console.log(`backend: ${backend ?? 'none'}${reason ? ` (${reason})` : ''}; runs: ${RUNS}; load average ${os.loadavg()[0].toFixed(1)}`);
  await ensureFiles();
  const rows: string[][] = [
    ['file', 'open', 'tile 256² level 0', 'lowest level, first', 'lowest level, cold', 'lowest level, evicted', 'lowest level, cached'],
  ];
  for (const f of FILES) {
    const path = join(DATA, f.name);
    const opens = await samples(10, 0, () => timed(() => jpeg2000Decoder.open(path)));
    const d = await jpeg2000Decoder.open(path);
    const l0 = d.info.levels[0];
    const rnd = lcg(42);
    // The first reads warm the page cache.
    const tiles = await samples(RUNS, 3, () => {
      const col = Math.floor(rnd() * Math.ceil(l0.width / 256));
      const row = Math.floor(rnd() * Math.ceil(l0.height / 256));
      const rect = { x: col * 256, y: row * 256, width: Math.min(256, l0.width - col * 256), height: Math.min(256, l0.height - row * 256) };
      return timed(() => d.readRegion(0, rect));
    });
    const last = d.info.levels.length - 1;
    const ll = d.info.levels[last];
    const whole = { x: 0, y: 0, width: ll.width, height: ll.height };
    /** One decode of the lowest level by a newly opened decoder. */
    const fresh = async (): Promise<Sample> => {
      const dec = await jpeg2000Decoder.open(path);
      try {
        return await timed(() => dec.readRegion(last, whole));
      } finally {
        await dec.close();
      }
    };
    // First: nothing known about the file (no persisted index, IIPSRV_J2K_INDEX_DIR unset).
    const first = await samples(3, 1, () => {
      clearLevelCache();
      return fresh();
    });
    // Cold: a new decoder each time, so the whole-level cache is empty.
    const cold = await samples(RUNS, 2, fresh);
    // Evicted: the image stays open (as in the server's image registry) and only its decoded
    // level has left the cache, which is how a server meets an uncached lowest level.
    const evicted = await samples(RUNS, 2, () => {
      decodedCache.clear();
      return timed(() => d.readRegion(last, whole));
    });
    const corner = { x: 0, y: 0, width: Math.min(256, ll.width), height: Math.min(256, ll.height) };
    const warm = await samples(RUNS, 1, () => timed(() => d.readRegion(last, corner)));
    rows.push([
      `${f.name} (lowest ${ll.width}×${ll.height})`,
      stats(opens),
      stats(tiles),
      stats(first),
      stats(cold),
      stats(evicted),
      stats(warm),
    ]);
    await d.close();
  }
  console.log('times in ms: median wall / p90 wall / median CPU (all threads)');
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join('  '));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
