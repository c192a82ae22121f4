// JP2/JPX box structure (ISO/IEC 15444-1 Annex I, 15444-2 Annex M): the top-level boxes with
// their superbox children, where the contiguous codestreams (jp2c) lie, and the JP2 header
// boxes decoded (ihdr, colr, bpcc, pclr, cmap, cdef, res/resc/resd). Box contents other than
// those headers are located, not read: a JPX can hold gigabytes of codestreams.

import { corrupt, unsupported } from './errors.js';
import { readExactly, type ByteSource } from './source.js';

/** JP2 signature box: length 12, type 'jP  ', contents 0D 0A 87 0A. */
export const JP2_SIGNATURE = Buffer.from([0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20, 0x0d, 0x0a, 0x87, 0x0a]);

export interface Box {
  /** Four-character type, e.g. `jp2c`, `jp2h`, `colr` (spaces kept: `res `). */
  readonly type: string;
  /** Absolute offset of the box header. */
  readonly offset: number;
  /** 8, or 16 with an extended length. */
  readonly headerLength: number;
  /** The whole box, header included. */
  readonly length: number;
  /** Sub-boxes of a superbox (jp2h, res, asoc, jpch, jplh, uinf, cgrp, ftbl, comp). */
  readonly children?: readonly Box[];
}

export const contentOffset = (b: Box): number => b.offset + b.headerLength;
export const contentLength = (b: Box): number => b.length - b.headerLength;

export interface ImageHeaderBox {
  readonly height: number;
  readonly width: number;
  readonly components: number;
  /** Bits per component (1–38), or undefined when it varies (then see `bpcc`). */
  readonly precision?: number;
  readonly signed?: boolean;
  /** 7 = JPEG 2000. */
  readonly compression: number;
  readonly unknownColourspace: boolean;
  readonly intellectualProperty: boolean;
}

export interface ColourSpecification {
  /** 1 enumerated, 2 restricted ICC, 3 any ICC (JPX), 4 vendor (JPX). */
  readonly method: number;
  readonly precedence: number;
  readonly approximation: number;
  /** EnumCS: 16 sRGB, 17 greyscale, 18 sYCC, 12 CMYK, 14 CIELab, 20 e-sRGB, 24 e-sYCC, ... */
  readonly enumerated?: number;
  /** The embedded ICC profile (methods 2 and 3). */
  readonly icc?: Buffer;
}

export interface Jp2Header {
  readonly ihdr: ImageHeaderBox;
  /** All colr boxes in file order; the first one a reader understands applies. */
  readonly colour: readonly ColourSpecification[];
  readonly bitsPerComponent?: ReadonlyArray<{ readonly precision: number; readonly signed: boolean }>;
  readonly palette?: {
    readonly entries: number;
    readonly columns: ReadonlyArray<{ readonly precision: number; readonly signed: boolean }>;
  };
  readonly componentMapping?: ReadonlyArray<{ readonly component: number; readonly type: number; readonly column: number }>;
  /** cdef: Typ 0 colour, 1 opacity, 2 premultiplied opacity; Asoc 0 = whole image, i = colour i. */
  readonly channels?: ReadonlyArray<{ readonly channel: number; readonly type: number; readonly association: number }>;
  /** Grid points per metre (resc = capture, resd = default display). */
  readonly captureResolution?: { readonly x: number; readonly y: number };
  readonly displayResolution?: { readonly x: number; readonly y: number };
}

export interface BoxStructure {
  readonly brand: string;
  readonly minorVersion: number;
  readonly compatibility: readonly string[];
  readonly boxes: readonly Box[];
  /** Every contiguous codestream box, in file order (JP2: exactly one is used, the first). */
  readonly codestreams: readonly Box[];
  /** The first jp2h, decoded. */
  readonly header?: Jp2Header;
}

const SUPERBOXES = new Set(['jp2h', 'res ', 'uinf', 'asoc', 'jpch', 'jplh', 'cgrp', 'ftbl', 'comp']);
const MAX_BOXES = 1_000_000;

