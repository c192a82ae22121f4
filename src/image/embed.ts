// Source metadata in the output (iipsrv §4.8): the ICC profile (MAX_ICC) and, in exported
// regions, the XMP packet — when each applies, and how it is spliced into bytes an encoder (or
// passthrough) already wrote. sharp can only attach a profile it converts to, from a file, so
// both go in as the container's own structures: JPEG APP2/APP1 segments, PNG iCCP/iTXt chunks,
// WebP ICCP/XMP chunks (with VP8X), TIFF InterColorProfile/XMLPacket tags. AVIF keeps them in
// HEIF item properties; rewriting those is left out.

import zlib from 'node:zlib';
import type { ImageInfo } from '../core/image-info.js';
import type { OutputFormat, Processing, Quality } from '../core/view.js';
import type { RenderPlan } from './plan.js';

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

/**
 * The XMP packet to embed: the source's, in exported regions (IIP CVT, IIIF regions) but not in
 * tiles, which viewers fetch by the hundred (iipsrv embeds it in CVT output). JPEG takes one
 * APP1 segment, so a packet over 65502 bytes is left out there (no extended XMP).
 */
export function xmpFor(info: ImageInfo, plan: Pick<RenderPlan, 'tile' | 'format'>): Uint8Array | undefined {
  const xmp = info.metadata.xmp;
  if (!xmp || plan.tile || plan.format === 'avif') return undefined;
  const bytes = Buffer.from(xmp, 'utf8');
  return plan.format === 'jpg' && bytes.length > JPEG_SEGMENT_DATA - XMP_NAMESPACE.length ? undefined : bytes;
}

/** What to splice into an encoded file. */
export interface Embedded {
  readonly icc?: Uint8Array;
  readonly xmp?: Uint8Array;
}

/** `body` with `e` embedded; unchanged for a format (or file layout) that cannot take it. */
export function embedMetadata(body: Buffer, format: OutputFormat, e: Embedded): Buffer {
  if (!e.icc && !e.xmp) return body;
  switch (format) {
    case 'jpg':
      return jpegWith(body, e);
    case 'png':
      return pngWith(body, e);
    case 'webp':
      return webpWith(body, e);
    case 'tif':
      return tiffWith(body, e);
    default:
      return body;
  }
}

// JPEG: XMP in an APP1 segment after its namespace; the profile in APP2 segments (ICC.1 Annex
// B: "ICC_PROFILE\0", sequence number, count, at most 65519 bytes each). After a JFIF APP0,
// which must come first when present; else straight after SOI.
const JPEG_SEGMENT_DATA = 65533;
const XMP_NAMESPACE = Buffer.from('http://ns.adobe.com/xap/1.0/\0', 'latin1');
const ICC_SIGNATURE = Buffer.from('ICC_PROFILE\0', 'latin1');
const ICC_CHUNK = JPEG_SEGMENT_DATA - ICC_SIGNATURE.length - 2;

function jpegSegment(marker: number, ...parts: Uint8Array[]): Uint8Array[] {
  const head = Buffer.alloc(4);
  head[0] = 0xff;
  head[1] = marker;
  head.writeUInt16BE(2 + parts.reduce((n, p) => n + p.length, 0), 2);
  return [head, ...parts];
}

function jpegWith(body: Buffer, e: Embedded): Buffer {
  if (body.length < 4 || body[0] !== 0xff || body[1] !== 0xd8) return body;
  const segments: Uint8Array[] = [];
  if (e.xmp && e.xmp.length <= JPEG_SEGMENT_DATA - XMP_NAMESPACE.length) segments.push(...jpegSegment(0xe1, XMP_NAMESPACE, e.xmp));
  if (e.icc) {
    const count = Math.ceil(e.icc.length / ICC_CHUNK);
    for (let i = 0; i < count && count <= 255; i++) {
      segments.push(...jpegSegment(0xe2, ICC_SIGNATURE, Uint8Array.of(i + 1, count), e.icc.subarray(i * ICC_CHUNK, (i + 1) * ICC_CHUNK)));
    }
  }
  let at = 2;
  if (body[2] === 0xff && body[3] === 0xe0 && body.length >= 6) at = 4 + body.readUInt16BE(4);
  return Buffer.concat([body.subarray(0, at), ...segments, body.subarray(at)]);
}

// PNG: iCCP (name, NUL, method 0, zlib data) and iTXt "XML:com.adobe.xmp" (uncompressed, no
// language), right after IHDR: iCCP must precede PLTE and IDAT.
const PNG_IHDR_END = 8 + 8 + 13 + 4;

function pngChunk(type: string, ...parts: Uint8Array[]): Buffer {
  const data = Buffer.concat(parts);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(data, zlib.crc32(head.subarray(4))) >>> 0);
  return Buffer.concat([head, data, crc]);
}

