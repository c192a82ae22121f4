// Image science through the whole request path (createServerCore / createHandler with a
// loadConfig environment, no front end): CIELAB, 16-bit, float and multispectral input, output
// formats (PNG, TIFF, AVIF), arbitrary rotation, sequences, size limits, interpolation, plain
// JPEG input, watermarks (never bypassed by passthrough or the cache), and refusals of bad input.
// Pixels are checked against values worked out from how the fixtures were made.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tiffDecoder } from '../../decoders/tiff/index.js';
import { RamLruStore } from '../../src/cache/ram-lru.js';
import { loadConfig } from '../../src/config.js';
import { createHandler } from '../../src/handler.js';
import type { ServerRequest, ServerResponse } from '../../src/handler-types.js';
import { availableFormats } from '../../src/image/encode.js';
import { labPixelToSrgb } from '../../src/image/process.js';
import { ImageRegistry } from '../../src/image/registry.js';
import { DecoderRegistry } from '../../decoders/registry.js';
import { silentLogger } from '../../src/log.js';
import { createServerCore, type ServerCore } from '../../src/server.js';
import {
  DEEP_H,
  DEEP_W,
  floatValue,
  grey12Value,
  LAB_PATCHES,
  makeScienceFixtures,
  PATCH,
  PATCHES_ACROSS,
  SRGB_PATCHES,
  bandValue,
} from '../fixtures/make-science.js';
import { header, req } from '../support/requests.js';

const run = promisify(execFile);

let dir: string;
let f: Record<string, string>;
const cores: ServerCore[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'iipsrv-science-'));
  f = await makeScienceFixtures(dir);
}, 60_000);

afterAll(async () => {
  for (const c of cores) await c.clearCaches();
  await rm(dir, { recursive: true, force: true });
});

async function server(env: Record<string, string> = {}): Promise<ServerCore> {
  const { config } = loadConfig({ FILESYSTEM_PREFIX: `${dir}/`, URI_MAP: 'iiif=>IIIF', ...env });
  const core = await createServerCore(config, silentLogger);
  cores.push(core);
  return core;
}

async function get(core: { handler: (r: ServerRequest) => Promise<ServerResponse> }, uri: string, status = 200): Promise<ServerResponse> {
  const res = await core.handler(req(uri));
  expect(res.status, `${uri}: ${res.body.toString().slice(0, 200)}`).toBe(status);
  return res;
}

interface Decoded {
  data: Buffer;
  width: number;
  height: number;
  channels: number;
}
/** Decoded samples with the band count the file has (sharp's raw output makes grey RGB). */
async function pixels(body: Buffer): Promise<Decoded> {
  const meta = await sharp(body).metadata();
  if (meta.channels === 1) {
    const { data, info } = await sharp(body).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height, channels: 1 };
  }
  const { data, info } = await sharp(body).raw().toBuffer({ resolveWithObject: true });
  if (meta.channels === 2) {
    // RGBA of a grey + alpha file → grey, alpha
    const out = Buffer.alloc(info.width * info.height * 2);
    for (let i = 0; i < info.width * info.height; i++) {
      out[i * 2] = data[i * 4];
      out[i * 2 + 1] = data[i * 4 + 3];
    }
    return { data: out, width: info.width, height: info.height, channels: 2 };
  }
  return { data, width: info.width, height: info.height, channels: info.channels };
}
const px = (d: Decoded, x: number, y: number): number[] =>
  Array.from(d.data.subarray((y * d.width + x) * d.channels, (y * d.width + x + 1) * d.channels));
const centre = (k: number): [number, number] => [
  (k % PATCHES_ACROSS) * PATCH + PATCH / 2,
  Math.floor(k / PATCHES_ACROSS) * PATCH + PATCH / 2,
];
const near = (a: number[], b: readonly number[], tol: number, what: string): void => {
  a.slice(0, b.length).forEach((v, i) => expect(Math.abs(v - b[i]), `${what}: ${a.join(',')} vs ${b.join(',')}`).toBeLessThanOrEqual(tol));
};

