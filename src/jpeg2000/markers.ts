// JPEG 2000 Part 1 marker codes and the decoding of each marker segment's body into typed
// values (ISO/IEC 15444-1 Annex A). Pure functions over bytes: the codestream walker
// (./codestream.ts) finds the segments, these read them.

import { corrupt } from './errors.js';

export const MARKERS = {
  SOC: 0xff4f,
  CAP: 0xff50,
  SIZ: 0xff51,
  COD: 0xff52,
  COC: 0xff53,
  TLM: 0xff55,
  PRF: 0xff56,
  PLM: 0xff57,
  PLT: 0xff58,
  CPF: 0xff59,
  QCD: 0xff5c,
  QCC: 0xff5d,
  RGN: 0xff5e,
  POC: 0xff5f,
  PPM: 0xff60,
  PPT: 0xff61,
  CRG: 0xff63,
  COM: 0xff64,
  SOT: 0xff90,
  SOP: 0xff91,
  EPH: 0xff92,
  SOD: 0xff93,
  EOC: 0xffd9,
} as const;

export type MarkerName = keyof typeof MARKERS;

const NAMES = new Map<number, string>(Object.entries(MARKERS).map(([k, v]) => [v, k]));
// Part 2 markers, named so that a dump of a JPX codestream reads well.
for (const [k, v] of Object.entries({ DCO: 0xff70, VMS: 0xff71, DFS: 0xff72, ADS: 0xff73, MCT: 0xff74, MCC: 0xff75, NLT: 0xff76 })) {
  NAMES.set(v, k);
}
NAMES.set(0xff77, 'MCO');
NAMES.set(0xff78, 'CBD');
NAMES.set(0xff79, 'ATK');

/** The marker's name, e.g. `COD`, or `FFxx` for one this module does not know. */
export function markerName(code: number): string {
  return NAMES.get(code) ?? `FF${(code & 0xff).toString(16).toUpperCase().padStart(2, '0')}`;
}

/** Markers without a length field (ISO/IEC 15444-1 A.1.3: delimiting markers, FF30–FF3F). */
export function isDelimiting(code: number): boolean {
  return code === MARKERS.SOC || code === MARKERS.SOD || code === MARKERS.EOC || code === MARKERS.EPH || (code >= 0xff30 && code <= 0xff3f);
}

/** Where one marker segment lies in the file. */
export interface MarkerSegment {
  readonly marker: number;
  readonly name: string;
  /** Absolute file offset of the marker's 0xFF byte. */
  readonly offset: number;
  /** Whole segment: 2 marker bytes + Lxxx (just 2 for a delimiting marker). */
  readonly length: number;
}

export type ProgressionOrder = 'LRCP' | 'RLCP' | 'RPCL' | 'PCRL' | 'CPRL';
export const PROGRESSION_ORDERS: readonly ProgressionOrder[] = ['LRCP', 'RLCP', 'RPCL', 'PCRL', 'CPRL'];

export interface ComponentSize {
  /** Bits per sample (Ssiz & 0x7F) + 1. */
  readonly precision: number;
  readonly signed: boolean;
  /** Subsampling on the reference grid (XRsiz, YRsiz). */
  readonly dx: number;
  readonly dy: number;
}

/** SIZ: image and tile geometry on the reference grid, and the components. */
export interface Siz {
  /** Rsiz: capabilities (0 = Part 1 only; bit 15 = Part 2 extensions, 0x4000 = HTJ2K). */
  readonly rsiz: number;
  /** Xsiz, Ysiz: right/bottom edge of the image area (not its width when the origin is not 0). */
  readonly xsiz: number;
  readonly ysiz: number;
  /** XOsiz, YOsiz: image area origin. */
  readonly x0: number;
  readonly y0: number;
  /** XTsiz, YTsiz: nominal tile size. */
  readonly tileWidth: number;
  readonly tileHeight: number;
  /** XTOsiz, YTOsiz: tile grid origin. */
  readonly tileX0: number;
  readonly tileY0: number;
  readonly components: readonly ComponentSize[];
}