/** Boxes in [start, end) of the source; superboxes are descended into. */
export async function readBoxes(src: ByteSource, start: number, end: number, depth = 0, budget = { n: 0 }): Promise<Box[]> {
  const out: Box[] = [];
  let pos = start;
  while (pos + 8 <= end) {
    if (++budget.n > MAX_BOXES) throw unsupported('too many boxes');
    const h = await readExactly(src, pos, Math.min(16, end - pos), 'box header');
    let length = h.readUInt32BE(0);
    const type = h.toString('latin1', 4, 8);
    let headerLength = 8;
    if (length === 1) {
      if (h.length < 16) throw corrupt(`${type} box header is truncated`);
      const big = h.readBigUInt64BE(8);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`${type} box is too long`);
      length = Number(big);
      headerLength = 16;
    } else if (length === 0) {
      length = end - pos; // the last box runs to the end of its container
    }
    if (length < headerLength) throw corrupt(`${JSON.stringify(type)} box length ${length}`);
    // A box that runs past its container: a truncated file. Keep it (the codestream may still
    // hold the tiles a client wants) but stop here.
    const truncated = pos + length > end;
    if (truncated) length = end - pos;
    const box: Box =
      SUPERBOXES.has(type) && depth < 8
        ? { type, offset: pos, headerLength, length, children: await readBoxes(src, pos + headerLength, pos + length, depth + 1, budget) }
        : { type, offset: pos, headerLength, length };
    out.push(box);
    if (truncated) break;
    pos += length;
  }
  return out;
}

async function content(src: ByteSource, b: Box, max = 1 << 24): Promise<Buffer> {
  const n = contentLength(b);
  if (n > max) throw unsupported(`${b.type} box of ${n} bytes`);
  return readExactly(src, contentOffset(b), n, `${b.type} box`);
}

function resolution(c: Buffer): { x: number; y: number } {
  if (c.length < 10) throw corrupt('resolution box is too short');
  const vn = c.readUInt16BE(0);
  const vd = c.readUInt16BE(2);
  const hn = c.readUInt16BE(4);
  const hd = c.readUInt16BE(6);
  const ve = c.readInt8(8);
  const he = c.readInt8(9);
  if (vd === 0 || hd === 0) throw corrupt('resolution box has a zero denominator');
  return { x: (hn / hd) * 10 ** he, y: (vn / vd) * 10 ** ve };
}