describe('CIELAB input is converted to sRGB (§11.4)', () => {
  it('8-bit CIELab with known L*a*b* patches gives their sRGB values within one level', async () => {
    const core = await server();
    const d = await pixels((await get(core, '/iiif/lab8.tif/full/max/0/default.png')).body);
    expect(d.channels).toBe(3);
    LAB_PATCHES.forEach(([L, a, b], k) => {
      const want = labPixelToSrgb(L / 2.55, a, b).map((v) => Math.round(v * 255));
      near(px(d, ...centre(k)), want, 1, `patch ${k}`);
    });
    // white and black patches exactly
    expect(px(d, ...centre(3))).toEqual([255, 255, 255]);
    expect(px(d, ...centre(5))).toEqual([0, 0, 0]);
  });

  it('8-bit CIELAB written by vips (colourspace lab → labq → tiffsave) matches libvips own conversion', async () => {
    const core = await server();
    const d = await pixels((await get(core, '/iiif/lab8-vips.tif/full/max/0/default.png')).body);
    // sharp 0.35.3 (pinned for this) reads 8-bit CIELAB and converts it with libvips: an
    // independent implementation of the same conversion.
    const { data, info } = await sharp(f.lab8vips).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    const vips: Decoded = { data, width: info.width, height: info.height, channels: info.channels };
    SRGB_PATCHES.forEach((rgb, k) => {
      // (libvips reads L* with 10-bit LabQ scaling, 100/1023·4 per step instead of 100/255)
      near(px(d, ...centre(k)), px(vips, ...centre(k)), 3, `vips lab8 patch ${k} vs libvips`);
      // 8-bit a*, b* lose their fraction: dark channels of saturated colours move most.
      near(px(d, ...centre(k)), rgb, 16, `vips lab8 patch ${k} vs its source`);
    });
    // a reduced level (the pyramid has three) converts too
    const small = await pixels((await get(core, '/iiif/lab8-vips.tif/full/64,/0/default.png')).body);
    expect(small.width).toBe(64);
    near(px(small, 8, 8), SRGB_PATCHES[0], 3, 'level 1');
  });

  it('16-bit and float CIELAB, and 16-bit CIELAB from the writer, convert within one level', async () => {
    const core = await server();
    for (const name of ['lab16-vips.tif', 'labf-vips.tif']) {
      const d = await pixels((await get(core, `/iiif/${name}/full/max/0/default.png`)).body);
      SRGB_PATCHES.forEach((rgb, k) => near(px(d, ...centre(k)), rgb, 1, `${name} patch ${k}`));
    }
    const d = await pixels((await get(core, '/iiif/lab16.tif/full/max/0/default.png')).body);
    LAB_PATCHES.forEach(([L, a, b], k) =>
      near(
        px(d, ...centre(k)),
        labPixelToSrgb(L / 2.55, a, b).map((v) => Math.round(v * 255)),
        1,
        `lab16 ${k}`,
      ),
    );
  });

  it('info.json describes a CIELAB image as colour', async () => {
    const core = await server();
    const info = JSON.parse((await get(core, '/iiif/lab8.tif/info.json')).body.toString()) as { extraQualities: string[] };
    expect(info.extraQualities).toContain('color');
  });
});

