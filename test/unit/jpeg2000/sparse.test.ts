// Sparse-codestream region decodes (decoders/jpeg2000/sparse.ts): for untiled and few-tile
// files made here with opj_compress (RPCL, LRCP, PCRL, CPRL; with and without PLT; precincts;
// SOP/EPH; lossless and lossy with layers), every region read through the sparse path equals
// opj_decompress -r R -l L -d x0,y0,x1,y1 of the original file (exactly when lossless, PSNR > 40 dB
// otherwise), and the sparse codestream carries only a fraction of the packets.

import { execFile } from 'node:child_process';
import { mkdtemp, readdir, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawImage } from '../../../decoders/decoder.js';
import { jpeg2000Decoder, type Jpeg2000Decoder } from '../../../decoders/jpeg2000/index.js';
import { loadNativeAddon } from '../../../decoders/jpeg2000/native.js';
import { clearSparseIndexes, SparseCodestreams, type SparseStats } from '../../../decoders/jpeg2000/sparse.js';
import type { Rect } from '../../../src/core/view.js';
import { IndexStore } from '../../../src/jpeg2000/index-store.js';
import { makeJ2kSource, makeYccFixtures, opjDecompress, pnmBytes, psnr } from '../../fixtures/make-jp2.js';

const run = promisify(execFile);
const W = 1100;
const H = 900;

interface Fixture {
  readonly path: string;
  readonly lossless: boolean;
}

const SPECS: ReadonlyArray<{ name: string; args: string[]; lossless: boolean }> = [
  { name: 'rpcl-plt.jp2', args: ['-p', 'RPCL', '-n', '5', '-c', '[64,64],[64,64],[32,32]', '-b', '32,32', '-PLT'], lossless: true },
  { name: 'rpcl-noplt.j2k', args: ['-p', 'RPCL', '-n', '6', '-c', '[128,128],[64,64]'], lossless: true },
  { name: 'lrcp-plt-layers.jp2', args: ['-p', 'LRCP', '-n', '5', '-c', '[64,64]', '-r', '40,20,10', '-I', '-PLT'], lossless: false },
  { name: 'lrcp-noplt.jp2', args: ['-p', 'LRCP', '-n', '4', '-c', '[128,128]', '-r', '30,10,1'], lossless: false },
  { name: 'rpcl-sop-eph.jp2', args: ['-p', 'RPCL', '-n', '5', '-c', '[64,64]', '-SOP', '-EPH', '-PLT'], lossless: true },
  { name: 'rpcl-sop-eph-noplt.j2k', args: ['-p', 'RPCL', '-n', '5', '-c', '[64,64]', '-SOP', '-EPH', '-r', '20,5', '-I'], lossless: false },
  { name: 'pcrl-lossy.jp2', args: ['-p', 'PCRL', '-n', '5', '-c', '[64,64]', '-r', '50,25,12', '-I'], lossless: false },
  { name: 'cprl-eph.jp2', args: ['-p', 'CPRL', '-n', '4', '-c', '[32,32]', '-b', '16,16', '-EPH'], lossless: true },
  { name: 'rlcp-origin.j2k', args: ['-p', 'RLCP', '-n', '5', '-c', '[64,64]', '-d', '37,21'], lossless: true },
  { name: 'tiled4-rpcl.jp2', args: ['-p', 'RPCL', '-n', '5', '-c', '[64,64]', '-t', '600,500', '-PLT'], lossless: true },
  // 20 tiles of 256²: the lowest level (level 3) is served as one merged tile.
  { name: 'tiled20-rpcl.jp2', args: ['-p', 'RPCL', '-n', '4', '-c', '[64,64]', '-t', '256,256', '-PLT'], lossless: true },
  {
    name: 'tiled20-lrcp-lossy.jp2',
    args: ['-p', 'LRCP', '-n', '4', '-c', '[64,64]', '-t', '256,256', '-r', '40,20,10', '-I'],
    lossless: false,
  },
];

