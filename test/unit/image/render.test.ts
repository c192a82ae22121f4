// render() with the neutral view's Processing (what IIP commands turn into): 16-bit PNG/TIFF
// output, band selection, contrast, gamma, inversion, colormaps, hill shading, colour twist,
// convolution and equalisation on real decoders, and watermark placement with a fixed random
// sequence (8- and 16-bit). Expected pixels come from how the fixtures were made.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageDecoder } from '../../../decoders/decoder.js';
import { jpegDecoder } from '../../../decoders/jpeg/index.js';
import { tiffDecoder } from '../../../decoders/tiff/index.js';
import { loadConfig } from '../../../src/config.js';
import type { OutputFormat, Processing, Quality, RegionSpec, SizeSpec } from '../../../src/core/view.js';
import { planView } from '../../../src/image/plan.js';
import { colormapValue } from '../../../src/image/process.js';
import { imageHistogram, render, renderSettings, settingsKey, passthroughAllowed, type RenderSettings } from '../../../src/image/render.js';
import { BANDS, bandValue, DEEP_H, DEEP_W, floatValue, grey12Value, makeScienceFixtures } from '../../fixtures/make-science.js';

const run = promisify(execFile);

let dir: string;
let f: Record<string, string>;
const opened: ImageDecoder[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'render-'));
  f = await makeScienceFixtures(dir);
}, 60_000);
afterAll(async () => {
  await Promise.all(opened.map((d) => d.close()));
  await rm(dir, { recursive: true, force: true });
});

async function open(name: string): Promise<ImageDecoder> {
  const d = name === 'jpeg' ? await jpegDecoder.open(f[name]) : await tiffDecoder.open(f[name]);
  opened.push(d);
  return d;
}

const BASE = renderSettings(loadConfig({}).config);
const LIMITS = { maxWidth: -1, maxHeight: -1, maxArea: 0, allowUpscaling: true };

interface Options {
  region?: RegionSpec;
  size?: SizeSpec;
  format?: OutputFormat;
  quality?: Quality;
  processing?: Processing;
  degrees?: number;
  settings?: RenderSettings;
}

async function draw(d: ImageDecoder, o: Options = {}): Promise<Buffer> {
  const plan = planView(
    d.info,
    {
      kind: 'region',
      region: o.region ?? { type: 'full' },
      size: o.size ?? { type: 'max', upscale: false },
      rotation: { degrees: o.degrees ?? 0, mirror: false },
      quality: o.quality ?? 'default',
      format: o.format ?? 'png',
      processing: o.processing,
      upscaleRule: 'allowed',
    },
    { limits: LIMITS, codecPassthrough: true },
  );
  return (await render(d, plan, o.settings ?? BASE)).body;
}

/** Samples as stored in the file: 8 or 16 bits, every band. */
async function samples(body: Buffer): Promise<{ data: ArrayLike<number>; width: number; height: number; channels: number; depth: string }> {
  const m = await sharp(body).metadata();
  const wide = m.depth === 'ushort';
  const cs = m.channels! <= 2 ? (wide ? 'grey16' : 'b-w') : wide ? 'rgb16' : 'srgb';
  const { data, info } = await sharp(body)
    .toColourspace(cs)
    .raw({ depth: wide ? 'ushort' : 'uchar' })
    .toBuffer({ resolveWithObject: true });
  const arr = wide ? new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2) : data;
  return { data: arr, width: info.width, height: info.height, channels: info.channels, depth: m.depth! };
}
const at = (s: { data: ArrayLike<number>; width: number; channels: number }, x: number, y: number): number[] =>
  Array.from({ length: s.channels }, (_, k) => s.data[(y * s.width + x) * s.channels + k]);

describe('16-bit output (Processing.bitDepth 16)', () => {
  it('PNG and TIFF keep 16-bit samples of a 16-bit source', async () => {
    const d = await open('rgb16');
    for (const format of ['png', 'tif'] as const) {
      const s = await samples(await draw(d, { format, processing: { bitDepth: 16 } }));
      expect(s.depth).toBe('ushort');
      expect(at(s, 10, 20)).toEqual([2000, 6000, 65535 - 1000]);
      expect(at(s, 299, 199)).toEqual([299 * 200, 199 * 300, 65535 - 29900]);
    }
    if (d.info.format === 'tiff') {
      const file = join(dir, 'out16.tif');
      await writeFile(file, await draw(d, { format: 'tif', processing: { bitDepth: 16 } }));
      expect((await run('tiffinfo', [file])).stdout).toMatch(/Bits\/Sample: 16/);
    }
  });

  it('16-bit output is normalised by SMin/SMax when processing runs; JPEG stays 8-bit', async () => {
    const d = await open('grey12');
    const s = await samples(await draw(d, { processing: { bitDepth: 16, invert: true } }));
    expect(s.channels).toBe(1);
    expect(at(s, 100, 50)).toEqual([Math.round((1 - grey12Value(100, 50) / 4095) * 65535)]);
    const j = await sharp(await draw(d, { format: 'jpg', processing: { bitDepth: 16 } })).metadata();
    expect(j.depth).toBe('uchar');
  });

  it('an 8-bit source asked for 16 bits is widened (× 257)', async () => {
    const d = await open('gradient');
    const s = await samples(await draw(d, { processing: { bitDepth: 16 } }));
    expect(at(s, 10, 20)).toEqual([10 * 257, 20 * 257, 128 * 257]);
  });
});