function pngWith(body: Buffer, e: Embedded): Buffer {
  if (body.length < PNG_IHDR_END || body.toString('latin1', 12, 16) !== 'IHDR') return body;
  const chunks: Buffer[] = [];
  if (e.icc) chunks.push(pngChunk('iCCP', Buffer.from('ICC Profile\0\0', 'latin1'), zlib.deflateSync(e.icc)));
  if (e.xmp) chunks.push(pngChunk('iTXt', Buffer.from('XML:com.adobe.xmp\0\0\0\0\0', 'latin1'), e.xmp));
  return Buffer.concat([body.subarray(0, PNG_IHDR_END), ...chunks, body.subarray(PNG_IHDR_END)]);
}

// WebP: the extended format — VP8X with the ICC/XMP flags, ICCP right after it, the image
// chunks, then XMP at the end.
const VP8X_ICC = 0x20;
const VP8X_ALPHA = 0x10;
const VP8X_XMP = 0x04;

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

function webpWith(body: Buffer, e: Embedded): Buffer {
  if (body.length < 20 || body.toString('latin1', 0, 4) !== 'RIFF' || body.toString('latin1', 8, 12) !== 'WEBP') return body;
  const flags = (e.icc ? VP8X_ICC : 0) | (e.xmp ? VP8X_XMP : 0);
  let vp8x: Buffer;
  let image: Buffer;
  if (body.toString('latin1', 12, 16) === 'VP8X') {
    const end = 20 + body.readUInt32LE(16);
    vp8x = Buffer.from(body.subarray(12, end));
    vp8x[8] |= flags;
    image = body.subarray(end);
  } else {
    const facts = simpleWebpFacts(body);
    if (!facts) return body;
    const data = Buffer.alloc(10);
    data[0] = flags | (facts.alpha ? VP8X_ALPHA : 0);
    data.writeUIntLE(facts.width - 1, 4, 3);
    data.writeUIntLE(facts.height - 1, 7, 3);
    vp8x = riffChunk('VP8X', data);
    image = body.subarray(12);
  }
  const parts = [
    body.subarray(0, 12),
    vp8x,
    e.icc ? riffChunk('ICCP', e.icc) : Buffer.alloc(0),
    image,
    e.xmp ? riffChunk('XMP ', e.xmp) : Buffer.alloc(0),
  ];
  const out = Buffer.concat(parts);
  out.writeUInt32LE(out.length - 8, 4);
  return out;
}

// TIFF: a copy of the first IFD with the new entries (InterColorProfile, XMLPacket), appended
// with their values; the header then points at it. The old IFD stays as unreferenced bytes;
// every value offset holds.
const INTER_COLOR_PROFILE = 34675;
const XML_PACKET = 700;
const TYPE_BYTE = 1;
const TYPE_UNDEFINED = 7;

function tiffWith(body: Buffer, e: Embedded): Buffer {
  if (body.length < 8) return body;
  const order = body.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return body;
  const le = order === 'II';
  const u16 = (b: Buffer, o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number): number => (le ? body.readUInt32LE(o) : body.readUInt32BE(o));
  const w16 = (b: Buffer, v: number, o: number): number => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  const w32 = (b: Buffer, v: number, o: number): number => (le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o));
  if (u16(body, 2) !== 42) return body; // BigTIFF: never written for outputs under MAX_CVT
  const ifd = u32(4);
  if (ifd + 2 > body.length) return body;
  const n = u16(body, ifd);
  const next = ifd + 2 + n * 12;
  if (next + 4 > body.length) return body;
  const added: Array<{ tag: number; type: number; data: Uint8Array }> = [];
  if (e.icc) added.push({ tag: INTER_COLOR_PROFILE, type: TYPE_UNDEFINED, data: e.icc });
  if (e.xmp) added.push({ tag: XML_PACKET, type: TYPE_BYTE, data: e.xmp });
  const entries: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const entry = body.subarray(ifd + 2 + i * 12, ifd + 14 + i * 12);
    if (!added.some((a) => a.tag === u16(entry, 0))) entries.push(entry);
  }
  // Values (word-aligned) after the file, then the new IFD.
  const values: Buffer[] = [Buffer.alloc(body.length % 2)];
  let at = body.length + (body.length % 2);
  for (const a of added) {
    const entry = Buffer.alloc(12);
    w16(entry, a.tag, 0);
    w16(entry, a.type, 2);
    w32(entry, a.data.length, 4);
    if (a.data.length <= 4) Buffer.from(a.data).copy(entry, 8);
    else {
      w32(entry, at, 8);
      values.push(Buffer.from(a.data), Buffer.alloc(a.data.length % 2));
      at += a.data.length + (a.data.length % 2);
    }
    entries.push(entry);
  }
  entries.sort((a, b) => u16(a, 0) - u16(b, 0));
  const table = Buffer.alloc(2 + entries.length * 12 + 4);
  w16(table, entries.length, 0);
  entries.forEach((entry, i) => entry.copy(table, 2 + i * 12));
  w32(table, u32(next), 2 + entries.length * 12);
  const header = Buffer.from(body.subarray(0, 8));
  w32(header, at, 4);
  return Buffer.concat([header, body.subarray(8), ...values, table]);
}
