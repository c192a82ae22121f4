// Raw sample reading for the TIFF layouts that libvips would reinterpret: CIELAB (converted to
// sRGB on load) and multi-band images (extra samples taken as alpha, grey expanded to RGB —
// peers.md §7.1). Here the stored samples are decompressed and assembled in JavaScript, so
// every band keeps its index and value. Only the tiles or strips a rectangle touches are read.
// Codecs: none, LZW, Deflate, PackBits, with the horizontal and floating-point predictors;
// anything else is refused when the file is opened (see `rawCodecSupported`).

import { promisify } from 'node:util';
import { inflate } from 'node:zlib';
import { ImageServerError } from '../../src/core/errors.js';
import type { Rect } from '../../src/core/view.js';
import type { Ifd } from './ifd.js';

const inflateAsync = promisify(inflate);

/** TIFF Predictor tag. */
export const PREDICTOR_TAG = 317;

const RAW_CODECS = new Set([1, 5, 8, 32946, 32773]);

export function rawCodecSupported(compression: number): boolean {
  return RAW_CODECS.has(compression);
}

export type SampleArray = Uint8Array | Uint16Array | Uint32Array | Float32Array;

/** How the samples of one IFD are stored. */
export interface SampleLayout {
  readonly samplesPerPixel: number;
  /** 8, 16 or 32 bits per sample. */
  readonly bits: 8 | 16 | 32;
  /** 3 = IEEE float; anything else is read as unsigned (signedness is the caller's business). */
  readonly float: boolean;
  readonly compression: number;
  /** 1 none, 2 horizontal differencing, 3 floating point. */
  readonly predictor: number;
  readonly littleEndian: boolean;
  /**
   * Stored bits per sample when they are not 8, 16 or 32 (2, 4, 6, 10, 12, 14): rows are packed
   * most significant bit first and padded to a byte, and each sample is widened to `bits` (8 or
   * 16) by bit replication, so that the maximum maps to the maximum (iipsrv after 1.3).
   */
  readonly packedBits?: number;
  /** MinIsWhite packed samples are inverted, so that 0 is black as everywhere else. */
  readonly minIsWhite?: boolean;
}

/** Bytes of one stored row of `cols` pixels. */
export function storedRowBytes(layout: SampleLayout, cols: number): number {
  return Math.ceil((cols * layout.samplesPerPixel * (layout.packedBits ?? layout.bits)) / 8);
}

/**
 * Unpacks rows of `packedBits`-bit samples into `bits`-bit ones: v is widened by repeating its
 * bits from the top (12 → 16: v·16 + v/256), as libtiff-based readers and iipsrv do.
 */
export function unpackSamples(bytes: Uint8Array, layout: SampleLayout, cols: number, rows: number): Uint8Array | Uint16Array {
  const n = layout.packedBits!;
  const wide = layout.bits === 16;
  const out = wide ? new Uint16Array(cols * rows * layout.samplesPerPixel) : new Uint8Array(cols * rows * layout.samplesPerPixel);
  const table = widening(n, wide ? 16 : 8, layout.minIsWhite === true);
  const mask = (1 << n) - 1;
  const rowSamples = cols * layout.samplesPerPixel;
  const rowBytes = storedRowBytes(layout, cols);
  for (let r = 0; r < rows; r++) {
    // Bits are taken from the top of an accumulator fed a byte at a time (at most n + 7 bits).
    let at = r * rowBytes;
    let acc = 0;
    let held = 0;
    for (let i = 0; i < rowSamples; i++) {
      while (held < n) {
        acc = ((acc << 8) | (bytes[at++] ?? 0)) & 0xffffff;
        held += 8;
      }
      held -= n;
      out[r * rowSamples + i] = table[(acc >> held) & mask];
    }
  }
  return out;
}

const widenings = new Map<string, Uint16Array>();