describe('16-bit, float and multispectral input', () => {
  it('16-bit grey without processing is shifted to 8 bits (>> 8), as iipsrv', async () => {
    const core = await server();
    const d = await pixels((await get(core, '/iiif/grey12.tif/full/max/0/default.png')).body);
    expect(d.channels).toBe(1);
    for (const [x, y] of [
      [0, 0],
      [100, 50],
      [255, 199],
      [299, 3],
    ])
      expect(px(d, x, y)).toEqual([grey12Value(x, y) >> 8]);
  });

  it('16-bit RGB: full resolution and the half level, >> 8', async () => {
    const core = await server();
    const d = await pixels((await get(core, '/iiif/rgb16.tif/full/max/0/default.png')).body);
    expect(px(d, 10, 20)).toEqual([(10 * 200) >> 8, (20 * 300) >> 8, (65535 - 1000) >> 8]);
    const half = await pixels((await get(core, '/iiif/rgb16.tif/full/150,/0/default.png')).body);
    expect(half.width).toBe(150);
    expect(px(half, 10, 20)).toEqual([(20 * 200) >> 8, (40 * 300) >> 8, (65535 - 2000) >> 8]);
  });

  it('1-bit input is unpacked to 0/255', async () => {
    const core = await server();
    const d = await pixels((await get(core, '/iiif/bilevel.tif/full/max/0/default.png')).body);
    expect(d.channels).toBe(1);
    expect([px(d, 0, 0), px(d, 127, 30), px(d, 128, 30), px(d, 255, 63)]).toEqual([[0], [0], [255], [255]]);
  });

  it('float data is always normalised with SMin/SMax', async () => {
    const core = await server();
    const d = await pixels((await get(core, '/iiif/float-grey.tif/full/max/0/default.png')).body);
    for (const [x, y] of [
      [0, 0],
      [7, 9],
      [200, 150],
    ]) {
      const want = Math.round(((floatValue(x, y) + 10) / 20) * 255);
      expect(Math.abs(px(d, x, y)[0] - want)).toBeLessThanOrEqual(1);
    }
  });

  it('a 6-band image is never taken for alpha: PNG gets bands 0, 1, 2, JPEG too', async () => {
    const core = await server();
    const d = await pixels((await get(core, '/iiif/multi8.tif/full/max/0/default.png')).body);
    expect(d.channels).toBe(3);
    expect(px(d, 5, 7)).toEqual([bandValue(5, 7, 0), bandValue(5, 7, 1), bandValue(5, 7, 2)]);
    const j = await get(core, '/iiif/multi8.tif/0,0,128,128/128,/0/default.jpg');
    expect(header(j, 'content-type')).toBe('image/jpeg');
  });

  it('gray and bitonal qualities: iipsrv weights, Otsu threshold from the image histogram', async () => {
    const core = await server();
    const g = await pixels((await get(core, '/iiif/gradient.tif/full/max/0/gray.png')).body);
    expect(g.channels).toBe(1);
    // (x, y, 128) → (1254097 x + 2462056 y + 478151·128) >> 22
    for (const [x, y] of [
      [0, 0],
      [200, 30],
      [255, 255],
    ])
      expect(px(g, x, y)).toEqual([(1254097 * x + 2462056 * y + 478151 * 128) >> 22]);
    const b = await pixels((await get(core, '/iiif/gradient.tif/full/max/0/bitonal.png')).body);
    const values = new Set(b.data);
    expect([...values].sort((p, q) => p - q)).toEqual([0, 255]);
    // dark top-left, light bottom-right
    expect(px(b, 0, 0)).toEqual([0]);
    expect(px(b, 255, 255)).toEqual([255]);
  });
});

describe('output formats', () => {
  it('TIFF: greyscale is one MinIsBlack band (§13 #26), colour is RGB; TIFF_COMPRESSION chooses the codec', async () => {
    const core = await server({ TIFF_COMPRESSION: '1' });
    const grey = await get(core, '/iiif/gradient.tif/full/max/0/gray.tif');
    expect(header(grey, 'content-type')).toBe('image/tiff');
    const file = join(dir, 'out-grey.tif');
    await writeFile(file, grey.body);
    const { stdout } = await run('tiffinfo', [file]);
    expect(stdout).toMatch(/Photometric Interpretation: min-is-black/);
    expect(stdout).toMatch(/Samples\/Pixel: 1/);
    expect(stdout).toMatch(/Compression Scheme: LZW/);
    const colour = await get(core, '/iiif/gradient.tif/full/max/0/default.tif');
    await writeFile(file, colour.body);
    expect((await run('tiffinfo', [file])).stdout).toMatch(/Photometric Interpretation: RGB color/);
    // lossless: the pixels are the source's
    expect(px(await pixels(colour.body), 77, 99)).toEqual([77, 99, 128]);
  });

  it('AVIF output where the encoder has it', async () => {
    const formats = availableFormats();
    expect(formats).toContain('avif');
    const { config } = loadConfig({ FILESYSTEM_PREFIX: `${dir}/`, URI_MAP: 'iiif=>IIIF' });
    const images = new ImageRegistry(new DecoderRegistry(), 10);
    const handler = createHandler({ config, logger: silentLogger, images, cache: new RamLruStore(1 << 20), formats });
    const res = await get({ handler }, '/iiif/gradient.tif/full/128,/0/default.avif');
    await images.clear();
    expect(header(res, 'content-type')).toBe('image/avif');
    const m = await sharp(res.body).metadata();
    expect([m.format, m.width, m.height]).toEqual(['heif', 128, 128]);
  });
});