let dir: string;
const files: Record<string, Fixture> = {};
const open: Jpeg2000Decoder[] = [];
let saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  saved = { sparse: process.env.IIPSRV_J2K_SPARSE, cache: process.env.IIPSRV_J2K_CACHE_LEVEL_PIXELS };
  process.env.IIPSRV_J2K_SPARSE = 'always';
  process.env.IIPSRV_J2K_CACHE_LEVEL_PIXELS = '0';
  dir = await mkdtemp(join(tmpdir(), 'j2k-sparse-'));
  const rgb = await makeJ2kSource(W, H);
  // Noise, so that the code-blocks are not empty and the lossy layers differ.
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.max(0, Math.min(255, rgb[i] + (((i * 2654435761) >>> 24) % 17) - 8));
  const ppm = join(dir, 'src.ppm');
  await writeFile(ppm, pnmBytes({ width: W, height: H, channels: 3, bits: 8, samples: new Uint8Array(rgb) }));
  await Promise.all(
    SPECS.map(async (s) => {
      const path = join(dir, s.name);
      await run('opj_compress', ['-i', ppm, '-o', path, ...s.args]);
      files[s.name] = { path, lossless: s.lossless };
    }),
  );
}, 120_000);

afterAll(async () => {
  await Promise.all(open.map((d) => d.close()));
  if (dir) await rm(dir, { recursive: true, force: true });
  for (const [k, env] of [
    ['sparse', 'IIPSRV_J2K_SPARSE'],
    ['cache', 'IIPSRV_J2K_CACHE_LEVEL_PIXELS'],
  ] as const) {
    if (saved[k] === undefined) delete process.env[env];
    else process.env[env] = saved[k];
  }
});

async function dec(name: string): Promise<Jpeg2000Decoder> {
  const d = (await jpeg2000Decoder.open(files[name].path, { maxLayers: -1 })) as Jpeg2000Decoder;
  open.push(d);
  return d;
}

function areaOf(x0: number, y0: number, k: number, r: Rect): { x0: number; y0: number; x1: number; y1: number } {
  const s = 2 ** k;
  const ox = Math.ceil(x0 / s);
  const oy = Math.ceil(y0 / s);
  return {
    x0: Math.max(x0, (ox + r.x) * s),
    y0: Math.max(y0, (oy + r.y) * s),
    x1: Math.min(x0 + W, (ox + r.x + r.width) * s),
    y1: Math.min(y0 + H, (oy + r.y + r.height) * s),
  };
}

let tag = 0;
async function compare(name: string, level: number, rect: Rect, layers?: number): Promise<void> {
  const f = files[name];
  const d = await dec(name);
  const raw: RawImage = await d.readRegion(level, rect, layers === undefined ? undefined : { layers });
  const origin = name.includes('origin') ? { x: 37, y: 21 } : { x: 0, y: 0 };
  const { image, command } = await opjDecompress(f.path, dir, {
    reduce: level,
    layers,
    area: areaOf(origin.x, origin.y, level, rect),
    channels: 3,
    tag: `sparse-${tag++}`,
  });
  expect({ w: raw.width, h: raw.height, c: raw.channels }, command).toEqual({ w: image.width, h: image.height, c: image.channels });
  const ours = new Uint8Array(raw.data);
  if (f.lossless) {
    expect(Buffer.from(ours).equals(Buffer.from(image.samples as Uint8Array)), command).toBe(true);
  } else {
    expect(psnr(ours, image.samples, 255), command).toBeGreaterThan(40);
  }
  // The sparse path served it.
  expect(d['sparse'], name).toBeDefined();
  expect(await d.sparseIndex(), name).not.toBeNull();
}

