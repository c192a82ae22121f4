// The source's ICC profile in the output (MAX_ICC, iipsrv §4.8): when it applies, and how it is
// spliced into bytes an encoder (or passthrough) already wrote. sharp can only attach a profile
// it converts to, from a file, so the profile goes in as the container's own marker: JPEG APP2
// segments, a PNG iCCP chunk, a WebP ICCP chunk (with VP8X), a TIFF InterColorProfile tag.
// AVIF carries its profile in the HEIF item properties; rewriting those is left out.

import zlib from 'node:zlib';
import type { ImageInfo } from '../core/image-info.js';
import type { OutputFormat, Processing, Quality } from '../core/view.js';

/** What of the request decides whether the source profile still describes the output. */
export interface ProfileView {
  readonly format: OutputFormat;
  readonly quality: Quality;
  readonly processing?: Processing;
}

/** The ICC colour-space signature (header bytes 16–19), e.g. `RGB ` or `GRAY`. */
export function profileSpace(icc: Uint8Array): string {
  return icc.length >= 128 ? Buffer.from(icc.buffer, icc.byteOffset + 16, 4).toString('latin1') : '';
}

/**
 * The profile to embed, or undefined. MAX_ICC: 0 never, −1 any size, else profiles smaller than
 * it. As iipsrv, not after a colormap, hill shading or colour twist, and not when the output's
 * colours no longer mean what the profile says: greyscale or bitonal from colour, CIELAB
 * sources (converted to sRGB here), band selections and profiles of another colour space.
 */
export function profileFor(info: ImageInfo, view: ProfileView, maxIcc: number): Uint8Array | undefined {
  const icc = info.icc;
  if (!icc || maxIcc === 0 || (maxIcc > 0 && icc.length >= maxIcc)) return undefined;
  if (view.format === 'avif' || info.colourSpace === 'cielab') return undefined;
  const p = view.processing;
  if (p && (p.colormap !== undefined || p.hillshade !== undefined || p.twist !== undefined || p.bands !== undefined)) return undefined;
  const space = profileSpace(icc);
  const colour = info.channels === 3 || info.channels === 4;
  const grey = info.channels === 1 || info.channels === 2;
  if (space === 'RGB ') return colour && (view.quality === 'default' || view.quality === 'color') ? icc : undefined;
  if (space === 'GRAY') return grey ? icc : undefined;
  return undefined;
}

/** `body` with `icc` embedded; unchanged for a format (or file layout) that cannot take it. */
export function embedProfile(body: Buffer, format: OutputFormat, icc: Uint8Array): Buffer {
  switch (format) {
    case 'jpg':
      return jpegWithProfile(body, icc);
    case 'png':
      return pngWithProfile(body, icc);
    case 'webp':
      return webpWithProfile(body, icc);
    case 'tif':
      return tiffWithProfile(body, icc);
    default:
      return body;
  }
}

// JPEG: ICC.1 Annex B — "ICC_PROFILE\0", sequence number, count, then at most 65519 bytes each.
const ICC_SIGNATURE = Buffer.from('ICC_PROFILE\0', 'latin1');
const JPEG_CHUNK = 65519;

export function jpegWithProfile(body: Buffer, icc: Uint8Array): Buffer {
  if (body.length < 4 || body[0] !== 0xff || body[1] !== 0xd8) return body;
  const count = Math.ceil(icc.length / JPEG_CHUNK);
  if (count > 255) return body;
  const segments: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const part = icc.subarray(i * JPEG_CHUNK, (i + 1) * JPEG_CHUNK);
    const head = Buffer.alloc(4);
    head[0] = 0xff;
    head[1] = 0xe2;
    head.writeUInt16BE(2 + ICC_SIGNATURE.length + 2 + part.length, 2);
    segments.push(head, ICC_SIGNATURE, Buffer.from([i + 1, count]), part);
  }
  // After a JFIF APP0, which must come first when present; else straight after SOI.
  let at = 2;
  if (body[2] === 0xff && body[3] === 0xe0 && body.length >= 6) at = 4 + body.readUInt16BE(4);
  return Buffer.concat([body.subarray(0, at), ...segments, body.subarray(at)]);
}

// PNG: an iCCP chunk (name, NUL, method 0, zlib data) before PLTE and IDAT, i.e. right after IHDR.
const PNG_IHDR_END = 8 + 8 + 13 + 4;

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(data, zlib.crc32(head.subarray(4))) >>> 0);
  return Buffer.concat([head, data, crc]);
}

export function pngWithProfile(body: Buffer, icc: Uint8Array): Buffer {
  if (body.length < PNG_IHDR_END || body.toString('latin1', 12, 16) !== 'IHDR') return body;
  const data = Buffer.concat([Buffer.from('ICC Profile\0\0', 'latin1'), zlib.deflateSync(icc)]);
  return Buffer.concat([body.subarray(0, PNG_IHDR_END), pngChunk('iCCP', data), body.subarray(PNG_IHDR_END)]);
}