/** The per-component part of COD/COC (SPcod/SPcoc). */
export interface ComponentCodingStyle {
  /** Number of DWT decomposition levels NL; there are NL + 1 resolutions. */
  readonly levels: number;
  /** Code-block size in samples (2^(xcb+2)). */
  readonly codeBlockWidth: number;
  readonly codeBlockHeight: number;
  /** Code-block style bits: 1 bypass, 2 reset, 4 termall, 8 vertically causal, 16 predictable termination, 32 segmentation symbols, 64 HT. */
  readonly codeBlockStyle: number;
  /** 1 = reversible 5/3 (lossless possible), 0 = irreversible 9/7. */
  readonly transform: number;
  /** True when precinct sizes were given (Scod/Scoc bit 0); otherwise every size is 2^15. */
  readonly customPrecincts: boolean;
  /**
   * Precinct size exponents per resolution, lowest resolution first (length levels + 1):
   * precincts are 2^ppx × 2^ppy at that resolution.
   */
  readonly precincts: ReadonlyArray<{ readonly ppx: number; readonly ppy: number }>;
}

/** COD: default coding style. */
export interface CodingStyle extends ComponentCodingStyle {
  /** Raw Scod. */
  readonly scod: number;
  /** SOP marker segments may precede packets (Scod bit 1). */
  readonly sop: boolean;
  /** EPH markers follow packet headers (Scod bit 2). */
  readonly eph: boolean;
  readonly progression: ProgressionOrder;
  readonly layers: number;
  /** Multiple component transform: 0 none, 1 RCT/ICT on components 0–2 (Part 2: other values). */
  readonly mct: number;
}

/** COC: a component's coding style overriding COD. */
export interface ComponentCoding {
  readonly component: number;
  readonly style: ComponentCodingStyle;
}

/** QCD/QCC. */
export interface Quantization {
  /** 0 none (reversible), 1 scalar derived, 2 scalar expounded. */
  readonly style: number;
  readonly guardBits: number;
  /** Per subband (or one, for derived): exponent and mantissa (mantissa 0 when style 0). */
  readonly steps: ReadonlyArray<{ readonly exponent: number; readonly mantissa: number }>;
}

export interface ComponentQuantization {
  readonly component: number;
  readonly quantization: Quantization;
}

/** RGN: region of interest. */
export interface RegionOfInterest {
  readonly component: number;
  readonly style: number;
  readonly shift: number;
}

/** One POC progression change. */
export interface ProgressionChange {
  readonly resolutionStart: number;
  readonly componentStart: number;
  readonly layerEnd: number;
  readonly resolutionEnd: number;
  readonly componentEnd: number;
  readonly progression: ProgressionOrder;
}

/** TLM: lengths of tile-parts (Ttlm absent means tiles in order, one part each). */
export interface TilePartLengths {
  readonly index: number;
  readonly entries: ReadonlyArray<{ readonly tile: number | undefined; readonly length: number }>;
}

/** PLT: packet lengths of one tile-part, in packet order (Zplt orders the segments). */
export interface PacketLengths {
  readonly index: number;
  readonly lengths: readonly number[];
}

/** PLM: packet lengths for the tile-parts in order, as they appear in the main header. */
export interface MainPacketLengths {
  readonly index: number;
  /** One list of packet lengths per Nplm group (normally one per tile-part). */
  readonly tileParts: ReadonlyArray<readonly number[]>;
}

/** PPM/PPT: packed packet headers; only their place is recorded (JPIP sends them as they are). */
export interface PackedHeaders {
  readonly index: number;
  /** Absolute offset and length of the Ippm/Ippt bytes (after Zppm/Zppt). */
  readonly offset: number;
  readonly length: number;
}

export interface Comment {
  /** 0 binary, 1 ISO 8859-15 text. */
  readonly registration: number;
  /** The text for registration 1, else undefined. */
  readonly text?: string;
  readonly offset: number;
  readonly length: number;
}

/** CAP (Part 1 amendment / Part 15): extended capabilities. */
export interface Capabilities {
  readonly pcap: number;
  readonly ccap: readonly number[];
}

/** SOT: a tile-part's header fields. */
export interface StartOfTile {
  readonly tile: number;
  /** Psot: whole tile-part length from SOT's first byte; 0 = to the end of the codestream. */
  readonly length: number;
  readonly part: number;
  /** TNsot; 0 = not given here. */
  readonly parts: number;
}