/** Decodes the boxes of a jp2h superbox. */
export async function readJp2Header(src: ByteSource, jp2h: Box): Promise<Jp2Header> {
  const kids = jp2h.children ?? [];
  const ihdrBox = kids.find((k) => k.type === 'ihdr');
  if (!ihdrBox) throw corrupt('JP2 header has no ihdr box');
  const ih = await content(src, ihdrBox);
  if (ih.length < 14) throw corrupt('ihdr box is too short');
  const bpc = ih[10];
  const ihdr: ImageHeaderBox = {
    height: ih.readUInt32BE(0),
    width: ih.readUInt32BE(4),
    components: ih.readUInt16BE(8),
    ...(bpc === 255 ? {} : { precision: (bpc & 0x7f) + 1, signed: (bpc & 0x80) !== 0 }),
    compression: ih[11],
    unknownColourspace: ih[12] !== 0,
    intellectualProperty: ih[13] !== 0,
  };
  const colour: ColourSpecification[] = [];
  let header: {
    -readonly [K in keyof Jp2Header]: Jp2Header[K];
  } = { ihdr, colour };
  for (const k of kids) {
    switch (k.type) {
      case 'colr': {
        const c = await content(src, k);
        if (c.length < 3) throw corrupt('colr box is too short');
        const method = c[0];
        const spec: ColourSpecification = {
          method,
          precedence: c.readInt8(1),
          approximation: c[2],
          ...(method === 1 && c.length >= 7 ? { enumerated: c.readUInt32BE(3) } : {}),
          ...(method === 2 || method === 3 ? { icc: Buffer.from(c.subarray(3)) } : {}),
        };
        colour.push(spec);
        break;
      }
      case 'bpcc': {
        const c = await content(src, k);
        header = { ...header, bitsPerComponent: [...c].map((b) => ({ precision: (b & 0x7f) + 1, signed: (b & 0x80) !== 0 })) };
        break;
      }
      case 'pclr': {
        const c = await content(src, k);
        if (c.length < 3) throw corrupt('pclr box is too short');
        const entries = c.readUInt16BE(0);
        const n = c[2];
        if (c.length < 3 + n) throw corrupt('pclr box is too short');
        const columns = [...c.subarray(3, 3 + n)].map((b) => ({ precision: (b & 0x7f) + 1, signed: (b & 0x80) !== 0 }));
        header = { ...header, palette: { entries, columns } };
        break;
      }
      case 'cmap': {
        const c = await content(src, k);
        const map: Array<{ component: number; type: number; column: number }> = [];
        for (let p = 0; p + 4 <= c.length; p += 4) map.push({ component: c.readUInt16BE(p), type: c[p + 2], column: c[p + 3] });
        header = { ...header, componentMapping: map };
        break;
      }
      case 'cdef': {
        const c = await content(src, k);
        if (c.length < 2) throw corrupt('cdef box is too short');
        const n = c.readUInt16BE(0);
        const list: Array<{ channel: number; type: number; association: number }> = [];
        for (let i = 0; i < n && 2 + 6 * i + 6 <= c.length; i++) {
          const p = 2 + 6 * i;
          list.push({ channel: c.readUInt16BE(p), type: c.readUInt16BE(p + 2), association: c.readUInt16BE(p + 4) });
        }
        header = { ...header, channels: list };
        break;
      }
      case 'res ': {
        for (const r of k.children ?? []) {
          if (r.type === 'resc') header = { ...header, captureResolution: resolution(await content(src, r)) };
          if (r.type === 'resd') header = { ...header, displayResolution: resolution(await content(src, r)) };
        }
        break;
      }
      default:
        break;
    }
  }
  return header;
}

function findAll(boxes: readonly Box[], type: string, out: Box[] = []): Box[] {
  for (const b of boxes) {
    if (b.type === type) out.push(b);
    if (b.children) findAll(b.children, type, out);
  }
  return out;
}

/** Parses a JP2/JPX file's boxes. The file must start with the JP2 signature box. */
export async function readBoxStructure(src: ByteSource): Promise<BoxStructure> {
  const sig = await readExactly(src, 0, 12, 'JP2 signature box');
  if (!sig.equals(JP2_SIGNATURE)) throw corrupt('bad JP2 signature box');
  const boxes = await readBoxes(src, 0, src.size);
  const ftyp = boxes[1];
  if (!ftyp || ftyp.type !== 'ftyp') throw corrupt('no ftyp box after the signature');
  const f = await content(src, ftyp, 1 << 16);
  if (f.length < 8) throw corrupt('ftyp box is too short');
  const compatibility: string[] = [];
  for (let p = 8; p + 4 <= f.length; p += 4) compatibility.push(f.toString('latin1', p, p + 4));
  const jp2h = boxes.find((b) => b.type === 'jp2h') ?? findAll(boxes, 'jp2h')[0];
  const codestreams = boxes.filter((b) => b.type === 'jp2c');
  return {
    brand: f.toString('latin1', 0, 4),
    minorVersion: f.readUInt32BE(4),
    compatibility,
    boxes,
    codestreams,
    ...(jp2h ? { header: await readJp2Header(src, jp2h) } : {}),
  };
}

/** Depth-first search for boxes of a type (e.g. `uuid`, `xml `) in a box tree. */
export function findBoxes(boxes: readonly Box[], type: string): Box[] {
  return findAll(boxes, type);
}