/** Every n-bit value widened to `to` bits by bit replication (inverted first for MinIsWhite); made once. */
function widening(n: number, to: number, invert: boolean): Uint16Array {
  const key = `${n}:${to}:${invert}`;
  const known = widenings.get(key);
  if (known) return known;
  const table = new Uint16Array(1 << n);
  widenings.set(key, table);
  for (let v = 0; v < table.length; v++) {
    const x = invert ? table.length - 1 - v : v;
    let w = 0;
    for (let filled = 0; filled < to; filled += n) w = filled + n <= to ? (w << n) | x : (w << (to - filled)) | (x >> (n - (to - filled)));
    table[v] = w;
  }
  return table;
}

/** Samples of `rect`, interleaved, row-major, in native byte order. */
export interface SampleBlock {
  readonly data: SampleArray;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
}

function corrupt(detail: string): ImageServerError {
  return new ImageServerError('CORRUPT_IMAGE', undefined, detail);
}

/**
 * TIFF LZW (codes of 9 to 12 bits, most significant bit first, with the "early change" of
 * libtiff's writer): decodes `src` into at most `expected` bytes.
 */
export function lzwDecode(src: Uint8Array, expected: number): Uint8Array {
  const out = new Uint8Array(expected);
  // The table as prefix links: entry i is (prefix[i], suffix[i]) with length[i] bytes.
  const prefix = new Int32Array(4096);
  const suffix = new Uint8Array(4096);
  const length = new Int32Array(4096);
  for (let i = 0; i < 256; i++) {
    prefix[i] = -1;
    suffix[i] = i;
    length[i] = 1;
  }
  let next = 258;
  let width = 9;
  let bitPos = 0;
  const totalBits = src.length * 8;
  let o = 0;
  let old = -1;
  const readCode = (): number => {
    if (bitPos + width > totalBits) return 257;
    // A code spans at most three bytes; bytes past the end read as 0.
    const i = bitPos >> 3;
    const word = (src[i] << 16) | ((src[i + 1] ?? 0) << 8) | (src[i + 2] ?? 0);
    bitPos += width;
    return (word >> (24 - width - ((bitPos - width) & 7))) & ((1 << width) - 1);
  };
  const firstByte = (code: number): number => {
    let c = code;
    while (prefix[c] >= 0) c = prefix[c];
    return suffix[c];
  };
  const emit = (code: number): void => {
    const len = length[code];
    let end = o + len;
    let c = code;
    // Write backwards from the end of the string; truncate at the output's end.
    for (let p = end - 1; p >= o; p--) {
      if (p < expected) out[p] = suffix[c];
      c = prefix[c];
    }
    if (end > expected) end = expected;
    o = end;
  };
  while (o < expected) {
    const code = readCode();
    if (code === 257) break;
    if (code === 256) {
      next = 258;
      width = 9;
      const first = readCode();
      if (first === 257) break;
      if (first > 255) throw corrupt(`LZW: code ${first} after a clear code`);
      emit(first);
      old = first;
      continue;
    }
    if (old < 0) throw corrupt('LZW: stream does not start with a clear code');
    if (code < next) {
      emit(code);
      if (next < 4096) {
        prefix[next] = old;
        suffix[next] = firstByte(code);
        length[next] = length[old] + 1;
        next++;
      }
    } else if (code === next) {
      const k = firstByte(old);
      if (next < 4096) {
        prefix[next] = old;
        suffix[next] = k;
        length[next] = length[old] + 1;
        next++;
      }
      emit(code);
    } else {
      throw corrupt(`LZW: code ${code} beyond the table (${next})`);
    }
    old = code;
    // Early change: the width grows one code before the table fills.
    if (next + 1 >= 1 << width && width < 12) width++;
  }
  return out;
}

/** PackBits run-length decoding into at most `expected` bytes. */
export function packbitsDecode(src: Uint8Array, expected: number): Uint8Array {
  const out = new Uint8Array(expected);
  let i = 0;
  let o = 0;
  while (i < src.length && o < expected) {
    const n = (src[i++] << 24) >> 24;
    if (n >= 0) {
      const count = Math.min(n + 1, expected - o, src.length - i);
      out.set(src.subarray(i, i + count), o);
      i += n + 1;
      o += count;
    } else if (n !== -128) {
      const count = Math.min(1 - n, expected - o);
      out.fill(src[i++], o, o + count);
      o += count;
    }
  }
  return out;
}