describe('processing through render', () => {
  it('band selection on a 6-band image (one band, three bands in any order)', async () => {
    const d = await open('multi8');
    const one = await samples(await draw(d, { processing: { bands: [5] } }));
    expect(one.channels).toBe(1);
    expect(at(one, 17, 3)).toEqual([bandValue(17, 3, 5)]);
    const three = await samples(await draw(d, { processing: { bands: [4, 2, 0] } }));
    expect(at(three, 17, 3)).toEqual([bandValue(17, 3, 4), bandValue(17, 3, 2), bandValue(17, 3, 0)]);
    await expect(draw(d, { processing: { bands: [BANDS] } })).rejects.toThrow(/Band 6 does not exist/);
  });

  it('contrast on 12-bit data normalised by SMaxSampleValue', async () => {
    const d = await open('grey12');
    const s = await samples(await draw(d, { processing: { contrast: 2 } }));
    for (const [x, y] of [
      [3, 4],
      [100, 100],
      [250, 10],
    ])
      expect(at(s, x, y)).toEqual([Math.min(255, Math.round((grey12Value(x, y) / 4095) * 255 * 2))]);
  });

  it('log, inversion and the jet colormap on float data, in that order', async () => {
    const d = await open('floatGrey');
    const s = await samples(await draw(d, { processing: { colormap: 'jet', gamma: 'log', invert: true } }));
    expect(s.channels).toBe(3);
    for (const [x, y] of [
      [0, 0],
      [40, 7],
      [123, 77],
    ]) {
      const v = (floatValue(x, y) + 10) / 20;
      const want = colormapValue('jet', 1 - Math.log1p(255 * v) / Math.log(256)).map((c) => Math.round(c * 255));
      at(s, x, y).forEach((c, i) => expect(Math.abs(c - want[i])).toBeLessThanOrEqual(1));
    }
  });

  it('hill shading of surface normals: one band; facing the light, facing up, all-zero pixels', async () => {
    const d = await open('normals');
    const s = await samples(await draw(d, { processing: { hillshade: { horizontal: 0, vertical: 0 } } }));
    expect(s.channels).toBe(1);
    // left half n = (64, 64, 255)/255 → −(2n − 1) = (1 − 128/255, …); light (0, 1, 0)
    // 0.5 · (1 − 128/255) · 255 = 63.5: float32 rounding decides between 63 and 64
    const left = 0.5 * (1 - (2 * 64) / 255) * 255;
    expect(Math.abs(at(s, 5, 5)[0] - left)).toBeLessThanOrEqual(0.5);
    // right half faces the viewer: (1 − 256/255) < 0 → clamped
    expect(at(s, 100, 5)).toEqual([0]);
    expect(at(s, 5, 10)).toEqual([0]);
  });

  it('colour twist swaps channels; convolution edge-detects; contrast applies after both', async () => {
    const d = await open('gradient');
    const tw = await samples(
      await draw(d, {
        processing: {
          twist: [
            [0, 0, 1],
            [0, 1, 0],
            [1, 0, 0],
          ],
        },
      }),
    );
    expect(at(tw, 30, 40)).toEqual([128, 40, 30]);
    // horizontal difference kernel: R grows by 1/255 per pixel → 1 level; × contrast 10
    const cv = await samples(await draw(d, { processing: { convolution: [0, 0, 0, -1, 0, 1, 0, 0, 0], contrast: 10 } }));
    expect(at(cv, 50, 50)).toEqual([20, 0, 0]);
    // at the right edge the extended column gives half the difference
    expect(at(cv, 255, 50)).toEqual([10, 0, 0]);
  });

  it('equalisation uses the histogram of the whole image, so tiles agree', async () => {
    const d = await open('grey12');
    const whole = await samples(await draw(d, { processing: { contrast: 'equalization' } }));
    const tile = await samples(
      await draw(d, { region: { type: 'pixels', x: 64, y: 64, w: 64, h: 64 }, processing: { contrast: 'equalization' } }),
    );
    expect(at(tile, 10, 10)).toEqual(at(whole, 74, 74));
    const hist = await imageHistogram(d);
    expect(hist.reduce((a, b) => a + b, 0)).toBe(DEEP_W * DEEP_H);
  });

  it('plain JPEG input renders through the same pipeline', async () => {
    const d = await open('jpeg');
    const s = await samples(await draw(d, { quality: 'gray', size: { type: 'width', w: 70, upscale: false } }));
    expect(s.width).toBe(70);
    expect(s.channels).toBe(1);
    const [r, g, b] = [40, 80, 160];
    expect(Math.abs(at(s, 5, 5)[0] - ((1254097 * r + 2462056 * g + 478151 * b) >> 22))).toBeLessThanOrEqual(3);
  });
});