describe('arbitrary rotation (IIIF rotationArbitrary)', () => {
  it('rotates by any angle into the bounding box; transparent corners in PNG, white in JPEG', async () => {
    const core = await server();
    const png = await pixels((await get(core, '/iiif/gradient.tif/full/100,/45/default.png')).body);
    // 100·cos45 + 100·sin45 ≈ 141.4
    expect(png.width).toBeGreaterThanOrEqual(141);
    expect(png.width).toBeLessThanOrEqual(143);
    expect(png.height).toBe(png.width);
    expect(png.channels).toBe(4);
    expect(px(png, 0, 0)[3]).toBe(0);
    expect(px(png, png.width >> 1, png.height >> 1)[3]).toBe(255);
    const jpg = await pixels((await get(core, '/iiif/gradient.tif/full/100,/30/default.jpg')).body);
    expect(jpg.channels).toBe(3);
    near(px(jpg, 0, 0), [255, 255, 255], 2, 'white corner');
    // 100·cos30 + 100·sin30 ≈ 136.6
    expect(Math.abs(jpg.width - 136.6)).toBeLessThan(1.5);
    // mirrored 22.5°, grey: two bands (grey + alpha)
    const g = await pixels((await get(core, '/iiif/gradient.tif/full/80,/!22.5/gray.png')).body);
    expect(g.channels).toBe(2);
    // quarter turns swap the sides
    const r90 = await pixels((await get(core, '/iiif/gradient.tif/0,0,256,128/128,/90/default.png')).body);
    expect([r90.width, r90.height]).toEqual([64, 128]);
  });

  it('bitonal output stays two-level after rotation', async () => {
    const core = await server();
    const b = await pixels((await get(core, '/iiif/gradient.tif/full/100,/33/bitonal.jpg')).body);
    const levels = new Set(b.data);
    // JPEG blurs edges a little; nearly all samples are at the ends
    const extreme = [...b.data].filter((v) => v < 30 || v > 225).length;
    expect(extreme / b.data.length).toBeGreaterThan(0.97);
    expect(levels.size).toBeGreaterThan(1);
  });
});

