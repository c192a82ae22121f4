// Pixel processing of the neutral view request (iipsrv-behaviour.md §4.7, §11.3, §11.4, §11.6):
// pure functions over typed arrays for the operations sharp does not have or does differently
// (CIELAB→sRGB, min/max normalisation of 16-bit and float data, hill shading, colour twist,
// gamma, log, inversion, colormaps, float convolution, Rec. 601 integer greyscale as iipsrv,
// Otsu binarisation and equalisation from the image's own histogram), plus `processSamples`,
// which applies steps 1–3 of §4.7 in their one fixed order whatever order the commands came in.
// Resizing, flipping, rotation and encoding stay in sharp (src/image/render.ts).
//
// Why JavaScript here: sharp 0.35.3 has no pow/LUT operation, its `convolve` works on integer
// data only (float raw input comes back as zeros, measured), and raw input is limited to four
// bands. These loops run on tile-sized data — the planner reads the smallest sufficient level,
// so the work follows the output size — and `processSamples` yields to the event loop between
// row blocks on large regions.

import { ImageServerError } from '../core/errors.js';
import type { Colormap, OutputFormat, Processing } from '../core/view.js';

export type SampleData = Uint8Array | Uint16Array | Float32Array;

/** Interleaved samples, row-major, top-left first. */
export interface Pixels<T extends SampleData = SampleData> {
  readonly data: T;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
}

/** 256-bin histogram of an image's normalised values, averaged over channels (iipsrv §11.3). */
export type Histogram = Float64Array;

const pixelCount = (p: Pixels): number => p.width * p.height;

/** A new zeroed array of the same kind (never a Buffer, whose constructor is deprecated). */
function alloc<T extends SampleData>(like: T, n: number): T {
  if (like instanceof Float32Array) return new Float32Array(n) as T;
  if (like instanceof Uint16Array) return new Uint16Array(n) as T;
  return new Uint8Array(n) as T;
}

// ---------------------------------------------------------------------------------------------
// Step 1: band selection (multispectral)

/** Keeps `bands` (channel indices, in output order); rejects indices the image does not have. */
export function selectBands<T extends SampleData>(p: Pixels<T>, bands: readonly number[]): Pixels<T> {
  if (bands.length === 0) return p;
  for (const b of bands) {
    if (!Number.isInteger(b) || b < 0 || b >= p.channels) {
      throw new ImageServerError('BAD_REQUEST', `Band ${b} does not exist: the image has ${p.channels} bands (0 to ${p.channels - 1})`);
    }
  }
  const n = pixelCount(p);
  const out = alloc(p.data, n * bands.length);
  const c = p.channels;
  const k = bands.length;
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) out[i * k + j] = p.data[i * c + bands[j]];
  return { data: out, width: p.width, height: p.height, channels: k };
}

// ---------------------------------------------------------------------------------------------
// Step 2: CIELAB → sRGB (§11.4)

const D65 = [95.047, 100, 108.8827] as const;
/** XYZ → linear sRGB, IEC 61966-2-1. */
const XYZ_TO_SRGB = [
  [3.240479, -1.53715, -0.498535],
  [-0.969256, 1.875992, 0.041556],
  [0.055648, -0.204043, 1.057311],
] as const;

/** sRGB transfer function (IEC 61966-2-1) of a linear value, clipped to [0, 1]. */
export function srgbEncode(v: number): number {
  if (!(v > 0)) return 0;
  const e = v <= 0.0031308 ? 12.92 * v : 1.055 * Math.pow(v, 1 / 2.4) - 0.055;
  return e > 1 ? 1 : e;
}