describe('watermark placement', () => {
  const settingsWith = (random: number[], extra: Partial<RenderSettings> = {}): RenderSettings => {
    let i = 0;
    return {
      ...BASE,
      watermark: { path: f.watermark, probability: 1, opacity: 1 },
      random: () => random[i++ % random.length],
      ...extra,
    };
  };

  it('a tile gets it at a random offset within the free space', async () => {
    const d = await open('greyFlat');
    // draws: chance 0 (< 1: mark), x 0.5 → floor(0.5 · (256 − 40)) = 108, y 0.25 → floor(0.25 · 236) = 59
    const s = await samples(
      await draw(d, {
        region: { type: 'pixels', x: 0, y: 0, w: 256, h: 256 },
        size: { type: 'width', w: 256, upscale: false },
        settings: settingsWith([0, 0.5, 0.25]),
      }),
    );
    expect(at(s, 108, 59)).toEqual([164, 64, 64]);
    expect(at(s, 127, 78)).toEqual([164, 64, 64]);
    expect(at(s, 128, 59)).toEqual([64, 64, 64]); // the transparent half
    expect(at(s, 107, 59)).toEqual([64, 64, 64]);
    expect(at(s, 108, 79)).toEqual([64, 64, 64]);
  });

  it('probability: a draw at or above it leaves the block alone', async () => {
    const d = await open('greyFlat');
    const s = await samples(
      await draw(d, {
        region: { type: 'pixels', x: 0, y: 0, w: 256, h: 256 },
        size: { type: 'width', w: 256, upscale: false },
        settings: settingsWith([0.6], { watermark: { path: f.watermark, probability: 0.5, opacity: 1 } }),
      }),
    );
    expect(new Set(Array.from(s.data)).size).toBe(1);
  });

  it('16-bit output adds the watermark × 256, clipped', async () => {
    const d = await open('rgb16');
    const s = await samples(
      await draw(d, {
        processing: { bitDepth: 16 },
        region: { type: 'pixels', x: 0, y: 0, w: 64, h: 64 },
        size: { type: 'width', w: 64, upscale: false },
        settings: settingsWith([0, 0, 0]),
      }),
    );
    expect(at(s, 3, 4)).toEqual([3 * 200 + 100 * 256, 4 * 300, 65535 - 300]);
  });

  it('settings: the watermark is part of the cache key and rules out passthrough', () => {
    const on = settingsWith([0]);
    expect(settingsKey(on)).not.toBe(settingsKey(BASE));
    expect(passthroughAllowed(on)).toBe(false);
    expect(passthroughAllowed(BASE)).toBe(true);
    expect(passthroughAllowed({ ...on, watermark: { ...on.watermark!, probability: 0 } })).toBe(true);
  });
});

describe('regionPipeline contract', () => {
  const W = 64;
  const H = 48;
  /** A gradient: sample i (every band) is i mod 251. */
  const data = Buffer.alloc(W * H * 3);
  for (let i = 0; i < W * H; i++) data.fill(i % 251, i * 3, i * 3 + 3);
  const gradient = (): Sharp => sharp(data, { raw: { width: W, height: H, channels: 3 } });

  /** A W×H RGB decoder with the given regionPipeline. */
  const fake = (pipeline: ImageDecoder['regionPipeline']): ImageDecoder => ({
    info: {
      width: W,
      height: H,
      levels: [{ width: W, height: H, tileWidth: 64, tileHeight: 64 }],
      channels: 3,
      bitsPerSample: 8,
      sampleFormat: 'uint',
      colourSpace: 'srgb',
      metadata: {},
    } as unknown as ImageDecoder['info'],
    readRegion: async () => ({ data, width: W, height: H, channels: 3, bitsPerSample: 8, sampleFormat: 'uint' }),
    regionPipeline: pipeline,
    close: async () => {},
  });

  it('renders from { image } and gives the pipeline back once it has run', async () => {
    let released = 0;
    const d = fake(() => ({ image: gradient(), release: () => released++ }));
    const s = await samples(await draw(d));
    expect([s.width, s.height]).toEqual([W, H]);
    expect(at(s, 10, 2)).toEqual([138, 138, 138]);
    expect(released).toBe(1);
  });

  it('still accepts a decoder module that returns the sharp pipeline itself', async () => {
    const d = fake(() => gradient() as unknown as ReturnType<NonNullable<ImageDecoder['regionPipeline']>>);
    const s = await samples(await draw(d));
    expect(at(s, 10, 2)).toEqual([138, 138, 138]);
  });
});
