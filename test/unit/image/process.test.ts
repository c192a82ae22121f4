// The pixel operations of src/image/process.ts on tiny arrays with values worked out by hand
// (or by an independent CIELAB reference below), and the fixed order of processSamples.

import { describe, expect, it } from 'vitest';
import {
  binarise,
  colormap,
  colormapValue,
  colourTwist,
  convolve,
  effectiveRange,
  equalise,
  gamma,
  greyscale,
  hillshade,
  histogramOf,
  invert,
  kernelSize,
  labPixelToSrgb,
  labToSrgb,
  logTransform,
  needsFloatPipeline,
  normalise,
  otsuThreshold,
  processSamples,
  quantise,
  reduceChannels,
  selectBands,
  shiftTo8,
  srgbEncode,
  stretch,
  widenTo16,
  type Pixels,
  type SampleContext,
} from '../../../src/image/process.js';
import { ImageServerError } from '../../../src/core/errors.js';

const f32 = (values: number[], channels = 1, width = values.length / channels, height = 1): Pixels<Float32Array> => ({
  data: Float32Array.from(values),
  width,
  height,
  channels,
});
const u8 = (values: number[], channels = 1, width = values.length / channels, height = 1): Pixels<Uint8Array> => ({
  data: Uint8Array.from(values),
  width,
  height,
  channels,
});
const u16 = (values: number[], channels = 1, width = values.length / channels, height = 1): Pixels<Uint16Array> => ({
  data: Uint16Array.from(values),
  width,
  height,
  channels,
});
const list = (p: Pixels): number[] => Array.from(p.data);
const close = (actual: ArrayLike<number>, expected: number[], digits = 5): void => {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(actual[i]).toBeCloseTo(e, digits));
};

/**
 * An independent CIELAB → sRGB reference (Lindbloom's formulation: ε = 216/24389,
 * κ = 24389/27, D65 white 0.95047/1/1.08883, the IEC 61966-2-1 matrix and transfer curve), to
 * check our iipsrv-constant implementation against.
 */
function referenceLab(L: number, a: number, b: number): [number, number, number] {
  const eps = 216 / 24389;
  const kappa = 24389 / 27;
  const fy = (L + 16) / 116;
  const fx = a / 500 + fy;
  const fz = fy - b / 200;
  const xr = fx ** 3 > eps ? fx ** 3 : (116 * fx - 16) / kappa;
  const yr = L > kappa * eps ? fy ** 3 : L / kappa;
  const zr = fz ** 3 > eps ? fz ** 3 : (116 * fz - 16) / kappa;
  const [X, Y, Z] = [xr * 0.95047, yr, zr * 1.08883];
  const lin = [
    3.2404542 * X - 1.5371385 * Y - 0.4985314 * Z,
    -0.969266 * X + 1.8760108 * Y + 0.041556 * Z,
    0.0556434 * X - 0.2040259 * Y + 1.0572252 * Z,
  ];
  const enc = lin.map((v) => {
    const c = Math.min(1, Math.max(0, v));
    return c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055;
  });
  return enc.map((v) => Math.round(v * 255)) as [number, number, number];
}