/** A bounds-checked big-endian cursor over one segment body. */
export class SegmentReader {
  pos = 0;
  constructor(
    readonly buf: Buffer,
    private readonly name: string,
  ) {}
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw corrupt(`${this.name} marker segment is too short`);
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  /** Component index: one byte when there are fewer than 257 components, else two. */
  comp(components: number): number {
    return components < 257 ? this.u8() : this.u16();
  }
  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

export function parseSiz(body: Buffer): Siz {
  const r = new SegmentReader(body, 'SIZ');
  const rsiz = r.u16();
  const xsiz = r.u32();
  const ysiz = r.u32();
  const x0 = r.u32();
  const y0 = r.u32();
  const tileWidth = r.u32();
  const tileHeight = r.u32();
  const tileX0 = r.u32();
  const tileY0 = r.u32();
  const n = r.u16();
  if (n < 1 || n > 16384) throw corrupt(`SIZ declares ${n} components`);
  const components: ComponentSize[] = [];
  for (let i = 0; i < n; i++) {
    const s = r.u8();
    const dx = r.u8();
    const dy = r.u8();
    if (dx === 0 || dy === 0) throw corrupt(`component ${i} has zero subsampling`);
    components.push({ precision: (s & 0x7f) + 1, signed: (s & 0x80) !== 0, dx, dy });
  }
  if (xsiz <= x0 || ysiz <= y0) throw corrupt(`empty image area ${x0},${y0}–${xsiz},${ysiz}`);
  if (tileWidth === 0 || tileHeight === 0) throw corrupt('zero tile size');
  if (tileX0 > x0 || tileY0 > y0 || tileX0 + tileWidth <= x0 || tileY0 + tileHeight <= y0) {
    throw corrupt('tile grid origin does not cover the image origin');
  }
  return { rsiz, xsiz, ysiz, x0, y0, tileWidth, tileHeight, tileX0, tileY0, components };
}

function parseSpcod(r: SegmentReader, custom: boolean, what: string): ComponentCodingStyle {
  const levels = r.u8();
  if (levels > 32) throw corrupt(`${what} declares ${levels} decomposition levels`);
  const xcb = r.u8() + 2;
  const ycb = r.u8() + 2;
  if (xcb > 10 || ycb > 10 || xcb + ycb > 12) throw corrupt(`${what} code-block size 2^${xcb}×2^${ycb}`);
  const codeBlockStyle = r.u8();
  const transform = r.u8();
  const precincts: Array<{ ppx: number; ppy: number }> = [];
  for (let i = 0; i <= levels; i++) {
    if (custom) {
      const b = r.u8();
      precincts.push({ ppx: b & 0x0f, ppy: b >> 4 });
    } else {
      precincts.push({ ppx: 15, ppy: 15 });
    }
  }
  return { levels, codeBlockWidth: 1 << xcb, codeBlockHeight: 1 << ycb, codeBlockStyle, transform, customPrecincts: custom, precincts };
}

export function parseCod(body: Buffer): CodingStyle {
  const r = new SegmentReader(body, 'COD');
  const scod = r.u8();
  const order = r.u8();
  const layers = r.u16();
  const mct = r.u8();
  if (order > 4) throw corrupt(`COD progression order ${order}`);
  if (layers === 0) throw corrupt('COD declares 0 quality layers');
  const style = parseSpcod(r, (scod & 1) !== 0, 'COD');
  return { ...style, scod, sop: (scod & 2) !== 0, eph: (scod & 4) !== 0, progression: PROGRESSION_ORDERS[order], layers, mct };
}

export function parseCoc(body: Buffer, components: number): ComponentCoding {
  const r = new SegmentReader(body, 'COC');
  const component = r.comp(components);
  if (component >= components) throw corrupt(`COC for component ${component} of ${components}`);
  const scoc = r.u8();
  return { component, style: parseSpcod(r, (scoc & 1) !== 0, 'COC') };
}

function parseQuantBody(r: SegmentReader): Quantization {
  const s = r.u8();
  const style = s & 0x1f;
  const guardBits = s >> 5;
  const steps: Array<{ exponent: number; mantissa: number }> = [];
  if (style === 0) {
    while (r.remaining >= 1) steps.push({ exponent: r.u8() >> 3, mantissa: 0 });
  } else if (style === 1 || style === 2) {
    while (r.remaining >= 2) {
      const v = r.u16();
      steps.push({ exponent: v >> 11, mantissa: v & 0x7ff });
    }
  } else {
    throw corrupt(`quantization style ${style}`);
  }
  return { style, guardBits, steps };
}

export function parseQcd(body: Buffer): Quantization {
  return parseQuantBody(new SegmentReader(body, 'QCD'));
}

export function parseQcc(body: Buffer, components: number): ComponentQuantization {
  const r = new SegmentReader(body, 'QCC');
  const component = r.comp(components);
  return { component, quantization: parseQuantBody(r) };
}

export function parseRgn(body: Buffer, components: number): RegionOfInterest {
  const r = new SegmentReader(body, 'RGN');
  return { component: r.comp(components), style: r.u8(), shift: r.u8() };
}

export function parsePoc(body: Buffer, components: number): ProgressionChange[] {
  const r = new SegmentReader(body, 'POC');
  const out: ProgressionChange[] = [];
  const entry = 5 + 2 * (components < 257 ? 1 : 2);
  if (body.length === 0 || body.length % entry !== 0) throw corrupt('POC marker segment length');
  while (r.remaining >= entry) {
    const resolutionStart = r.u8();
    const componentStart = r.comp(components);
    const layerEnd = r.u16();
    const resolutionEnd = r.u8();
    const componentEnd = r.comp(components);
    const p = r.u8();
    if (p > 4) throw corrupt(`POC progression order ${p}`);
    out.push({ resolutionStart, componentStart, layerEnd, resolutionEnd, componentEnd, progression: PROGRESSION_ORDERS[p] });
  }
  return out;
}

export function parseTlm(body: Buffer): TilePartLengths {
  const r = new SegmentReader(body, 'TLM');
  const index = r.u8();
  const s = r.u8();
  const st = (s >> 4) & 3;
  const sp = (s >> 6) & 1;
  if (st === 3) throw corrupt('TLM Stlm');
  const entrySize = st + (sp ? 4 : 2);
  const entries: Array<{ tile: number | undefined; length: number }> = [];
  while (r.remaining >= entrySize) {
    const tile = st === 0 ? undefined : st === 1 ? r.u8() : r.u16();
    const length = sp ? r.u32() : r.u16();
    entries.push({ tile, length });
  }
  return { index, entries };
}

/** Packet lengths coded 7 bits a byte, high bit set on all but the last byte (A.7.3). */
function readLengths(buf: Buffer, start: number, end: number, what: string): number[] {
  const out: number[] = [];
  let v = 0;
  let open = false;
  for (let i = start; i < end; i++) {
    const b = buf[i];
    v = v * 128 + (b & 0x7f);
    open = (b & 0x80) !== 0;
    if (!open) {
      out.push(v);
      v = 0;
    }
  }
  if (open) throw corrupt(`${what} ends inside a packet length`);
  return out;
}

export function parsePlt(body: Buffer): PacketLengths {
  if (body.length < 1) throw corrupt('PLT marker segment is too short');
  return { index: body[0], lengths: readLengths(body, 1, body.length, 'PLT') };
}

export function parsePlm(body: Buffer): MainPacketLengths {
  if (body.length < 1) throw corrupt('PLM marker segment is too short');
  const tileParts: number[][] = [];
  let p = 1;
  while (p < body.length) {
    const n = body[p++];
    if (p + n > body.length) throw corrupt('PLM Nplm runs past the segment');
    tileParts.push(readLengths(body, p, p + n, 'PLM'));
    p += n;
  }
  return { index: body[0], tileParts };
}

export function parseComment(body: Buffer, offset: number, length: number): Comment {
  const r = new SegmentReader(body, 'COM');
  const registration = r.u16();
  const text = registration === 1 ? body.subarray(2).toString('latin1').replace(/\0+$/, '') : undefined;
  return { registration, ...(text !== undefined ? { text } : {}), offset, length };
}

export function parseCap(body: Buffer): Capabilities {
  const r = new SegmentReader(body, 'CAP');
  const pcap = r.u32();
  const ccap: number[] = [];
  while (r.remaining >= 2) ccap.push(r.u16());
  return { pcap, ccap };
}

export function parseCpf(body: Buffer): number[] {
  const r = new SegmentReader(body, 'CPF');
  const out: number[] = [];
  while (r.remaining >= 2) out.push(r.u16());
  return out;
}

/** CRG: component registration offsets, in units of 1/65536 of a sample. */
export function parseCrg(body: Buffer, components: number): Array<{ x: number; y: number }> {
  const r = new SegmentReader(body, 'CRG');
  const out: Array<{ x: number; y: number }> = [];
  for (let i = 0; i < components; i++) out.push({ x: r.u16(), y: r.u16() });
  return out;
}

export function parseSot(body: Buffer): StartOfTile {
  const r = new SegmentReader(body, 'SOT');
  const tile = r.u16();
  const length = r.u32();
  const part = r.u8();
  const parts = r.u8();
  return { tile, length, part, parts };
}