describe('sparse codestream decodes equal opj_decompress', () => {
  const regions: Array<[number, Rect, number?]> = [
    [0, { x: 0, y: 0, width: 256, height: 256 }],
    [0, { x: 421, y: 333, width: 256, height: 256 }],
    [0, { x: 900, y: 700, width: 200, height: 200 }],
    [0, { x: 517, y: 10, width: 64, height: 300 }, 1],
    [1, { x: 100, y: 77, width: 256, height: 200 }],
    [1, { x: 300, y: 200, width: 250, height: 250 }, 2],
    [2, { x: 60, y: 40, width: 100, height: 100 }],
    [3, { x: 0, y: 0, width: 138, height: 113 }],
    [3, { x: 30, y: 20, width: 60, height: 50 }, 2],
  ];
  for (const spec of SPECS) {
    for (const [level, rect, layers] of regions) {
      it(`${spec.name} level ${level} ${rect.x},${rect.y} ${rect.width}×${rect.height}${layers ? ` layers ${layers}` : ''}`, async () => {
        await compare(spec.name, level, rect, layers);
      });
    }
  }

  it('builds the index once per open image and keeps only the packets a region needs', async () => {
    const d = await dec('rpcl-plt.jp2');
    await d.readRegion(0, { x: 500, y: 500, width: 64, height: 64 });
    const first = d.sparseIndex();
    await d.readRegion(0, { x: 10, y: 10, width: 64, height: 64 });
    expect(d.sparseIndex()).toBe(first);
    const sc = await SparseCodestreams.open(files['rpcl-plt.jp2'].path);
    const stats: SparseStats = { kept: 0, packets: 0, readBytes: 0, reads: 0 };
    const cs = await sc.build({ x0: 500, y0: 500, x1: 564, y1: 564 }, 0, 0, stats);
    expect(stats.kept).toBeGreaterThan(0);
    // The codestream is cut down to the precincts around the region (SIZ origin moved), and
    // holds a fraction of the image's packets.
    expect(stats.kept).toBeLessThanOrEqual(stats.packets);
    expect(stats.packets).toBeLessThan(sc.index.data.lengths.length / 4);
    expect(cs.data.readUInt32BE(16)).toBeGreaterThan(0); // XOsiz
    expect(cs.data.readUInt16BE(0)).toBe(0xff4f);
    expect(cs.data.readUInt16BE(cs.data.length - 2)).toBe(0xffd9);
    expect(cs.reduce).toBe(0);
  });

  it('at a reduction, builds the codestream of the reduced image (fewer levels, SIZ divided)', async () => {
    const sc = await SparseCodestreams.open(files['rpcl-plt.jp2'].path);
    const full = await sc.build({ x0: 0, y0: 0, x1: W, y1: H }, 0, 0);
    const cs = await sc.build({ x0: 0, y0: 0, x1: W, y1: H }, 3, 0);
    expect(cs.reduce).toBe(0);
    expect(cs.area).toEqual({ x0: 0, y0: 0, x1: Math.ceil(W / 8), y1: Math.ceil(H / 8) });
    // SIZ (right after SOC): Xsiz, Ysiz; COD: 4 − 3 decomposition levels (-n 5 is 5 resolutions).
    expect([cs.data.readUInt16BE(2), cs.data.readUInt32BE(8), cs.data.readUInt32BE(12)]).toEqual([
      0xff51,
      Math.ceil(W / 8),
      Math.ceil(H / 8),
    ]);
    const cod = cs.data.indexOf(Buffer.from([0xff, 0x52]));
    expect(cs.data[cod + 9]).toBe(1);
    expect(cs.data.length).toBeLessThan(full.data.length / 8);
    // The lowest level of 256² tiles: one tile (XTsiz = Xsiz) holding every tile's precincts.
    const twenty = await SparseCodestreams.open(files['tiled20-rpcl.jp2'].path);
    const low = await twenty.build({ x0: 0, y0: 0, x1: W, y1: H }, 3, 0);
    expect([low.reduce, low.data.readUInt32BE(8), low.data.readUInt32BE(24)]).toEqual([0, Math.ceil(W / 8), Math.ceil(W / 8)]);
    // Tiles of 600×500 cannot be divided by 2^3: the full form serves that reduction.
    const tiled = await SparseCodestreams.open(files['tiled4-rpcl.jp2'].path);
    expect((await tiled.build({ x0: 0, y0: 0, x1: W, y1: H }, 3, 0)).reduce).toBe(3);
    expect((await tiled.build({ x0: 0, y0: 0, x1: W, y1: H }, 2, 0)).reduce).toBe(0);
  });

  it('persists the index in a folder and loads it back', async () => {
    const where = join(dir, 'index');
    const a = await SparseCodestreams.open(files['lrcp-noplt.jp2'].path, where);
    const b = await SparseCodestreams.open(files['lrcp-noplt.jp2'].path, where);
    expect([a.loaded, b.loaded]).toEqual([false, true]);
    expect(Buffer.from(b.index.data.lengths.buffer).equals(Buffer.from(a.index.data.lengths.buffer))).toBe(true);
    const area = { x0: 300, y0: 200, x1: 556, y1: 456 };
    expect((await b.build(area, 0, 2)).data.equals((await a.build(area, 0, 2)).data)).toBe(true);
  });

  it('every file reads exactly the same through the sparse and the ordinary path (lossy ones too)', async () => {
    const rects: Array<[number, Rect, number?]> = [
      [0, { x: 640, y: 512, width: 256, height: 256 }],
      [0, { x: 127, y: 383, width: 131, height: 129 }],
      [0, { x: 1000, y: 850, width: 100, height: 50 }, 1],
      [1, { x: 200, y: 130, width: 128, height: 128 }],
      [2, { x: 70, y: 50, width: 64, height: 64 }, 2],
      // The whole level 3 (the lowest of the -n 4 files; one merged tile for the 20-tile ones).
      [3, { x: 0, y: 0, width: 138, height: 113 }],
    ];
    for (const spec of SPECS) {
      for (const [level, rect, layers] of rects) {
        const opts = layers === undefined ? undefined : { layers };
        process.env.IIPSRV_J2K_SPARSE = 'off';
        const want = await (await dec(spec.name)).readRegion(level, rect, opts);
        process.env.IIPSRV_J2K_SPARSE = 'always';
        const got = await (await dec(spec.name)).readRegion(level, rect, opts);
        expect(got.data.equals(want.data), `${spec.name} level ${level} ${JSON.stringify(rect)}`).toBe(true);
      }
    }
  });

  it('takes the index from a given store (the one JPIP uses): built once for both', async () => {
    const store = new IndexStore({ dir: '' });
    const path = files['lrcp-noplt.jp2'].path;
    const a = await SparseCodestreams.open(path, store);
    const real = await realpath(path);
    const st = await stat(real);
    const entry = await store.codestream(await store.target({ path: real, size: st.size, mtimeMs: st.mtimeMs }), 0);
    expect(entry.index).toBe(a.index);
    expect(store.stats.built).toBe(1);
  });

  it('keeps the index in OpenOptions.indexDir (the JPIP cache) and loads it in a new process', async () => {
    const where = join(dir, 'jpip-cache');
    const path = files['rpcl-plt.jp2'].path;
    const a = (await jpeg2000Decoder.open(path, { maxLayers: -1, indexDir: where })) as Jpeg2000Decoder;
    open.push(a);
    await a.readRegion(0, { x: 100, y: 100, width: 64, height: 64 });
    expect((await a.sparseIndex())!.loaded).toBe(false);
    expect((await readdir(where)).filter((f) => f.endsWith('-0.jpix'))).toHaveLength(1);
    clearSparseIndexes(); // as after a restart
    const b = (await jpeg2000Decoder.open(path, { maxLayers: -1, indexDir: where })) as Jpeg2000Decoder;
    open.push(b);
    const got = await b.readRegion(0, { x: 100, y: 100, width: 64, height: 64 });
    expect((await b.sparseIndex())!.loaded).toBe(true);
    const want = await a.readRegion(0, { x: 100, y: 100, width: 64, height: 64 });
    expect(got.data.equals(want.data)).toBe(true);
  });

  it('subsampled YCbCr (4:2:0) and sYCC files read the same through both paths', async () => {
    const ycc = await makeYccFixtures(dir);
    const rects: Array<[number, Rect]> = [
      [0, { x: 0, y: 0, width: 256, height: 256 }],
      [0, { x: 301, y: 177, width: 255, height: 251 }],
      [1, { x: 33, y: 17, width: 200, height: 150 }],
      [2, { x: 1, y: 1, width: 100, height: 80 }],
    ];
    for (const f of [ycc.sycc, ycc.ycc420]) {
      for (const [level, rect] of rects) {
        process.env.IIPSRV_J2K_SPARSE = 'off';
        const plain = (await jpeg2000Decoder.open(f.path)) as Jpeg2000Decoder;
        open.push(plain);
        const want = await plain.readRegion(level, rect);
        process.env.IIPSRV_J2K_SPARSE = 'always';
        const sparse = (await jpeg2000Decoder.open(f.path)) as Jpeg2000Decoder;
        open.push(sparse);
        const got = await sparse.readRegion(level, rect);
        expect(sparse['sparse'], f.name).toBeDefined();
        expect(got.data.equals(want.data), `${f.name} level ${level} ${JSON.stringify(rect)}`).toBe(true);
      }
    }
  });

  it('decodeBuffer rejects a damaged codestream and a non-buffer', async () => {
    const addon = loadNativeAddon().addon!;
    const opts = {
      format: 0,
      reduce: 0,
      layers: 0,
      x0: 0,
      y0: 0,
      x1: 0,
      y1: 0,
      components: 3,
      bits: 8,
      ycc: 0,
      threads: 1,
      bufferSize: 16384,
    } as const;
    await expect(addon.decodeBuffer!(Buffer.from([0xff, 0x4f, 0xff, 0x51, 0, 2]), opts)).rejects.toThrow();
    expect(() => addon.decodeBuffer!('x' as unknown as Buffer, opts)).toThrow(TypeError);
  });

  it('decodes large regions in bands on spare cores, byte for byte as in one piece', async () => {
    // N cores: N decodes of the same codestream, one per band, side by side; 1 core: one.
    const addon = loadNativeAddon().addon!;
    const real = addon.decodeBuffer!;
    let calls = 0;
    addon.decodeBuffer = (data, options) => {
      calls++;
      return real.call(addon, data, options);
    };
    const saved = process.env.IIPSRV_J2K_DECODE_CORES;
    try {
      const cases: Array<[string, number, Rect, number]> = [
        ['rpcl-plt.jp2', 1, { x: 0, y: 0, width: 550, height: 450 }, 2],
        ['lrcp-plt-layers.jp2', 2, { x: 3, y: 1, width: 270, height: 220 }, 2],
        ['rlcp-origin.j2k', 1, { x: 10, y: 7, width: 300, height: 301 }, 3],
        ['tiled20-rpcl.jp2', 2, { x: 0, y: 0, width: 275, height: 225 }, 2],
        ['tiled20-lrcp-lossy.jp2', 1, { x: 0, y: 33, width: 550, height: 417 }, 4],
        ['rpcl-plt.jp2', 0, { x: 100, y: 150, width: 700, height: 500 }, 2],
      ];
      for (const [name, level, rect, cores] of cases) {
        const read = async (c: number): Promise<{ data: Buffer; calls: number }> => {
          process.env.IIPSRV_J2K_DECODE_CORES = String(c);
          calls = 0;
          const raw = await (await dec(name)).readRegion(level, rect);
          return { data: raw.data, calls };
        };
        const one = await read(1);
        const many = await read(cores);
        const what = `${name} level ${level} ${JSON.stringify(rect)}`;
        expect([one.calls, many.calls], what).toEqual([1, cores]);
        expect(many.data.equals(one.data), what).toBe(true);
      }
      // Small regions are not split: the hand-off would cost more than it saves.
      process.env.IIPSRV_J2K_DECODE_CORES = '2';
      calls = 0;
      await (await dec('rpcl-plt.jp2')).readRegion(1, { x: 0, y: 0, width: 100, height: 100 });
      expect(calls).toBe(1);
    } finally {
      addon.decodeBuffer = real;
      if (saved === undefined) delete process.env.IIPSRV_J2K_DECODE_CORES;
      else process.env.IIPSRV_J2K_DECODE_CORES = saved;
    }
  });

  it('IIPSRV_J2K_SPARSE=off uses the file path', async () => {
    process.env.IIPSRV_J2K_SPARSE = 'off';
    try {
      const d = await dec('rpcl-plt.jp2');
      await d.readRegion(0, { x: 0, y: 0, width: 32, height: 32 });
      expect(d['sparse']).toBeUndefined();
    } finally {
      process.env.IIPSRV_J2K_SPARSE = 'always';
    }
  });
});