describe('CIELAB → sRGB (§11.4)', () => {
  it('the sRGB transfer curve: linear toe, power segment, clipping', () => {
    expect(srgbEncode(0)).toBe(0);
    expect(srgbEncode(-1)).toBe(0);
    expect(srgbEncode(0.002)).toBeCloseTo(0.02584, 5);
    expect(srgbEncode(0.5)).toBeCloseTo(0.735357, 5);
    expect(srgbEncode(1)).toBeCloseTo(1, 6);
    expect(srgbEncode(2)).toBe(1);
  });

  it.each([
    // Well-known D65 conversions (sRGB primaries, white, black, mid grey).
    [53.2408, 80.0925, 67.2032, [255, 0, 0]],
    [87.7347, -86.1827, 83.1793, [0, 255, 0]],
    [32.297, 79.1875, -107.8602, [0, 0, 255]],
    [100, 0, 0, [255, 255, 255]],
    [0, 0, 0, [0, 0, 0]],
    [50, 0, 0, [119, 119, 119]],
  ])('Lab(%f, %f, %f) → sRGB %j within one level', (L, a, b, rgb) => {
    const out = labPixelToSrgb(L, a, b).map((v) => Math.round(v * 255));
    out.forEach((v, i) => expect(Math.abs(v - rgb[i])).toBeLessThanOrEqual(1));
  });

  it('agrees with an independent reference within one level over a grid of colours', () => {
    let worst = 0;
    for (let L = 0; L <= 100; L += 5) {
      for (let a = -120; a <= 120; a += 15) {
        for (let b = -120; b <= 120; b += 15) {
          const ours = labPixelToSrgb(L, a, b).map((v) => Math.round(v * 255));
          const ref = referenceLab(L, a, b);
          for (let i = 0; i < 3; i++) worst = Math.max(worst, Math.abs(ours[i] - ref[i]));
        }
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('converts whole images, keeping extra bands', () => {
    const p = labToSrgb(f32([100, 0, 0, 7, 0, 0, 0, 9], 4));
    expect(p.channels).toBe(4);
    close(p.data, [1, 1, 1, 7, 0, 0, 0, 9], 3);
    expect(() => labToSrgb(f32([1, 2], 2))).toThrow(ImageServerError);
  });
});

describe('normalisation and the float operations', () => {
  it('normalises per channel with min/max; non-finite values become 0', () => {
    close(normalise(u16([0, 4095, 2048, 1000]), [0], [4095]).data, [0, 1, 2048 / 4095, 1000 / 4095]);
    close(normalise(f32([-10, 0, 10, NaN, Infinity], 1), [-10], [10]).data, [0, 0.5, 1, 0, 0]);
    // two channels, each its own range
    close(normalise(u8([10, 100, 20, 200], 2), [10, 0], [20, 200]).data, [0, 0.5, 1, 1]);
  });

  it('a flat range maps its minimum to 0 instead of dividing by zero', () => {
    expect(list(normalise(u8([5, 5]), [5], [5]))).toEqual([0, 0]);
  });

  it('MINMAX overrides one channel or (−1) all', () => {
    expect(effectiveRange(3, [0, 0, 0], [255, 255, 255], [{ channel: 1, min: 10, max: 20 }])).toEqual({
      min: [0, 10, 0],
      max: [255, 20, 255],
    });
    expect(effectiveRange(2, [0], [65535], [{ channel: -1, min: 100, max: 200 }])).toEqual({ min: [100, 100], max: [200, 200] });
  });

  it('stretches between the lowest and highest non-empty histogram bins', () => {
    const h = new Float64Array(256);
    h[51] = 3;
    h[102] = 5;
    close(stretch(f32([0.2, 0.4, 0.3]), h).data, [0, 1, 0.5], 4);
  });

  it('gamma: v^g on values clamped at 0; log: log(1 + 255 v) / log 256', () => {
    close(gamma(f32([0.64, 0.25, -1, 1]), 0.5).data, [0.8, 0.5, 0, 1]);
    close(logTransform(f32([0, 15 / 255, 1, -0.5])).data, [0, 0.5, 1, 0]);
  });

  it('inverts', () => {
    close(invert(f32([0, 0.2, 1])).data, [1, 0.8, 0]);
  });

  it('colormaps as iipsrv: hot, cold, jet; red, green and blue put the value in one channel', () => {
    expect(colormapValue('hot', 0.2)).toEqual([0.6000000000000001, 0, 0]);
    expect(colormapValue('hot', 0.5)).toEqual([1, 0.5, 0]);
    close(colormapValue('hot', 0.9), [1, 1, 0.7]);
    expect(colormapValue('hot', 0)).toEqual([0, 0, 0]);
    expect(colormapValue('hot', 1.5)).toEqual([1, 1, 1]);
    close(colormapValue('cold', 0.5), [0, 0.5, 1]);
    close(colormapValue('cold', 0.9), [0.7, 1, 1]);
    close(colormapValue('jet', 0.05), [0, 0, 0.7]);
    close(colormapValue('jet', 0.25), [0, 0.5, 1]);
    close(colormapValue('jet', 0.5), [0.5, 1, 0.5]);
    close(colormapValue('jet', 0.75), [1, 0.5, 0]);
    close(colormapValue('jet', 0.9), [0.9, 0, 0]);
    expect(colormapValue('jet', 1)).toEqual([0.5, 0, 0]);
    expect(colormapValue('jet', -0.1)).toEqual([0, 0, 0]);
    expect(colormapValue('red', 0.3)).toEqual([0.3, 0, 0]);
    expect(colormapValue('green', 2)).toEqual([0, 1, 0]);
    expect(colormapValue('blue', 0.4)).toEqual([0, 0, 0.4]);
    // applied to the first channel of each pixel; three channels out
    const p = colormap(f32([0.5, 0.9, 0.2, 0.9], 2), 'hot');
    expect(p.channels).toBe(3);
    close(p.data, [1, 0.5, 0, 0.6, 0, 0]);
  });

  it('hill shading: light from the top, from the right, from overhead; zero pixels stay 0', () => {
    // n = (0.5, 0, 0.5) → −(2n − 1) = (0, 1, 0): facing 12 o'clock.
    const p = f32([0.5, 0, 0.5, 0.5, 0.5, 1, 0, 0, 0], 3);
    close(hillshade(p, 0, 0).data, [0.5, 0, 0]);
    // light from 3 o'clock: (1, 0, 0); n = (0, 0.5, 0.5) faces it.
    close(hillshade(f32([0, 0.5, 0.5], 3), 90, 0).data, [0.5]);
    // vertical 90° adds s_z = −1 to the horizontal direction (iipsrv normalises (0, 1, −1));
    // n = (0.5, 0.5, 1) → o = (0, 0, −1) → 0.5 · √½.
    close(hillshade(f32([0.5, 0.5, 1], 3), 0, 90).data, [0.5 * Math.SQRT1_2], 4);
    // facing away is clamped at 0
    close(hillshade(f32([0.5, 1, 0.5], 3), 0, 0).data, [0]);
    expect(() => hillshade(f32([0.5]), 0, 0)).toThrow(/3-band/);
  });

  it('colour twist: one output channel per row; extra columns ignored', () => {
    close(
      colourTwist(f32([0.1, 0.2, 0.3], 3), [
        [0, 0, 1],
        [0, 1, 0],
        [1, 0, 0],
      ]).data,
      [0.3, 0.2, 0.1],
    );
    const grey = colourTwist(f32([0.2, 0.4, 0.6], 3), [[0.5, 0.5, 0, 99]]);
    expect(grey.channels).toBe(1);
    close(grey.data, [0.3]);
    expect(() => colourTwist(f32([0.1]), [])).toThrow(ImageServerError);
  });

  it('convolution: edges extended, divided by a positive kernel sum, not by a zero one', () => {
    const img = f32([0, 1, 2, 3, 4, 5, 6, 7, 8], 1, 3, 3);
    const box = convolve(img, [1, 1, 1, 1, 1, 1, 1, 1, 1]);
    // corner: rows {0,0,1} × cols {0,0,1} = 0+0+1 + 0+0+1 + 3+3+4 = 12
    close(box.data, [12 / 9, 2, 24 / 9, 30 / 9, 4, 42 / 9, 48 / 9, 6, 60 / 9], 5);
    const laplace = convolve(img, [0, -1, 0, -1, 4, -1, 0, -1, 0]);
    expect(laplace.data[4]).toBeCloseTo(0, 6);
    expect(laplace.data[0]).toBeCloseTo(-4, 6);
    // 5×5 identity on a two-channel image leaves it alone
    const id5 = new Array<number>(25).fill(0);
    id5[12] = 1;
    close(convolve(f32([1, 2, 3, 4], 2, 2, 1), id5).data, [1, 2, 3, 4]);
    expect(kernelSize(new Array<number>(25).fill(1))).toBe(5);
    expect(() => kernelSize([1, 2, 3, 4])).toThrow(/odd size/);
    expect(() => kernelSize(new Array<number>(81).fill(1))).toThrow(/odd size/);
  });

  it('quantises with the contrast factor, rounding and clamping; to 16 bits too', () => {
    expect(list(quantise(f32([0, 0.5019608, 1, 1.2, -0.1, NaN]), 1, 8))).toEqual([0, 128, 255, 255, 0, 0]);
    expect(list(quantise(f32([0.2, 0.6]), 2, 8))).toEqual([102, 255]);
    expect(list(quantise(f32([0, 0.5, 1, 2]), 1, 16))).toEqual([0, 32768, 65535, 65535]);
  });

  it('changes depth without processing: 16 → 8 by >> 8, 8 → 16 by × 257', () => {
    expect(list(shiftTo8(u16([0, 255, 256, 65535, 4095])))).toEqual([0, 0, 1, 255, 15]);
    expect(list(widenTo16(u8([0, 1, 255])))).toEqual([0, 257, 65535]);
  });
});

describe('after resizing: channels, greyscale, bitonal, equalisation', () => {
  it('reduces channels for each encoder', () => {
    expect(reduceChannels(u8([1, 2, 3, 4, 5, 6, 7, 8], 2), 'jpg').channels).toBe(1);
    expect(list(reduceChannels(u8([1, 2, 3, 4], 4), 'jpg'))).toEqual([1, 2, 3]);
    expect(reduceChannels(u8([1, 2, 3, 4], 4), 'png').channels).toBe(4);
    expect(list(reduceChannels(u8([1, 2, 3, 4, 5, 6], 6), 'png'))).toEqual([1, 2, 3]);
    expect(reduceChannels(u8([1, 2], 2), 'webp').channels).toBe(2);
  });

  it("greyscale with iipsrv's fixed-point weights; alpha kept; grey images unchanged", () => {
    expect(list(greyscale(u8([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 10, 20, 30], 3)))).toEqual([76, 149, 29, 255, 18]);
    expect(list(greyscale(u8([255, 255, 255, 7], 4)))).toEqual([255, 7]);
    expect(list(greyscale(u16([65535, 0, 0, 65535, 65535, 65535], 3)))).toEqual([19594, 65535]);
    const g = u8([1, 2]);
    expect(greyscale(g)).toBe(g);
  });

  it("Otsu's threshold splits a bimodal histogram; bitonal output is 0/255", () => {
    const h = new Float64Array(256);
    h[20] = 100;
    h[200] = 100;
    const t = otsuThreshold(h);
    expect(t).toBeGreaterThanOrEqual(20);
    expect(t).toBeLessThan(200);
    const h2 = new Float64Array(256);
    for (let i = 0; i < 50; i++) h2[i] = 10;
    for (let i = 150; i < 256; i++) h2[i] = 10;
    const t2 = otsuThreshold(h2);
    expect(t2).toBeGreaterThanOrEqual(49);
    expect(t2).toBeLessThan(150);
    expect(list(binarise(u8([10, 100, 160, 250]), 100))).toEqual([0, 0, 255, 255]);
    // colour is made grey first: (255, 0, 0) → 76
    expect(list(binarise(u8([255, 0, 0, 0, 255, 0], 3), 100))).toEqual([0, 255]);
    // 16-bit samples compare by their high byte with the 8-bit threshold
    expect(list(binarise(u16([25855, 25856]), 100))).toEqual([0, 65535]);
  });

  it('equalises with the cumulative histogram (identity for a flat histogram); alpha untouched', () => {
    const flat = new Float64Array(256).fill(1);
    expect(list(equalise(u8([0, 100, 255]), flat))).toEqual([0, 100, 255]);
    const two = new Float64Array(256);
    two[100] = 50;
    two[200] = 50;
    expect(list(equalise(u8([50, 100, 150, 200, 250], 1), two))).toEqual([0, 0, 0, 255, 255]);
    // grey + alpha: the alpha band (100, 200, 77) is left alone
    expect(list(equalise(u8([50, 100, 150, 200, 250, 77], 2), two))).toEqual([0, 100, 0, 200, 255, 77]);
  });

  it('the histogram bins normalised samples and averages over channels', () => {
    const h = histogramOf(f32([0, 1, 0.5, 0.5], 2));
    expect(h[0]).toBe(0.5);
    expect(h[255]).toBe(0.5);
    expect(h[128]).toBe(1);
  });
});

describe('processSamples: one fixed order (§4.7)', () => {
  const ctx = (over: Partial<SampleContext> = {}): SampleContext => ({
    minValues: [0],
    maxValues: [255],
    cielab: false,
    depth: 8,
    ...over,
  });

  it('leaves plain 8-bit data alone and shifts 16-bit data without processing', async () => {
    const p = u8([1, 2, 3]);
    expect(await processSamples(p, false, undefined, ctx())).toBe(p);
    expect(list(await processSamples(u16([0, 4095, 65535]), false, undefined, ctx({ maxValues: [4095] })))).toEqual([0, 15, 255]);
    expect(list(await processSamples(u16([0, 4095, 65535]), false, undefined, ctx({ depth: 16 })))).toEqual([0, 4095, 65535]);
  });

  it('normalises 16-bit data by SMin/SMax once any float operation is asked for', async () => {
    // INV on 12-bit data: 1 − v/4095
    expect(list(await processSamples(u16([0, 4095, 1000]), false, { invert: true }, ctx({ maxValues: [4095] })))).toEqual([255, 0, 193]);
  });

  it('always normalises float data', async () => {
    expect(list(await processSamples(f32([-10, 0, 10, 5]), true, undefined, ctx({ minValues: [-10], maxValues: [10] })))).toEqual([
      0, 128, 255, 191,
    ]);
  });

  it('gamma comes before inversion, inversion before the colormap, whatever the request order', async () => {
    // 0.64 → gamma 0.5 → 0.8 → invert → 0.2 → 51 (the other order would give 153)
    const v = Math.round(0.64 * 255);
    const out = await processSamples(u8([v]), false, { invert: true, gamma: 0.5 }, ctx());
    expect(list(out)).toEqual([Math.round((1 - Math.sqrt(v / 255)) * 255)]);
    // invert then colormap: 0.8 → 0.2 → hot → (0.6, 0, 0)
    const cm = await processSamples(u8([204]), false, { colormap: 'hot', invert: true }, ctx());
    expect(list(cm)).toEqual([153, 0, 0]);
  });

  it('contrast multiplies last, after the convolution', async () => {
    const img: Pixels<Uint8Array> = { data: Uint8Array.from([0, 51, 102, 51, 102, 153, 102, 153, 204]), width: 3, height: 3, channels: 1 };
    const out = await processSamples(img, false, { contrast: 2, convolution: [0, 0, 0, 0, 1, 0, 0, 0, 0] }, ctx());
    expect(list(out)).toEqual([0, 102, 204, 102, 204, 255, 204, 255, 255]);
  });

  it('selects bands of a multispectral image with their own ranges', async () => {
    const p = u16([200, 200, 300, 400, 500, 600], 6);
    const out = await processSamples(
      p,
      false,
      { bands: [4, 0], invert: true },
      ctx({ minValues: [0], maxValues: [1000, 1000, 1000, 1000, 500, 1000] }),
    );
    expect(out.channels).toBe(2);
    // band 4 (500 of 500) inverted → 0; band 0 (200 of 1000) → 0.8 → 204
    expect(list(out)).toEqual([0, 204]);
    await expect(processSamples(p, false, { bands: [6] }, ctx())).rejects.toThrow(/Band 6 does not exist/);
  });

  it('converts CIELAB to sRGB before anything else', async () => {
    const out = await processSamples(
      f32([100, 0, 0, 0, 0, 0], 3),
      true,
      undefined,
      ctx({ cielab: true, minValues: [0], maxValues: [100] }),
    );
    expect(list(out)).toEqual([255, 255, 255, 0, 0, 0]);
  });

  it('runs large images in blocks with the same result', async () => {
    const w = 700;
    const h = 300;
    const data = new Uint16Array(w * h);
    for (let i = 0; i < data.length; i++) data[i] = (i * 37) % 65536;
    const p: Pixels<Uint16Array> = { data, width: w, height: h, channels: 1 };
    const blocked = await processSamples(p, false, { gamma: 0.7 }, ctx({ maxValues: [65535] }));
    const whole = quantise(gamma(normalise(p, [0], [65535]), 0.7), 1, 8);
    expect(Buffer.from(blocked.data).equals(Buffer.from(whole.data))).toBe(true);
    // the convolution too reads across block boundaries correctly
    const k = [1, 2, 1, 2, 4, 2, 1, 2, 1];
    const conv = await processSamples(p, false, { convolution: k, contrast: 1.5 }, ctx({ maxValues: [65535] }));
    const convWhole = quantise(convolve(normalise(p, [0], [65535]), k), 1.5, 8);
    expect(Buffer.from(conv.data).equals(Buffer.from(convWhole.data))).toBe(true);
  });

  it('knows which requests need the float pipeline', () => {
    expect(needsFloatPipeline(undefined, false)).toBe(false);
    expect(needsFloatPipeline({ contrast: 1, gamma: 1 }, false)).toBe(false);
    expect(needsFloatPipeline({ contrast: 'equalization' }, false)).toBe(false);
    expect(needsFloatPipeline({ bands: [0] }, false)).toBe(false);
    expect(needsFloatPipeline(undefined, true)).toBe(true);
    for (const p of [
      { contrast: 1.5 },
      { contrast: 'stretch' as const },
      { gamma: 'log' as const },
      { invert: true },
      { colormap: 'jet' as const },
    ])
      expect(needsFloatPipeline(p, false)).toBe(true);
  });

  it('selectBands rejects bands the image does not have', () => {
    expect(() => selectBands(u8([1, 2], 2), [2])).toThrow(/Band 2 does not exist: the image has 2 bands/);
    expect(list(selectBands(u8([1, 2, 3, 4, 5, 6], 3), [2, 0]))).toEqual([3, 1, 6, 4]);
  });
});