describe('sizes: MAX_CVT, ALLOW_UPSCALING, INTERPOLATION', () => {
  it('MAX_CVT scales a distorted size down keeping its distortion (§13 #5)', async () => {
    const core = await server({ MAX_CVT: '100' });
    const d = await pixels((await get(core, '/iiif/gradient.tif/full/200,50/0/default.png')).body);
    expect([d.width, d.height]).toEqual([100, 25]);
  });

  it('ALLOW_UPSCALING=0 clamps to the region size; IIIF 2 otherwise upscales', async () => {
    const off = await server({ ALLOW_UPSCALING: '0', IIIF_VERSION: '2' });
    const d = await pixels((await get(off, '/iiif/gradient.tif/0,0,64,64/128,/0/default.png')).body);
    expect([d.width, d.height]).toEqual([64, 64]);
    const on = await server({ IIIF_VERSION: '2' });
    const u = await pixels((await get(on, '/iiif/gradient.tif/0,0,64,64/128,/0/default.png')).body);
    expect([u.width, u.height]).toEqual([128, 128]);
  });

  it('INTERPOLATION=0 samples source pixels; 1 blends them', async () => {
    // 10× upscale across the edge between the red and green CIELAB patches (x = 32)
    const colours = async (env: Record<string, string>): Promise<Set<string>> => {
      const core = await server(env);
      const d = await pixels((await get(core, '/iiif/lab8.tif/28,10,8,8/^80,/0/default.png')).body);
      const seen = new Set<string>();
      for (let x = 0; x < 80; x++) seen.add(px(d, x, 40).join(','));
      return seen;
    };
    expect((await colours({ INTERPOLATION: '0' })).size).toBe(2);
    expect((await colours({ INTERPOLATION: '1' })).size).toBeGreaterThan(2);
    expect((await colours({ INTERPOLATION: '3' })).size).toBeGreaterThan(2);
  });
});

describe('sequences (FILENAME_PATTERN, §11.5)', () => {
  it('an identifier naming a sequence serves its default view (0, 90)', async () => {
    const core = await server();
    const info = JSON.parse((await get(core, '/iiif/seq%2Fscan/info.json')).body.toString()) as { width: number };
    expect(info.width).toBe(300);
    const d = await pixels((await get(core, '/iiif/seq%2Fscan/full/max/0/default.png')).body);
    expect(px(d, 10, 10)).toEqual([200, 0, 0]);
    // a missing sequence is still a 404
    await get(core, '/iiif/seq%2Fnothing/info.json', 404);
  });

  it('FILENAME_PATTERN changes the naming', async () => {
    const core = await server({ FILENAME_PATTERN: '_other_' });
    await get(core, '/iiif/seq%2Fscan/info.json', 404);
  });
});

describe('plain JPEG input (§11.8)', () => {
  it('virtual 256-px tiles and halved levels; tiles and regions have the right colours', async () => {
    const core = await server();
    const info = JSON.parse((await get(core, '/iiif/plain.jpg/info.json')).body.toString()) as {
      width: number;
      height: number;
      tiles: Array<{ width: number; scaleFactors: number[] }>;
      sizes: Array<{ width: number }>;
    };
    expect([info.width, info.height]).toEqual([700, 500]);
    expect(info.tiles[0].width).toBe(256);
    expect(info.tiles[0].scaleFactors).toEqual([1, 2, 4]);
    expect(info.sizes.map((s) => s.width)).toEqual([175, 350]);
    const tile = await pixels((await get(core, '/iiif/plain.jpg/512,0,188,256/188,/0/default.png')).body);
    expect(tile.width).toBe(188);
    near(px(tile, 100, 100), [220, 200, 20], 4, 'right half');
    const small = await pixels((await get(core, '/iiif/plain.jpg/full/175,/0/default.png')).body);
    near(px(small, 20, 20), [40, 80, 160], 4, 'left half, reduced level');
  });
});

describe('bad input is refused with a status and a message naming what is unsupported', () => {
  it.each([
    ['multi-zstd.tif', 415, /zstd compression for 6-band images/],
    ['itulab.tif', 415, /ITU L\*a\*b\*/],
    ['planar.tif', 415, /separate sample planes/],
  ])('%s', async (name, status, message) => {
    const core = await server();
    const res = await get(core, `/iiif/${name}/full/max/0/default.jpg`, status);
    expect(res.body.toString()).toMatch(message);
  });
});