/** One CIELAB colour (L 0–100, a, b) to gamma-encoded sRGB in [0, 1] (D65, as iipsrv). */
export function labPixelToSrgb(L: number, a: number, b: number): [number, number, number] {
  // CIE inverse of f(t): the cube above the knee, the linear segment below it (κ = 903.3).
  const fy = (L + 16) / 116;
  const fx = fy + a / 500;
  const fz = fy - b / 200;
  const inv = (f: number): number => (f > 6 / 29 ? f * f * f : (f - 16 / 116) * (3 * (6 / 29) * (6 / 29)));
  const Y = L > 8 ? fy * fy * fy : L / 903.3;
  const X = (D65[0] / 100) * inv(fx);
  const Z = (D65[2] / 100) * inv(fz);
  const m = XYZ_TO_SRGB;
  return [
    srgbEncode(m[0][0] * X + m[0][1] * Y + m[0][2] * Z),
    srgbEncode(m[1][0] * X + m[1][1] * Y + m[1][2] * Z),
    srgbEncode(m[2][0] * X + m[2][1] * Y + m[2][2] * Z),
  ];
}

/**
 * The sRGB transfer function as a table over [0, 1] read with linear interpolation: three
 * `Math.pow` per pixel made CIELAB tiles eight times slower than RGB ones. 16384 steps keep the
 * error below 0.0002 (0.05 of a level at 8 bits), worst just above the linear toe.
 */
const ENCODE_STEPS = 16384;
const ENCODE_TABLE = (() => {
  const t = new Float64Array(ENCODE_STEPS + 2);
  for (let i = 0; i <= ENCODE_STEPS + 1; i++) t[i] = srgbEncode(i / ENCODE_STEPS);
  return t;
})();

function encodeFast(v: number): number {
  if (!(v > 0)) return 0;
  if (v >= 1) return 1;
  // The linear toe is exact and cheap; the table covers the power segment.
  if (v <= 0.0031308) return 12.92 * v;
  const x = v * ENCODE_STEPS;
  const i = x | 0;
  const f = x - i;
  return ENCODE_TABLE[i] + f * (ENCODE_TABLE[i + 1] - ENCODE_TABLE[i]);
}

/**
 * Float L*, a*, b* (+ extra bands) to float sRGB in [0, 1]; extra bands are copied unchanged
 * (they are normalised later with their own range). Same arithmetic as `labPixelToSrgb`,
 * inlined, with the tabulated transfer function.
 */
export function labToSrgb(p: Pixels<Float32Array>): Pixels<Float32Array> {
  if (p.channels < 3) throw new ImageServerError('UNSUPPORTED_IMAGE', `Unsupported image: CIELAB with ${p.channels} bands`);
  const n = pixelCount(p);
  const c = p.channels;
  const out = new Float32Array(n * c);
  const d = p.data;
  const xw = D65[0] / 100;
  const zw = D65[2] / 100;
  const knee = 6 / 29;
  const slope = 3 * knee * knee;
  const m = XYZ_TO_SRGB;
  for (let i = 0; i < n; i++) {
    const o = i * c;
    const L = d[o];
    const fy = (L + 16) / 116;
    const fx = fy + d[o + 1] / 500;
    const fz = fy - d[o + 2] / 200;
    const Y = L > 8 ? fy * fy * fy : L / 903.3;
    const X = xw * (fx > knee ? fx * fx * fx : (fx - 16 / 116) * slope);
    const Z = zw * (fz > knee ? fz * fz * fz : (fz - 16 / 116) * slope);
    out[o] = encodeFast(m[0][0] * X + m[0][1] * Y + m[0][2] * Z);
    out[o + 1] = encodeFast(m[1][0] * X + m[1][1] * Y + m[1][2] * Z);
    out[o + 2] = encodeFast(m[2][0] * X + m[2][1] * Y + m[2][2] * Z);
    for (let k = 3; k < c; k++) out[o + k] = d[o + k];
  }
  return { ...p, data: out };
}

// ---------------------------------------------------------------------------------------------
// Step 3: the float pipeline