// WebP: the extended format — a VP8X chunk with the ICC flag, then ICCP, then the image chunks.
const VP8X_ICC = 0x20;
const VP8X_ALPHA = 0x10;

function riffChunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.write(type, 0, 'latin1');
  head.writeUInt32LE(data.length, 4);
  return Buffer.concat([head, data, data.length % 2 ? Buffer.alloc(1) : Buffer.alloc(0)]);
}

/** Canvas size and alpha of a simple-format WebP (VP8 or VP8L as its only chunk). */
function simpleWebpFacts(body: Buffer): { width: number; height: number; alpha: boolean } | undefined {
  const type = body.toString('latin1', 12, 16);
  if (type === 'VP8 ' && body.length >= 30 && body[23] === 0x9d && body[24] === 0x01 && body[25] === 0x2a) {
    return { width: body.readUInt16LE(26) & 0x3fff, height: body.readUInt16LE(28) & 0x3fff, alpha: false };
  }
  if (type === 'VP8L' && body.length >= 25 && body[20] === 0x2f) {
    const bits = body.readUInt32LE(21);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1, alpha: ((bits >>> 28) & 1) === 1 };
  }
  return undefined;
}

export function webpWithProfile(body: Buffer, icc: Uint8Array): Buffer {
  if (body.length < 20 || body.toString('latin1', 0, 4) !== 'RIFF' || body.toString('latin1', 8, 12) !== 'WEBP') return body;
  let out: Buffer;
  if (body.toString('latin1', 12, 16) === 'VP8X') {
    const vp8xEnd = 20 + body.readUInt32LE(16);
    const head = Buffer.from(body.subarray(0, vp8xEnd));
    head[20] |= VP8X_ICC;
    out = Buffer.concat([head, riffChunk('ICCP', icc), body.subarray(vp8xEnd)]);
  } else {
    const facts = simpleWebpFacts(body);
    if (!facts) return body;
    const vp8x = Buffer.alloc(10);
    vp8x[0] = VP8X_ICC | (facts.alpha ? VP8X_ALPHA : 0);
    vp8x.writeUIntLE(facts.width - 1, 4, 3);
    vp8x.writeUIntLE(facts.height - 1, 7, 3);
    out = Buffer.concat([body.subarray(0, 12), riffChunk('VP8X', vp8x), riffChunk('ICCP', icc), body.subarray(12)]);
  }
  out.writeUInt32LE(out.length - 8, 4);
  return out;
}

// TIFF: a copy of the first IFD with an InterColorProfile entry, appended with the profile; the
// header then points at it. The old IFD stays as unreferenced bytes; every value offset holds.
const INTER_COLOR_PROFILE = 34675;
const TYPE_UNDEFINED = 7;

export function tiffWithProfile(body: Buffer, icc: Uint8Array): Buffer {
  if (body.length < 8) return body;
  const order = body.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return body;
  const le = order === 'II';
  const u16 = (o: number): number => (le ? body.readUInt16LE(o) : body.readUInt16BE(o));
  const u32 = (o: number): number => (le ? body.readUInt32LE(o) : body.readUInt32BE(o));
  if (u16(2) !== 42) return body; // BigTIFF: never written for outputs under MAX_CVT
  const ifd = u32(4);
  if (ifd + 2 > body.length) return body;
  const n = u16(ifd);
  const next = ifd + 2 + n * 12;
  if (next + 4 > body.length) return body;
  const entries: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const e = body.subarray(ifd + 2 + i * 12, ifd + 14 + i * 12);
    if (u16(ifd + 2 + i * 12) !== INTER_COLOR_PROFILE) entries.push(e);
  }
  const pad = body.length % 2;
  const iccAt = body.length + pad;
  const newIfd = iccAt + icc.length + (icc.length % 2);
  const entry = Buffer.alloc(12);
  const w16 = (b: Buffer, v: number, o: number): number => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  const w32 = (b: Buffer, v: number, o: number): number => (le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o));
  w16(entry, INTER_COLOR_PROFILE, 0);
  w16(entry, TYPE_UNDEFINED, 2);
  w32(entry, icc.length, 4);
  w32(entry, iccAt, 8);
  const tagOf = (e: Buffer): number => (le ? e.readUInt16LE(0) : e.readUInt16BE(0));
  entries.push(entry);
  entries.sort((a, b) => tagOf(a) - tagOf(b));
  const table = Buffer.alloc(2 + entries.length * 12 + 4);
  w16(table, entries.length, 0);
  entries.forEach((e, i) => e.copy(table, 2 + i * 12));
  w32(table, u32(next), 2 + entries.length * 12);
  const header = Buffer.from(body.subarray(0, 8));
  w32(header, newIfd, 4);
  return Buffer.concat([header, body.subarray(8), Buffer.alloc(pad), icc, Buffer.alloc(icc.length % 2), table]);
}