async function decompress(data: Buffer, layout: SampleLayout, expected: number, where: string): Promise<Uint8Array> {
  switch (layout.compression) {
    case 1:
      return data;
    case 5:
      return lzwDecode(data, expected);
    case 8:
    case 32946:
      try {
        return await inflateAsync(data);
      } catch (err) {
        throw corrupt(`${where}: deflate: ${(err as Error).message}`);
      }
    case 32773:
      return packbitsDecode(data, expected);
    default:
      throw new ImageServerError('UNSUPPORTED_IMAGE', 'Unsupported TIFF: compression for this sample layout', where);
  }
}

/**
 * Turns one decompressed tile (`rows` rows of `cols` pixels) into native-order samples, undoing
 * the predictor. Returns a typed array over a fresh buffer.
 */
export function decodeTileBytes(bytes: Uint8Array, layout: SampleLayout, cols: number, rows: number): SampleArray {
  if (layout.packedBits !== undefined) {
    // libtiff has no horizontal predictor for packed samples either.
    if (layout.predictor !== 1)
      throw new ImageServerError('UNSUPPORTED_IMAGE', `Unsupported TIFF: predictor on ${layout.packedBits}-bit samples`);
    return unpackSamples(bytes, layout, cols, rows);
  }
  const spp = layout.samplesPerPixel;
  const bps = layout.bits / 8;
  const rowSamples = cols * spp;
  const rowBytes = rowSamples * bps;
  const need = rowBytes * rows;
  // A short tile (truncated data) is padded with zeros rather than read out of bounds.
  const buf = new Uint8Array(need);
  buf.set(bytes.subarray(0, Math.min(need, bytes.length)));
  const nativeLittle = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  if (layout.predictor === 3) {
    if (!layout.float) throw new ImageServerError('UNSUPPORTED_IMAGE', 'Unsupported TIFF: floating-point predictor on integers');
    // Bytes of a row are differenced with a stride of one pixel's samples, then stored as
    // planes of most significant bytes first (libtiff fpDiff); the result is host order.
    const out = new Uint8Array(need);
    for (let r = 0; r < rows; r++) {
      const row = buf.subarray(r * rowBytes, (r + 1) * rowBytes);
      for (let i = spp; i < rowBytes; i++) row[i] = (row[i] + row[i - spp]) & 0xff;
      for (let s = 0; s < rowSamples; s++) {
        for (let b = 0; b < bps; b++) {
          // b = 0 is the most significant byte.
          const dst = nativeLittle ? bps - 1 - b : b;
          out[r * rowBytes + s * bps + dst] = row[b * rowSamples + s];
        }
      }
    }
    return new Float32Array(out.buffer);
  }

  // Byte order to native.
  if (bps > 1 && layout.littleEndian !== nativeLittle) {
    for (let i = 0; i < need; i += bps) {
      if (bps === 2) {
        const t = buf[i];
        buf[i] = buf[i + 1];
        buf[i + 1] = t;
      } else {
        let t = buf[i];
        buf[i] = buf[i + 3];
        buf[i + 3] = t;
        t = buf[i + 1];
        buf[i + 1] = buf[i + 2];
        buf[i + 2] = t;
      }
    }
  }
  let arr: SampleArray;
  if (bps === 1) arr = buf;
  else if (bps === 2) arr = new Uint16Array(buf.buffer);
  else arr = layout.float ? new Float32Array(buf.buffer) : new Uint32Array(buf.buffer);

  if (layout.predictor === 2) {
    if (layout.float) throw new ImageServerError('UNSUPPORTED_IMAGE', 'Unsupported TIFF: horizontal predictor on floating point');
    const mask = bps === 1 ? 0xff : bps === 2 ? 0xffff : 0xffffffff;
    for (let r = 0; r < rows; r++) {
      const base = r * rowSamples;
      for (let i = spp; i < rowSamples; i++) arr[base + i] = (arr[base + i] + arr[base + i - spp]) & mask;
    }
  }
  return arr;
}

function allocate(layout: SampleLayout, n: number): SampleArray {
  if (layout.bits === 8) return new Uint8Array(n);
  if (layout.bits === 16) return new Uint16Array(n);
  return layout.float ? new Float32Array(n) : new Uint32Array(n);
}