/** `(v − min[c]) / (max[c] − min[c])` per channel; non-finite values become 0 (§11.3). */
export function normalise(p: Pixels, min: readonly number[], max: readonly number[]): Pixels<Float32Array> {
  const n = pixelCount(p);
  const c = p.channels;
  const out = new Float32Array(n * c);
  const d = p.data;
  for (let k = 0; k < c; k++) {
    const lo = min[Math.min(k, min.length - 1)] ?? 0;
    const diff = (max[Math.min(k, max.length - 1)] ?? 1) - lo;
    // A flat range would divide by zero: everything at the minimum maps to 0.
    const inv = Math.abs(diff) > 1e-30 ? 1 / diff : 1e30;
    for (let i = k; i < n * c; i += c) {
      const v = d[i];
      out[i] = Number.isFinite(v) ? (v - lo) * inv : 0;
    }
  }
  return { data: out, width: p.width, height: p.height, channels: c };
}

/** Linear stretch between the histogram's lowest and highest non-empty bins (CNT=st), in place. */
export function stretch(p: Pixels<Float32Array>, hist: Histogram): Pixels<Float32Array> {
  let lo = 0;
  while (lo < 255 && !(hist[lo] > 0)) lo++;
  let hi = 255;
  while (hi > 0 && !(hist[hi] > 0)) hi--;
  if (hi <= lo) return p;
  const a = lo / 255;
  const s = 255 / (hi - lo);
  const d = p.data;
  for (let i = 0; i < d.length; i++) d[i] = (d[i] - a) * s;
  return p;
}

/**
 * Hill shading of a surface-normal image (§11.6): light from `horizontal` degrees clockwise from
 * 12 o'clock, `vertical` degrees down from the horizon; out = clamp(0.5·(light · −(2n − 1))).
 * Pixels whose three samples are all 0 stay 0. One band out.
 */
export function hillshade(p: Pixels<Float32Array>, horizontal: number, vertical: number): Pixels<Float32Array> {
  if (p.channels < 3) {
    throw new ImageServerError('BAD_REQUEST', `Hill shading needs a 3-band surface-normal image; this one has ${p.channels} band(s)`);
  }
  const h = (horizontal * Math.PI) / 180;
  const v = (vertical * Math.PI) / 180;
  let sx = Math.sin(h);
  let sy = Math.cos(h);
  let sz = -Math.sin(v);
  const norm = Math.hypot(sx, sy, sz);
  sx /= norm;
  sy /= norm;
  sz /= norm;
  const n = pixelCount(p);
  const c = p.channels;
  const d = p.data;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * c;
    const x = d[o];
    const y = d[o + 1];
    const z = d[o + 2];
    if (x === 0 && y === 0 && z === 0) continue;
    const dot = 0.5 * (sx * (1 - 2 * x) + sy * (1 - 2 * y) + sz * (1 - 2 * z));
    out[i] = dot < 0 ? 0 : dot > 1 ? 1 : dot;
  }
  return { data: out, width: p.width, height: p.height, channels: 1 };
}

/**
 * Colour twist (CTW): output channel k = Σ_j matrix[k][j] · in[j]. The output has one channel per
 * matrix row; columns beyond the input's channels are ignored, missing ones count as 0.
 */
export function colourTwist(p: Pixels<Float32Array>, matrix: ReadonlyArray<ReadonlyArray<number>>): Pixels<Float32Array> {
  const rows = matrix.length;
  if (rows === 0 || rows > 4) throw new ImageServerError('BAD_REQUEST', `Colour twist: expected 1 to 4 matrix rows but received ${rows}`);
  const n = pixelCount(p);
  const c = p.channels;
  const d = p.data;
  const out = new Float32Array(n * rows);
  const m = matrix.map((row) => row.slice(0, c).map((x) => (Number.isFinite(x) ? x : 0)));
  for (let i = 0; i < n; i++) {
    const o = i * c;
    for (let k = 0; k < rows; k++) {
      const row = m[k];
      let s = 0;
      for (let j = 0; j < row.length; j++) s += row[j] * d[o + j];
      out[i * rows + k] = s;
    }
  }
  return { data: out, width: p.width, height: p.height, channels: rows };
}

