// The WebAssembly fallback (IIPSRV_J2K_BACKEND=wasm, @cornerstonejs/codec-openjpeg): whole-level
// decode + crop equals opj_decompress, quality layers, the pixel limit (413), what it refuses
// (501), corrupt files, and silence on stdout.

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { clearLevelCache, jpeg2000Backend, jpeg2000Decoder, type Jpeg2000Decoder } from '../../../decoders/jpeg2000/index.js';
import { ImageServerError } from '../../../src/core/errors.js';
import type { Rect } from '../../../src/core/view.js';
import { opjDecompress, psnr } from '../../fixtures/make-jp2.js';
import { setupJp2Fixtures, type Jp2FixtureSet } from './helpers.js';

let fx: Jp2FixtureSet;
const saved = { backend: process.env.IIPSRV_J2K_BACKEND, limit: process.env.IIPSRV_J2K_WASM_MAX_PIXELS };

beforeAll(async () => {
  process.env.IIPSRV_J2K_BACKEND = 'wasm';
  fx = await setupJp2Fixtures();
}, 60_000);
afterAll(async () => {
  for (const [k, v] of [
    ['IIPSRV_J2K_BACKEND', saved.backend],
    ['IIPSRV_J2K_WASM_MAX_PIXELS', saved.limit],
  ] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  clearLevelCache();
  await fx?.cleanup();
});

async function dec(name: string, maxLayers = -1): Promise<Jpeg2000Decoder> {
  return (await jpeg2000Decoder.open(fx.files[name].path, { maxLayers })) as Jpeg2000Decoder;
}

let n = 0;
async function reference(name: string, level: number, r: Rect, layers?: number): Promise<Uint8Array | Uint16Array> {
  const f = fx.files[name];
  const s = 2 ** level;
  const area = { x0: r.x * s, y0: r.y * s, x1: Math.min(f.width, (r.x + r.width) * s), y1: Math.min(f.height, (r.y + r.height) * s) };
  return (await opjDecompress(f.path, fx.dir, { reduce: level, layers, area, channels: f.channels, tag: `wasm-${n++}` })).image.samples;
}

describe('WebAssembly fallback', () => {
  it('is chosen by IIPSRV_J2K_BACKEND=wasm and announced', async () => {
    expect(jpeg2000Backend().backend).toBe('wasm');
    expect(jpeg2000Decoder.notice?.()).toMatch(/WebAssembly fallback/);
    expect((await dec('rgb-lrcp.jp2')).jpeg2000.backend).toBe('wasm');
  });

  it('RGB regions at full and reduced resolution equal opj_decompress', async () => {
    const d = await dec('rgb-lrcp.jp2');
    for (const [level, r] of [
      [0, { x: 256, y: 0, width: 256, height: 256 }],
      [1, { x: 10, y: 20, width: 300, height: 200 }],
      [2, { x: 0, y: 0, width: 175, height: 125 }],
    ] as Array<[number, Rect]>) {
      const raw = await d.readRegion(level, r);
      expect([raw.width, raw.height, raw.channels, raw.bitsPerSample]).toEqual([r.width, r.height, 3, 8]);
      expect(raw.data.equals(Buffer.from(await reference('rgb-lrcp.jp2', level, r)))).toBe(true);
    }
  });

  it('16-bit grey', async () => {
    const d = await dec('grey16.jp2');
    const r = { x: 300, y: 250, width: 256, height: 250 };
    const raw = await d.readRegion(0, r);
    expect(raw.bitsPerSample).toBe(16);
    const ours = new Uint16Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength / 2);
    expect(
      Buffer.from(ours.buffer, ours.byteOffset, ours.byteLength).equals(Buffer.from((await reference('grey16.jp2', 0, r)).buffer)),
    ).toBe(true);
  });

  it('quality layers', async () => {
    const d = await dec('rgb-pcrl-lossy.jp2');
    const r = { x: 0, y: 0, width: 256, height: 256 };
    const one = await d.readRegion(0, r, { layers: 1 });
    expect(psnr(one.data, await reference('rgb-pcrl-lossy.jp2', 0, r, 1), 255)).toBeGreaterThan(40);
    const two = await d.readRegion(0, r, { layers: 2 });
    expect(two.data.equals(one.data)).toBe(false);
  });

  it('serves the tiles of a small image from one decoded level', async () => {
    clearLevelCache();
    const d = await dec('rgb-tiled-rlcp.j2k');
    const t0 = performance.now();
    await d.readRegion(0, { x: 0, y: 0, width: 256, height: 256 });
    const first = performance.now() - t0;
    const t1 = performance.now();
    const tiles = await Promise.all([256, 512].map((x) => d.readRegion(0, { x, y: 256, width: Math.min(256, 700 - x), height: 244 })));
    const next = performance.now() - t1;
    expect(tiles[1].width).toBe(188);
    expect(next).toBeLessThan(first);
  });

  it('refuses levels above the pixel limit with 413, smaller levels still work', async () => {
    process.env.IIPSRV_J2K_WASM_MAX_PIXELS = '100000';
    try {
      const d = await dec('grey8.jp2');
      const err = (await d.readRegion(0, { x: 0, y: 0, width: 10, height: 10 }).catch((e: unknown) => e)) as ImageServerError;
      expect(err).toBeInstanceOf(ImageServerError);
      expect([err.code, err.status]).toEqual(['TOO_LARGE', 413]);
      expect(err.message).toMatch(/WebAssembly/);
      const small = await d.readRegion(2, { x: 0, y: 0, width: 175, height: 125 });
      expect(small.width).toBe(175);
    } finally {
      delete process.env.IIPSRV_J2K_WASM_MAX_PIXELS;
    }
  });

  it('refuses what it cannot decode correctly with 501', async () => {
    const d = await dec('origin.j2k');
    await expect(d.readRegion(0, { x: 0, y: 0, width: 10, height: 10 })).rejects.toMatchObject({ code: 'NOT_IMPLEMENTED', status: 501 });
    const rgb16 = await dec('rgb16.j2k');
    await expect(rgb16.readRegion(0, { x: 0, y: 0, width: 10, height: 10 })).rejects.toMatchObject({ code: 'NOT_IMPLEMENTED' });
  });

  it('a truncated file is a CORRUPT_IMAGE error, and nothing reaches stdout', async () => {
    const buf = await readFile(fx.files['rgb-lrcp.jp2'].path);
    const path = join(fx.dir, 'hidden-wasm-trunc.jp2');
    await writeFile(path, buf.subarray(0, Math.floor(buf.length / 2)));
    const write = vi.spyOn(process.stdout, 'write');
    try {
      const d = (await jpeg2000Decoder.open(path)) as Jpeg2000Decoder;
      const err = (await d.readRegion(0, { x: 0, y: 0, width: 10, height: 10 }).catch((e: unknown) => e)) as ImageServerError;
      expect(err).toBeInstanceOf(ImageServerError);
      expect(err.code).toBe('CORRUPT_IMAGE');
      expect(err.message).not.toContain('hidden-wasm-trunc');
      await (await dec('grey8.jp2')).readRegion(1, { x: 0, y: 0, width: 10, height: 10 });
      expect(write).not.toHaveBeenCalled();
    } finally {
      write.mockRestore();
    }
  });
});