/**
 * Reads `rect` of `ifd` (chunky samples, tiled or striped) into one interleaved block. Tiles are
 * read and decompressed concurrently (zlib runs on the libuv pool).
 */
export async function readSampleBlock(ifd: Ifd, layout: SampleLayout, rect: Rect, where: string): Promise<SampleBlock> {
  const spp = layout.samplesPerPixel;
  const tw = ifd.isTiled ? ifd.tileWidth! : ifd.width;
  const th = ifd.isTiled ? ifd.tileHeight! : ifd.rowsPerStrip!;
  const out = allocate(layout, rect.width * rect.height * spp);
  const c0 = Math.floor(rect.x / tw);
  const c1 = Math.floor((rect.x + rect.width - 1) / tw);
  const r0 = Math.floor(rect.y / th);
  const r1 = Math.floor((rect.y + rect.height - 1) / th);
  const jobs: Promise<void>[] = [];
  for (let tr = r0; tr <= r1; tr++) {
    for (let tc = c0; tc <= c1; tc++) {
      jobs.push(
        (async () => {
          const index = tr * ifd.tilesAcross + tc;
          // Tiles are stored padded to the full tile size; the last strip may be short.
          const rows = ifd.isTiled ? th : Math.min(th, ifd.height - tr * th);
          const cols = tw;
          const expected = storedRowBytes(layout, cols) * rows;
          const stored = await ifd.readTile(index);
          const bytes =
            stored.length === 0 ? new Uint8Array(expected) : await decompress(stored, layout, expected, `${where}: tile ${index}`);
          const tile = decodeTileBytes(bytes, layout, cols, rows);
          // Intersection of the tile with the rectangle, in image coordinates.
          const x0 = Math.max(rect.x, tc * tw);
          const x1 = Math.min(rect.x + rect.width, tc * tw + tw, ifd.width);
          const y0 = Math.max(rect.y, tr * th);
          const y1 = Math.min(rect.y + rect.height, tr * th + rows);
          const n = (x1 - x0) * spp;
          for (let y = y0; y < y1; y++) {
            const src = ((y - tr * th) * cols + (x0 - tc * tw)) * spp;
            const dst = ((y - rect.y) * rect.width + (x0 - rect.x)) * spp;
            out.set(tile.subarray(src, src + n), dst);
          }
        })(),
      );
    }
  }
  await Promise.all(jobs);
  return { data: out, width: rect.width, height: rect.height, channels: spp };
}

/**
 * CIELAB samples to L* (0–100), a*, b* floats; extra samples are copied as they are.
 * Photometric 8 (CIELab): 8-bit L = v/2.55 with signed a, b; 16-bit L = v/655.35 (unsigned)
 * with signed a, b / 256 (iipsrv shifts them >> 8, losing the fraction). Photometric 9 (ICCLab):
 * a, b are unsigned with an offset of 128 (8-bit) or 32768 (16-bit). Float samples are used as
 * they are.
 */
export function labToFloat(block: SampleBlock, bits: 8 | 16 | 32, photometric: number): Float32Array {
  const { data, channels } = block;
  const n = block.width * block.height;
  const out = new Float32Array(n * channels);
  const icc = photometric === 9;
  for (let i = 0; i < n; i++) {
    const p = i * channels;
    let L: number, a: number, b: number;
    if (bits === 32) {
      L = data[p];
      a = data[p + 1];
      b = data[p + 2];
    } else if (bits === 8) {
      L = data[p] / 2.55;
      a = icc ? data[p + 1] - 128 : (data[p + 1] << 24) >> 24;
      b = icc ? data[p + 2] - 128 : (data[p + 2] << 24) >> 24;
    } else {
      L = data[p] / 655.35;
      a = (icc ? data[p + 1] - 32768 : (data[p + 1] << 16) >> 16) / 256;
      b = (icc ? data[p + 2] - 32768 : (data[p + 2] << 16) >> 16) / 256;
    }
    out[p] = L;
    out[p + 1] = a;
    out[p + 2] = b;
    for (let c = 3; c < channels; c++) out[p + c] = data[p + c];
  }
  return out;
}