/** `v^g` on normalised values, negatives taken as 0 (GAM), in place. */
export function gamma(p: Pixels<Float32Array>, g: number): Pixels<Float32Array> {
  if (g === 1) return p;
  const d = p.data;
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    d[i] = Math.pow(v > 0 ? v : 0, g);
  }
  return p;
}

/** Logarithmic transform `log(1 + 255·v) / log(256)` (GAM=log), in place. */
export function logTransform(p: Pixels<Float32Array>): Pixels<Float32Array> {
  const d = p.data;
  const k = 1 / Math.log(256);
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    d[i] = v > 0 ? Math.log1p(255 * v) * k : 0;
  }
  return p;
}

/** `1 − v` (INV), in place. */
export function invert(p: Pixels<Float32Array>): Pixels<Float32Array> {
  const d = p.data;
  for (let i = 0; i < d.length; i++) d[i] = 1 - d[i];
  return p;
}

/** One value of a colormap (as iipsrv: hot, cold, jet; red, green, blue put v in one channel). */
export function colormapValue(map: Colormap, v: number): [number, number, number] {
  const t = 1 / 3;
  const e = 1 / 8;
  switch (map) {
    case 'hot':
      if (v > 1) return [1, 1, 1];
      if (v <= 0) return [0, 0, 0];
      if (v < t) return [3 * v, 0, 0];
      if (v < 2 * t) return [1, 3 * v - 1, 0];
      return [1, 1, 3 * v - 2];
    case 'cold':
      if (v > 1) return [1, 1, 1];
      if (v <= 0) return [0, 0, 0];
      if (v < t) return [0, 0, 3 * v];
      if (v < 2 * t) return [0, 3 * v - 1, 1];
      return [3 * v - 2, 1, 1];
    case 'jet':
      if (v < 0) return [0, 0, 0];
      if (v < e) return [0, 0, 4 * v + 0.5];
      if (v < 3 * e) return [0, 4 * v - 0.5, 1];
      if (v < 5 * e) return [4 * v - 1.5, 1, 2.5 - 4 * v];
      if (v < 7 * e) return [1, 3.5 - 4 * v, 0];
      if (v < 1) return [4.5 - 4 * v, 0, 0];
      return [0.5, 0, 0];
    case 'red':
      return [clamp01(v), 0, 0];
    case 'green':
      return [0, clamp01(v), 0];
    case 'blue':
      return [0, 0, clamp01(v)];
  }
}

function clamp01(v: number): number {
  return v > 1 ? 1 : v > 0 ? v : 0;
}

/** Pseudo-colour of the first channel (CMP); three channels out. */
export function colormap(p: Pixels<Float32Array>, map: Colormap): Pixels<Float32Array> {
  const n = pixelCount(p);
  const c = p.channels;
  const d = p.data;
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const [r, g, b] = colormapValue(map, d[i * c]);
    out[i * 3] = r;
    out[i * 3 + 1] = g;
    out[i * 3 + 2] = b;
  }
  return { data: out, width: p.width, height: p.height, channels: 3 };
}

/** Side of a square kernel of odd size (1, 3, 5, …); throws for anything else. */
export function kernelSize(kernel: readonly number[]): number {
  const s = Math.round(Math.sqrt(kernel.length));
  if (s * s !== kernel.length || s % 2 !== 1 || s > 7 || !kernel.every(Number.isFinite)) {
    throw new ImageServerError(
      'BAD_REQUEST',
      `Convolution: expected a square kernel of odd size up to 7×7 but received ${kernel.length} values`,
    );
  }
  return s;
}

/**
 * Convolution (CNV) of every channel with a square kernel (row-major); pixels outside the image
 * repeat the edge; the result is divided by the kernel's sum when that sum is positive.
 */
export function convolve(p: Pixels<Float32Array>, kernel: readonly number[]): Pixels<Float32Array> {
  const out = new Float32Array(p.data.length);
  convolveRows(p, kernel, out, 0, p.height);
  return { data: out, width: p.width, height: p.height, channels: p.channels };
}

