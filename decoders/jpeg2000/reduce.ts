// Codestream headers with the top `d` resolution levels (and the last quality layers) taken
// away, for decodes at reduction d with fewer layers.
// OpenJPEG sets up every code-block and precinct of every resolution of a tile before it decodes
// any of it, even when asked for a reduced image; a whole lowest level of a 20000×20000 image
// costs hundreds of milliseconds that way. Resolutions 0…NL−d of a codestream are themselves a
// valid codestream of the image at reduction d (ISO/IEC 15444-1 B.5: ceil(ceil(x/2^d)/2^k) =
// ceil(x/2^(d+k)), so every tile, resolution, precinct and code-block keeps its rectangle and
// its packets their bytes): SIZ divided by 2^d, NL − d decomposition levels in COD/COC with the
// first NL − d + 1 precinct sizes, and the first 3(NL − d) + 1 subband entries of QCD/QCC (the
// derived style's exponents depend only on the subband's resolution, so it stays as it is).
// Likewise the first n layers' packets are a codestream with n layers (COD's layer count).
// ./sparse.ts puts those packets behind these headers.

import { tilesAcross, tilesDown } from '../../src/jpeg2000/geometry.js';
import type { Siz } from '../../src/jpeg2000/markers.js';

const SOC = 0xff4f;
const SIZ = 0xff51;
const COD = 0xff52;
const COC = 0xff53;
const QCD = 0xff5c;
const QCC = 0xff5d;

/** Why a codestream cannot be reduced here (the caller decodes it the ordinary way). */
export class NotReducible extends Error {}

/**
 * SIZ at reduction d, or null when the tile grid does not survive the division (tiles whose
 * size is not a multiple of 2^d, or a tile that would vanish).
 */
export function reducedSiz(siz: Siz, d: number): Siz | null {
  const s = 2 ** d;
  const up = (v: number): number => Math.ceil(v / s);
  const single = tilesAcross(siz) === 1 && tilesDown(siz) === 1;
  const out: Siz = {
    ...siz,
    xsiz: up(siz.xsiz),
    ysiz: up(siz.ysiz),
    x0: up(siz.x0),
    y0: up(siz.y0),
    tileX0: up(siz.tileX0),
    tileY0: up(siz.tileY0),
    tileWidth: single ? up(siz.xsiz) - up(siz.tileX0) : siz.tileWidth / s,
    tileHeight: single ? up(siz.ysiz) - up(siz.tileY0) : siz.tileHeight / s,
  };
  if (!Number.isInteger(out.tileWidth) || !Number.isInteger(out.tileHeight) || out.xsiz <= out.x0 || out.ysiz <= out.y0) return null;
  if (tilesAcross(out) !== tilesAcross(siz) || tilesDown(out) !== tilesDown(siz)) return null;
  return out;
}

/** COD/COC with its Scod/Scoc byte at `scodAt`: fewer levels, fewer precinct sizes. */
function reduceCodingStyle(seg: Buffer, scodAt: number, d: number): Buffer {
  // COD has SGcod (progression, layers, MCT) between Scod and the levels byte; COC does not.
  const at = scodAt + (seg.readUInt16BE(0) === COD ? 5 : 1);
  const levels = seg[at];
  if (levels < d) throw new NotReducible(`${levels} decomposition levels, reduction ${d}`);
  const out = Buffer.from(seg);
  out[at] = levels - d;
  if ((seg[scodAt] & 1) === 0) return out;
  // Precinct sizes (one byte per resolution, lowest first) end the segment.
  const precincts = at + 5;
  if (seg.length !== precincts + levels + 1) throw new NotReducible('coding style segment length');
  const cut = out.subarray(0, precincts + levels - d + 1);
  cut.writeUInt16BE(cut.length - 2, 2);
  return cut;
}

/** The first 3(n − d)… subband entries of a QCD/QCC whose Sqcd/Sqcc byte is at `at`. */
function reduceQuantization(seg: Buffer, at: number, d: number): Buffer {
  const style = seg[at] & 0x1f;
  if (style === 1) return seg; // derived from the LL entry
  const size = style === 0 ? 1 : style === 2 ? 2 : 0;
  if (size === 0) throw new NotReducible(`quantization style ${style}`);
  const entries = (seg.length - at - 1) / size;
  const keep = entries - 3 * d;
  if (!Number.isInteger(entries) || keep < 1) throw new NotReducible('quantization segment length');
  const out = Buffer.from(seg.subarray(0, at + 1 + keep * size));
  out.writeUInt16BE(out.length - 2, 2);
  return out;
}

function writeSiz(seg: Buffer, siz: Siz): Buffer {
  const out = Buffer.from(seg);
  out.writeUInt32BE(siz.xsiz, 6);
  out.writeUInt32BE(siz.ysiz, 10);
  out.writeUInt32BE(siz.x0, 14);
  out.writeUInt32BE(siz.y0, 18);
  out.writeUInt32BE(siz.tileWidth, 22);
  out.writeUInt32BE(siz.tileHeight, 26);
  out.writeUInt32BE(siz.tileX0, 30);
  out.writeUInt32BE(siz.tileY0, 34);
  return out;
}

/** COD with at most `layers` quality layers. */
function capLayers(seg: Buffer, layers: number): Buffer {
  if (seg.readUInt16BE(6) <= layers) return seg;
  const out = Buffer.from(seg);
  out.writeUInt16BE(layers, 6);
  return out;
}

export interface HeaderRewrite {
  /** Resolution levels to take away. */
  readonly reduce: number;
  readonly components: number;
  /** Replaces the SIZ values (main header). */
  readonly siz?: Siz;
  /** At most this many quality layers (the later layers' packets are left out). */
  readonly layers?: number;
}

/**
 * A main header (from SOC) or tile header (marker segments only) rewritten for a reduction and
 * a layer count. Throws NotReducible for what it cannot rewrite.
 */
export function rewriteHeader(buf: Buffer, how: HeaderRewrite): Buffer {
  const { reduce: d, components, siz, layers } = how;
  const cs = components < 257 ? 1 : 2;
  const out: Buffer[] = [];
  let p = 0;
  if (buf.length >= 2 && buf.readUInt16BE(0) === SOC) {
    out.push(buf.subarray(0, 2));
    p = 2;
  }
  while (p + 4 <= buf.length) {
    const marker = buf.readUInt16BE(p);
    const seg = buf.subarray(p, p + 2 + buf.readUInt16BE(p + 2));
    if (seg.length < 4 || p + seg.length > buf.length) throw new NotReducible('truncated header');
    p += seg.length;
    if (marker === SIZ) out.push(siz ? writeSiz(seg, siz) : seg);
    else if (marker === COD) {
      const cod = d > 0 ? reduceCodingStyle(seg, 4, d) : seg;
      out.push(layers ? capLayers(cod, layers) : cod);
    } else if (d > 0 && marker === COC) out.push(reduceCodingStyle(seg, 4 + cs, d));
    else if (d > 0 && marker === QCD) out.push(reduceQuantization(seg, 4, d));
    else if (d > 0 && marker === QCC) out.push(reduceQuantization(seg, 4 + cs, d));
    else out.push(seg);
  }
  if (p !== buf.length) throw new NotReducible('trailing header bytes');
  return Buffer.concat(out);
}