describe('watermarks (WATERMARK, WATERMARK_PROBABILITY, WATERMARK_OPACITY)', () => {
  /** Pixels changed by the watermark on a flat 64-grey image: red raised by 200 · α · opacity. */
  function marked(d: Decoded, tol = 0): { count: number; value: number[] } {
    let count = 0;
    let value: number[] = [];
    for (let y = 0; y < d.height; y++) {
      for (let x = 0; x < d.width; x++) {
        const p = px(d, x, y);
        if (p[0] > 64 + 20 + tol) {
          count++;
          value = p;
        }
      }
    }
    return { count, value };
  }

  it("adds the premultiplied watermark (200 · 128/255 → +100 red) to tiles, as iipsrv's wm·opacity·alpha", async () => {
    const core = await server({ WATERMARK: f.watermark });
    const d = await pixels((await get(core, '/iiif/grey-flat.tif/0,0,256,256/256,/0/default.png')).body);
    const m = marked(d);
    // the opaque half of the 40×20 watermark: 20×20 pixels
    expect(m.count).toBe(400);
    expect(m.value).toEqual([164, 64, 64]);
  });

  it('WATERMARK_OPACITY scales it; a TIFF watermark works the same', async () => {
    const core = await server({ WATERMARK: f.watermarkTiff, WATERMARK_OPACITY: '0.5' });
    const d = await pixels((await get(core, '/iiif/grey-flat.tif/0,0,256,256/256,/0/default.png')).body);
    let count = 0;
    for (let i = 0; i < d.data.length; i += 3) if (d.data[i] === 64 + Math.floor(200 * (128 / 255) * 0.5)) count++;
    expect(count).toBe(400);
  });

  it('regions get one watermark per tile-sized block', async () => {
    const core = await server({ WATERMARK: f.watermark });
    const d = await pixels((await get(core, '/iiif/grey-flat.tif/full/max/0/default.png')).body);
    expect(marked(d).count).toBe(4 * 400);
  });

  it('a JPEG-tiled pyramid is never passed through, and the cache only ever holds the watermarked tile', async () => {
    const plainCore = await server();
    const stored = await get(plainCore, '/iiif/grey.tif/256,0,256,256/256,/0/default.jpg');
    expect(plainCore.handler.stats.passthrough).toBe(1);

    const core = await server({ WATERMARK: f.watermark });
    const first = await get(core, '/iiif/grey.tif/256,0,256,256/256,/0/default.jpg');
    expect(core.handler.stats.passthrough).toBe(0);
    expect(first.body.equals(stored.body)).toBe(false);
    expect(marked(await pixels(first.body), 10).count).toBeGreaterThan(300);
    const again = await get(core, '/iiif/grey.tif/256,0,256,256/256,/0/default.jpg');
    expect(core.handler.stats.cacheHits).toBe(1);
    expect(again.body.equals(first.body)).toBe(true);
    expect(core.handler.stats.passthrough).toBe(0);
  });

  it('WATERMARK_PROBABILITY=0 marks nothing and allows passthrough again', async () => {
    const core = await server({ WATERMARK: f.watermark, WATERMARK_PROBABILITY: '0' });
    const d = await pixels((await get(core, '/iiif/grey-flat.tif/0,0,256,256/256,/0/default.png')).body);
    expect(marked(d).count).toBe(0);
    await get(core, '/iiif/grey.tif/0,0,256,256/256,/0/default.jpg');
    expect(core.handler.stats.passthrough).toBe(1);
  });

  it('an unreadable watermark fails image requests (500) instead of serving unmarked pixels', async () => {
    const core = await server({ WATERMARK: join(dir, 'no-such-watermark.png') });
    await get(core, '/iiif/grey.tif/0,0,256,256/256,/0/default.jpg', 500);
    // metadata is unaffected
    await get(core, '/iiif/grey.tif/info.json');
  });
});

describe('decoder sanity for the science fixtures', () => {
  it('libtiff reads every file our writer made', async () => {
    for (const name of ['lab8', 'lab16', 'icclab8', 'grey12', 'floatGrey', 'rgb16', 'multi8', 'multi16', 'normals']) {
      const { stderr } = await run('tiffinfo', [f[name]]);
      expect(stderr, name).toBe('');
      const d = await tiffDecoder.open(f[name]);
      expect(d.info.width, name).toBeGreaterThan(0);
      await d.close();
    }
    expect([DEEP_W, DEEP_H]).toEqual([300, 200]);
  });
});