/** Rows `y0` to `y1` (exclusive) of `convolve`, written into `out` (zeroed, same size as p). */
export function convolveRows(p: Pixels<Float32Array>, kernel: readonly number[], out: Float32Array, y0: number, y1: number): void {
  const s = kernelSize(kernel);
  const r = (s - 1) / 2;
  const sum = kernel.reduce((a, b) => a + b, 0);
  const k = sum > 0 ? kernel.map((x) => x / sum) : kernel.slice();
  const { width: w, height: h, channels: c } = p;
  const d = p.data;
  // Clamped column offsets per x, computed once per kernel column.
  const xs: Int32Array[] = [];
  for (let dx = -r; dx <= r; dx++) {
    const col = new Int32Array(w);
    for (let x = 0; x < w; x++) col[x] = Math.min(w - 1, Math.max(0, x + dx)) * c;
    xs.push(col);
  }
  for (let y = y0; y < y1; y++) {
    for (let ky = 0; ky < s; ky++) {
      const row = Math.min(h - 1, Math.max(0, y + ky - r)) * w * c;
      for (let kx = 0; kx < s; kx++) {
        const weight = k[ky * s + kx];
        if (weight === 0) continue;
        const col = xs[kx];
        let o = y * w * c;
        for (let x = 0; x < w; x++) {
          const src = row + col[x];
          for (let ch = 0; ch < c; ch++) out[o + ch] += weight * d[src + ch];
          o += c;
        }
      }
    }
  }
}

/** Contrast then quantisation: `clamp(round(v · max · c))` to 8 or 16 bits (§4.7 step 3.8). */
export function quantise(p: Pixels<Float32Array>, contrast: number, depth: 8 | 16): Pixels<Uint8Array | Uint16Array> {
  const d = p.data;
  if (depth === 8) {
    // Uint8ClampedArray rounds and clamps natively (NaN → 0).
    const out = new Uint8ClampedArray(d.length);
    const f = 255 * contrast;
    for (let i = 0; i < d.length; i++) out[i] = d[i] * f;
    return { data: new Uint8Array(out.buffer), width: p.width, height: p.height, channels: p.channels };
  }
  const out = new Uint16Array(d.length);
  const f = 65535 * contrast;
  for (let i = 0; i < d.length; i++) {
    const v = Math.round(d[i] * f);
    out[i] = v > 65535 ? 65535 : v > 0 ? v : 0;
  }
  return { data: out, width: p.width, height: p.height, channels: p.channels };
}

/** 16-bit to 8-bit by dropping the low byte (iipsrv without processing, §11.3). */
export function shiftTo8(p: Pixels<Uint16Array>): Pixels<Uint8Array> {
  const d = p.data;
  const out = new Uint8Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = d[i] >> 8;
  return { data: out, width: p.width, height: p.height, channels: p.channels };
}

/** 8-bit to 16-bit (`v · 257`, so 255 → 65535), for 16-bit output of 8-bit data. */
export function widenTo16(p: Pixels<Uint8Array>): Pixels<Uint16Array> {
  const d = p.data;
  const out = new Uint16Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = d[i] * 257;
  return { data: out, width: p.width, height: p.height, channels: p.channels };
}

// ---------------------------------------------------------------------------------------------
// Steps 1–3 in their fixed order

/** What `processSamples` needs to know about the image besides the samples. */
export interface SampleContext {
  /** Per-channel range of the stored samples (SMin/SMaxSampleValue or the type's range). */
  readonly minValues: readonly number[];
  readonly maxValues: readonly number[];
  /** The samples are float L*, a*, b* (+ extra bands). */
  readonly cielab: boolean;
  /** Output depth: 16 only for PNG/TIFF when asked for (Processing.bitDepth). */
  readonly depth: 8 | 16;
  /** The image histogram (for CNT=st); fetched only when needed. */
  histogram?(): Promise<Histogram>;
}

/** True when the float pipeline of §4.7 step 3 must run (or the data is float). */
export function needsFloatPipeline(p: Processing | undefined, float: boolean): boolean {
  if (float) return true;
  if (!p) return false;
  return (
    (typeof p.contrast === 'number' && p.contrast !== 1) ||
    p.contrast === 'stretch' ||
    (p.gamma !== undefined && p.gamma !== 1) ||
    p.colormap !== undefined ||
    p.hillshade !== undefined ||
    p.invert === true ||
    (p.minmax !== undefined && p.minmax.length > 0) ||
    p.twist !== undefined ||
    p.convolution !== undefined
  );
}

/** The per-channel range after MINMAX overrides (channel −1 = every channel). */
export function effectiveRange(
  channels: number,
  minValues: readonly number[],
  maxValues: readonly number[],
  minmax: Processing['minmax'],
): { min: number[]; max: number[] } {
  const at = (v: readonly number[], i: number, d: number): number => v[Math.min(i, v.length - 1)] ?? d;
  const min = Array.from({ length: channels }, (_, i) => at(minValues, i, 0));
  const max = Array.from({ length: channels }, (_, i) => at(maxValues, i, 255));
  for (const m of minmax ?? []) {
    if (m.channel < 0) {
      min.fill(m.min);
      max.fill(m.max);
    } else if (m.channel < channels) {
      min[m.channel] = m.min;
      max[m.channel] = m.max;
    }
  }
  return { min, max };
}

/** Rows per block between yields to the event loop for large regions (about 256² pixels). */
const BLOCK_PIXELS = 65536;

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * §4.7 steps 1–3: CIELAB → sRGB, band selection, then either the float pipeline (normalise or
 * stretch, SHD, CTW, GAM/log, INV, CMP, CNV, contrast and quantisation) or, for plain integer
 * data, the depth change (16 → 8 by >> 8 as iipsrv, 8 → 16 when 16-bit output is asked for).
 * The result is 8- or 16-bit integer samples (`ctx.depth`).
 */
export async function processSamples(
  input: Pixels,
  float: boolean,
  processing: Processing | undefined,
  ctx: SampleContext,
): Promise<Pixels<Uint8Array | Uint16Array>> {
  const cielab = ctx.cielab;
  const bands = processing?.bands && processing.bands.length > 0 ? processing.bands : undefined;
  let min = ctx.minValues;
  let max = ctx.maxValues;
  // CIELAB first, so that band numbers of a CIELAB image mean R, G, B like everywhere else; the
  // sRGB bands are in [0, 1] then, extra bands keep their own range.
  if (cielab) {
    min = [0, 0, 0, ...min.slice(3)];
    max = [1, 1, 1, ...max.slice(3)];
  }
  if (bands) {
    const lo = min;
    const hi = max;
    min = bands.map((b) => lo[Math.min(b, lo.length - 1)] ?? 0);
    max = bands.map((b) => hi[Math.min(b, hi.length - 1)] ?? 255);
  }

  if (!needsFloatPipeline(processing, float || cielab)) {
    const p = bands ? selectBands(input, bands) : input;
    if (p.data instanceof Uint16Array) {
      return ctx.depth === 16 ? (p as Pixels<Uint16Array>) : shiftTo8(p as Pixels<Uint16Array>);
    }
    if (p.data instanceof Uint8Array) return ctx.depth === 16 ? widenTo16(p as Pixels<Uint8Array>) : (p as Pixels<Uint8Array>);
  }

  const range = effectiveRange(bands ? bands.length : input.channels, min, max, processing?.minmax);
  const hist = processing?.contrast === 'stretch' && ctx.histogram ? await ctx.histogram() : undefined;
  const contrast = typeof processing?.contrast === 'number' ? processing.contrast : 1;

  // Every step but the convolution is pointwise: it runs per block of rows, with a yield to the
  // event loop between blocks, so that a large region does not hold up other requests.
  const pointwise = (block: Pixels): Pixels<Float32Array> => {
    let b = block;
    if (cielab) b = labToSrgb(b as Pixels<Float32Array>);
    if (bands) b = selectBands(b, bands);
    let f = normalise(b, range.min, range.max);
    if (hist) f = stretch(f, hist);
    if (processing?.hillshade) f = hillshade(f, processing.hillshade.horizontal, processing.hillshade.vertical);
    if (processing?.twist) f = colourTwist(f, processing.twist);
    if (processing?.gamma === 'log') f = logTransform(f);
    else if (typeof processing?.gamma === 'number') f = gamma(f, processing.gamma);
    if (processing?.invert) f = invert(f);
    if (processing?.colormap) f = colormap(f, processing.colormap);
    return f;
  };
  const { width, height } = input;
  const rowsPerBlock = Math.max(1, Math.floor(BLOCK_PIXELS / width));
  const blocks: Array<[number, number]> = [];
  for (let y = 0; y < height; y += rowsPerBlock) blocks.push([y, Math.min(height, y + rowsPerBlock)]);
  const rowsOf = (p: Pixels, y0: number, y1: number): Pixels => ({
    ...p,
    data: p.data.subarray(y0 * p.width * p.channels, y1 * p.width * p.channels),
    height: y1 - y0,
  });

  let out: Uint8Array | Uint16Array | undefined;
  let floats: Float32Array | undefined;
  let channels = 0;
  const kernel = processing?.convolution;
  for (const [i, [y0, y1]] of blocks.entries()) {
    if (i > 0) await yieldToLoop();
    const f = pointwise(rowsOf(input, y0, y1));
    channels = f.channels;
    const at = y0 * width * channels;
    if (kernel) {
      floats ??= new Float32Array(width * height * channels);
      floats.set(f.data, at);
    } else {
      const q = quantise(f, contrast, ctx.depth);
      out ??= ctx.depth === 16 ? new Uint16Array(width * height * channels) : new Uint8Array(width * height * channels);
      out.set(q.data, at);
    }
  }
  if (kernel && floats) {
    // Convolution reads neighbouring rows: whole image in, blocks of rows out.
    const all: Pixels<Float32Array> = { data: floats, width, height, channels };
    const conv = new Float32Array(floats.length);
    out = ctx.depth === 16 ? new Uint16Array(floats.length) : new Uint8Array(floats.length);
    for (const [i, [y0, y1]] of blocks.entries()) {
      if (i > 0) await yieldToLoop();
      convolveRows(all, kernel, conv, y0, y1);
      const q = quantise(rowsOf({ ...all, data: conv }, y0, y1) as Pixels<Float32Array>, contrast, ctx.depth);
      out.set(q.data, y0 * width * channels);
    }
  }
  return { data: out!, width, height, channels };
}

// ---------------------------------------------------------------------------------------------
// Steps 5–8, after resizing: integer samples

/** Channels each encoder takes (§4.7 step 5): JPEG 1 or 3; the others up to 4 (> 4 → 3). */
export function reduceChannels<T extends Uint8Array | Uint16Array>(p: Pixels<T>, format: OutputFormat): Pixels<T> {
  const c = p.channels;
  let keep = c;
  if (format === 'jpg') keep = c === 2 ? 1 : c > 3 ? 3 : c;
  else if (c > 4) keep = 3;
  if (keep === c) return p;
  return selectBands(
    p,
    Array.from({ length: keep }, (_, i) => i),
  );
}

/** Rec. 601 luma weights in iipsrv's fixed point: (1254097 R + 2462056 G + 478151 B) >> 22. */
const WR = 1254097;
const WG = 2462056;
const WB = 478151;

/**
 * Greyscale (COL=gray, IIIF gray) on the gamma-encoded values with iipsrv's integer weights; a
 * fourth (alpha) channel is kept. One- and two-channel images are grey already.
 */
export function greyscale<T extends Uint8Array | Uint16Array>(p: Pixels<T>): Pixels<T> {
  const c = p.channels;
  if (c < 3) return p;
  const n = pixelCount(p);
  const alpha = c === 4;
  const k = alpha ? 2 : 1;
  const d = p.data;
  const out = alloc(d, n * k);
  const wide = d instanceof Uint16Array;
  for (let i = 0; i < n; i++) {
    const o = i * c;
    const sum = WR * d[o] + WG * d[o + 1] + WB * d[o + 2];
    // 8-bit sums stay below 2^31; 16-bit ones need floating point.
    out[i * k] = wide ? Math.floor(sum / 4194304) : sum >> 22;
    if (alpha) out[i * k + 1] = d[o + 3];
  }
  return { data: out, width: p.width, height: p.height, channels: k };
}

/**
 * The 256-bin histogram of normalised samples (`round(v·255)` per sample, every channel), divided
 * by the number of channels, as iipsrv keeps it per image.
 */
export function histogramOf(p: Pixels<Float32Array>): Histogram {
  const h = new Float64Array(256);
  const d = p.data;
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    const bin = Number.isFinite(v) ? Math.round(v * 255) : 0;
    h[bin < 0 ? 0 : bin > 255 ? 255 : bin]++;
  }
  for (let i = 0; i < 256; i++) h[i] /= p.channels;
  return h;
}

/** Otsu's threshold: the bin t maximising the between-class variance of bins ≤ t and > t. */
export function otsuThreshold(hist: Histogram): number {
  let total = 0;
  let sumAll = 0;
  for (let i = 0; i < 256; i++) {
    total += hist[i];
    sumAll += i * hist[i];
  }
  if (total === 0) return 127;
  let w0 = 0;
  let sum0 = 0;
  let best = -1;
  let threshold = 127;
  for (let t = 0; t < 255; t++) {
    w0 += hist[t];
    sum0 += t * hist[t];
    const w1 = total - w0;
    if (w0 === 0 || w1 === 0) continue;
    const m0 = sum0 / w0;
    const m1 = (sumAll - sum0) / w1;
    const between = w0 * w1 * (m0 - m1) * (m0 - m1);
    if (between > best) {
      best = between;
      threshold = t;
    }
  }
  return threshold;
}

/** Bitonal (COL=binary, IIIF bitonal): grey, then `v > t` → white, else black; alpha kept. */
export function binarise<T extends Uint8Array | Uint16Array>(p: Pixels<T>, threshold: number): Pixels<T> {
  const g = greyscale(p);
  const d = g.data;
  const wide = d instanceof Uint16Array;
  const top = wide ? 65535 : 255;
  // The threshold is a bin of the 8-bit histogram: 16-bit samples compare by their high byte.
  const shift = wide ? 8 : 0;
  const out = alloc(d, d.length);
  const c = g.channels;
  for (let i = 0; i < d.length; i += c) {
    out[i] = d[i] >> shift > threshold ? top : 0;
    if (c === 2) out[i + 1] = d[i + 1];
  }
  return { ...g, data: out };
}

/** Histogram equalisation (CNT=eq) with the image histogram's cumulative distribution, in place. */
export function equalise<T extends Uint8Array | Uint16Array>(p: Pixels<T>, hist: Histogram): Pixels<T> {
  const cdf = new Float64Array(256);
  let acc = 0;
  for (let i = 0; i < 256; i++) {
    acc += hist[i];
    cdf[i] = acc;
  }
  let first = 0;
  while (first < 255 && !(cdf[first] > 0)) first++;
  const low = cdf[first];
  const span = acc - low;
  const lut = new Float64Array(256);
  for (let i = 0; i < 256; i++) lut[i] = span > 0 ? Math.max(0, (cdf[i] - low) / span) : i / 255;
  const d = p.data;
  const wide = d instanceof Uint16Array;
  // Alpha is left alone.
  const colour = p.channels === 2 || p.channels === 4 ? p.channels - 1 : p.channels;
  for (let i = 0; i < d.length; i += p.channels) {
    for (let k = 0; k < colour; k++) {
      const v = d[i + k];
      d[i + k] = wide ? Math.round(lut[v >> 8] * 65535) : Math.round(lut[v] * 255);
    }
  }
  return p;
}
