// The JPEG 2000 codestream walker: the main header (SOC up to the first SOT) parsed into typed
// marker segments at open, and — only when asked — every tile-part (SOT header fields, the
// marker segments of its header, where its data starts and ends), found by following Psot from
// one SOT to the next. Reads are positioned and small: the packet data is never read.

import { corrupt } from './errors.js';
import {
  isDelimiting,
  MARKERS,
  markerName,
  parseCap,
  parseCoc,
  parseCod,
  parseComment,
  parseCpf,
  parseCrg,
  parsePlm,
  parsePlt,
  parsePoc,
  parseQcc,
  parseQcd,
  parseRgn,
  parseSiz,
  parseSot,
  parseTlm,
  type Capabilities,
  type CodingStyle,
  type Comment,
  type ComponentCoding,
  type ComponentCodingStyle,
  type ComponentQuantization,
  type MainPacketLengths,
  type MarkerSegment,
  type PackedHeaders,
  type PacketLengths,
  type ProgressionChange,
  type Quantization,
  type RegionOfInterest,
  type Siz,
  type TilePartLengths,
} from './markers.js';
import type { ByteSource } from './source.js';

/** Marker segments that may appear in both the main header and a tile-part header. */
export interface HeaderMarkers {
  readonly cod?: CodingStyle;
  readonly coc: readonly ComponentCoding[];
  readonly qcd?: Quantization;
  readonly qcc: readonly ComponentQuantization[];
  readonly rgn: readonly RegionOfInterest[];
  readonly poc: readonly ProgressionChange[];
  readonly comments: readonly Comment[];
}

export interface MainHeader extends HeaderMarkers {
  /** Absolute offset of SOC. */
  readonly offset: number;
  /** Bytes from SOC up to (not including) the first SOT: the JPIP main-header data-bin. */
  readonly length: number;
  /** Every marker segment in order, SOC first. */
  readonly segments: readonly MarkerSegment[];
  readonly siz: Siz;
  readonly cod: CodingStyle;
  readonly qcd: Quantization;
  readonly tlm: readonly TilePartLengths[];
  readonly plm: readonly MainPacketLengths[];
  readonly ppm: readonly PackedHeaders[];
  readonly crg?: ReadonlyArray<{ readonly x: number; readonly y: number }>;
  readonly cap?: Capabilities;
  readonly cpf?: readonly number[];
}

export interface TileHeader extends HeaderMarkers {
  readonly plt: readonly PacketLengths[];
  readonly ppt: readonly PackedHeaders[];
}

export interface TilePart {
  /** Isot: tile index in raster order. */
  readonly tile: number;
  /** TPsot: index of this part within its tile. */
  readonly part: number;
  /** TNsot: parts of the tile (0 = not stated in this tile-part). */
  readonly parts: number;
  /** Absolute offset of the SOT marker. */
  readonly offset: number;
  /** Whole tile-part length (Psot, or up to EOC when Psot is 0). */
  readonly length: number;
  /** SOT through SOD inclusive. */
  readonly headerLength: number;
  /** Absolute offset of the first byte after SOD, and the packet data length. */
  readonly dataOffset: number;
  readonly dataLength: number;
  /** Marker segments of the header in order: SOT first, SOD last. */
  readonly segments: readonly MarkerSegment[];
  readonly header: TileHeader;
  /** True when the file ends before the tile-part does. */
  readonly truncated: boolean;
}

/** Cached window over the source so that consecutive small reads cost one pread. */
class Window {
  private base = 0;
  private buf: Buffer = Buffer.alloc(0);
  constructor(
    private readonly src: ByteSource,
    private readonly chunk: number,
    private readonly limit: number,
  ) {}

  /** Bytes [offset, offset+length), which must lie before `limit`. */
  async get(offset: number, length: number, what: string): Promise<Buffer> {
    if (offset + length > this.limit)
      throw corrupt(`${what} is truncated`, `need ${length} bytes at ${offset}, codestream ends at ${this.limit}`);
    if (offset < this.base || offset + length > this.base + this.buf.length) {
      this.buf = await this.src.read(offset, Math.min(Math.max(length, this.chunk), this.limit - offset));
      this.base = offset;
      if (this.buf.length < length) throw corrupt(`${what} is truncated`, `need ${length} bytes at ${offset}`);
    }
    return this.buf.subarray(offset - this.base, offset - this.base + length);
  }
}

/** Mutable collector for HeaderMarkers while a header is walked. */
interface Collected {
  cod?: CodingStyle;
  coc: ComponentCoding[];
  qcd?: Quantization;
  qcc: ComponentQuantization[];
  rgn: RegionOfInterest[];
  poc: ProgressionChange[];
  comments: Comment[];
  plt: PacketLengths[];
  ppt: PackedHeaders[];
  tlm: TilePartLengths[];
  plm: MainPacketLengths[];
  ppm: PackedHeaders[];
  crg?: Array<{ x: number; y: number }>;
  cap?: Capabilities;
  cpf?: number[];
}

const newCollected = (): Collected => ({ coc: [], qcc: [], rgn: [], poc: [], comments: [], plt: [], ppt: [], tlm: [], plm: [], ppm: [] });

/** Markers whose bodies can be large and are only located, never read. */
const LOCATE_ONLY = new Set<number>([MARKERS.PPM, MARKERS.PPT]);

/** Stores one marker segment's decoded body. `components` is Csiz (for component indices). */
function collect(c: Collected, marker: number, body: Buffer, offset: number, length: number, components: number): void {
  switch (marker) {
    case MARKERS.COD:
      c.cod = parseCod(body);
      break;
    case MARKERS.COC: {
      const coc = parseCoc(body, components);
      c.coc = c.coc.filter((x) => x.component !== coc.component).concat(coc);
      break;
    }
    case MARKERS.QCD:
      c.qcd = parseQcd(body);
      break;
    case MARKERS.QCC: {
      const q = parseQcc(body, components);
      c.qcc = c.qcc.filter((x) => x.component !== q.component).concat(q);
      break;
    }
    case MARKERS.RGN:
      c.rgn.push(parseRgn(body, components));
      break;
    case MARKERS.POC:
      c.poc.push(...parsePoc(body, components));
      break;
    case MARKERS.COM:
      c.comments.push(parseComment(body, offset, length));
      break;
    case MARKERS.PLT:
      c.plt.push(parsePlt(body));
      break;
    case MARKERS.TLM:
      c.tlm.push(parseTlm(body));
      break;
    case MARKERS.PLM:
      c.plm.push(parsePlm(body));
      break;
    case MARKERS.PPM:
    case MARKERS.PPT: {
      // Zppm/Zppt is one byte; the packed headers follow.
      const list = marker === MARKERS.PPM ? c.ppm : c.ppt;
      list.push({ index: body.length > 0 ? body[0] : -1, offset: offset + 5, length: length - 5 });
      break;
    }
    case MARKERS.CRG:
      c.crg = parseCrg(body, components);
      break;
    case MARKERS.CAP:
      c.cap = parseCap(body);
      break;
    case MARKERS.CPF:
      c.cpf = parseCpf(body);
      break;
    default:
      break; // Part 2 and unknown segments: kept in `segments` only
  }
}

function sortByIndex<T extends { index: number }>(list: T[]): T[] {
  return list.sort((a, b) => a.index - b.index);
}

export class Codestream {
  private tilePartsMemo?: Promise<readonly TilePart[]>;

  private constructor(
    /** Where the bytes come from (the whole file; the codestream may be inside a jp2c box). */
    readonly source: ByteSource,
    /** Absolute offset and length of the codestream in the source. */
    readonly offset: number,
    readonly length: number,
    readonly header: MainHeader,
  ) {}

  /**
   * Parses the main header of the codestream at [offset, offset+length) of `source`. Reads only
   * the main header (normally a few hundred bytes): no tile-part is touched.
   */
  static async read(source: ByteSource, offset = 0, length = source.size - offset): Promise<Codestream> {
    const end = offset + length;
    const win = new Window(source, 16384, end);
    const soc = await win.get(offset, 2, 'codestream');
    if (soc.readUInt16BE(0) !== MARKERS.SOC) throw corrupt('no SOC marker at the start of the codestream');
    const segments: MarkerSegment[] = [{ marker: MARKERS.SOC, name: 'SOC', offset, length: 2 }];
    const c = newCollected();
    let siz: Siz | undefined;
    let pos = offset + 2;
    for (;;) {
      const head = await win.get(pos, 2, 'main header');
      const marker = head.readUInt16BE(0);
      if (marker === MARKERS.SOT) break;
      if (head[0] !== 0xff || marker < 0xff01) throw corrupt(`no marker at offset ${pos - offset} of the main header`);
      if (marker === MARKERS.EOC) throw corrupt('codestream has no tile-parts');
      if (isDelimiting(marker)) throw corrupt(`unexpected ${markerName(marker)} in the main header`);
      const lenBuf = await win.get(pos + 2, 2, `${markerName(marker)} marker segment`);
      const len = lenBuf.readUInt16BE(0);
      if (len < 2) throw corrupt(`${markerName(marker)} marker segment length ${len}`);
      if (pos + 2 + len > end) throw corrupt(`${markerName(marker)} marker segment is truncated`);
      if (segments.length === 1 && marker !== MARKERS.SIZ) throw corrupt('SIZ does not follow SOC');
      if (marker === MARKERS.SIZ) {
        siz = parseSiz(await win.get(pos + 4, len - 2, 'SIZ marker segment'));
      } else if (LOCATE_ONLY.has(marker)) {
        const z = await win.get(pos + 4, 1, `${markerName(marker)} marker segment`);
        collect(c, marker, z, pos, len + 2, siz!.components.length);
      } else {
        collect(c, marker, await win.get(pos + 4, len - 2, `${markerName(marker)} marker segment`), pos, len + 2, siz!.components.length);
      }
      segments.push({ marker, name: markerName(marker), offset: pos, length: len + 2 });
      pos += 2 + len;
    }
    if (!siz) throw corrupt('no SIZ marker segment');
    if (!c.cod) throw corrupt('no COD marker segment in the main header');
    if (!c.qcd) throw corrupt('no QCD marker segment in the main header');
    const header: MainHeader = {
      offset,
      length: pos - offset,
      segments,
      siz,
      cod: c.cod,
      coc: c.coc,
      qcd: c.qcd,
      qcc: c.qcc,
      rgn: c.rgn,
      poc: c.poc,
      comments: c.comments,
      tlm: sortByIndex(c.tlm),
      plm: sortByIndex(c.plm),
      ppm: sortByIndex(c.ppm),
      ...(c.crg ? { crg: c.crg } : {}),
      ...(c.cap ? { cap: c.cap } : {}),
      ...(c.cpf ? { cpf: c.cpf } : {}),
    };
    return new Codestream(source, offset, length, header);
  }

  get siz(): Siz {
    return this.header.siz;
  }

  /** Coding style of component `c` in the main header (COC if present, else COD). */
  codingStyle(c: number): ComponentCodingStyle {
    return this.header.coc.find((x) => x.component === c)?.style ?? this.header.cod;
  }

  /** Smallest number of decomposition levels over all components (main header). */
  get minLevels(): number {
    let n = this.header.cod.levels;
    for (let i = 0; i < this.siz.components.length; i++) n = Math.min(n, this.codingStyle(i).levels);
    return n;
  }

  get tilesAcross(): number {
    return Math.ceil((this.siz.xsiz - this.siz.tileX0) / this.siz.tileWidth);
  }

  get tilesDown(): number {
    return Math.ceil((this.siz.ysiz - this.siz.tileY0) / this.siz.tileHeight);
  }

  get tileCount(): number {
    return this.tilesAcross * this.tilesDown;
  }

  /** Absolute offset of the first SOT (end of the main header). */
  get firstTilePartOffset(): number {
    return this.header.offset + this.header.length;
  }

  /** Raw bytes of the source (positioned read). */
  async readBytes(offset: number, length: number): Promise<Buffer> {
    return this.source.read(offset, length);
  }

  /** The bytes of one marker segment, marker included. */
  async readSegment(seg: MarkerSegment): Promise<Buffer> {
    return this.source.read(seg.offset, seg.length);
  }

  /** The main header bytes (SOC up to the first SOT): the JPIP main-header data-bin. */
  async mainHeaderBytes(): Promise<Buffer> {
    return this.source.read(this.header.offset, this.header.length);
  }

  /**
   * Every tile-part in codestream order, with its header parsed. Follows Psot from SOT to SOT,
   * so it reads only the tile-part headers (one small read each). Memoised.
   */
  tileParts(): Promise<readonly TilePart[]> {
    this.tilePartsMemo ??= this.walkTileParts();
    return this.tilePartsMemo;
  }

  /** The tile-parts of one tile, in part order. */
  async tilePartsOf(tile: number): Promise<readonly TilePart[]> {
    return (await this.tileParts()).filter((t) => t.tile === tile).sort((a, b) => a.part - b.part);
  }

  private async walkTileParts(): Promise<readonly TilePart[]> {
    const end = this.offset + this.length;
    const ncomp = this.siz.components.length;
    const out: TilePart[] = [];
    let pos = this.firstTilePartOffset;
    // Psot = 0 means "to the end of the codestream" (before its EOC).
    const tail = end - 2 >= pos ? await this.source.read(end - 2, 2) : Buffer.alloc(0);
    const eocAtEnd = tail.length === 2 && tail.readUInt16BE(0) === MARKERS.EOC;
    while (pos + 2 <= end) {
      const win = new Window(this.source, 4096, end);
      const m = (await win.get(pos, 2, 'tile-part')).readUInt16BE(0);
      if (m === MARKERS.EOC) break;
      if (m !== MARKERS.SOT) throw corrupt(`expected SOT at offset ${pos - this.offset}, found ${markerName(m)}`);
      const sotLen = (await win.get(pos + 2, 2, 'SOT')).readUInt16BE(0);
      if (sotLen !== 10) throw corrupt(`SOT length ${sotLen}`);
      const sot = parseSot(await win.get(pos + 4, 8, 'SOT'));
      if (sot.tile >= this.tileCount) throw corrupt(`tile-part for tile ${sot.tile} of ${this.tileCount}`);
      const length = sot.length === 0 ? end - pos - (eocAtEnd ? 2 : 0) : sot.length;
      if (length < 14) throw corrupt(`tile-part length ${length}`);
      const truncated = pos + length > end;
      const limit = Math.min(pos + length, end);
      const segments: MarkerSegment[] = [{ marker: MARKERS.SOT, name: 'SOT', offset: pos, length: 12 }];
      const c = newCollected();
      let p = pos + 12;
      let sod = -1;
      while (p + 2 <= limit) {
        const mk = (await win.get(p, 2, 'tile-part header')).readUInt16BE(0);
        if (mk === MARKERS.SOD) {
          segments.push({ marker: mk, name: 'SOD', offset: p, length: 2 });
          sod = p + 2;
          break;
        }
        if (mk >> 8 !== 0xff || isDelimiting(mk)) throw corrupt(`bad marker ${markerName(mk)} in the header of tile ${sot.tile}`);
        if (p + 4 > limit) break;
        const len = (await win.get(p + 2, 2, 'tile-part header')).readUInt16BE(0);
        if (len < 2 || p + 2 + len > limit) {
          if (truncated) break;
          throw corrupt(`${markerName(mk)} in the header of tile ${sot.tile} runs past the tile-part`);
        }
        const body = LOCATE_ONLY.has(mk) ? await win.get(p + 4, 1, markerName(mk)) : await win.get(p + 4, len - 2, markerName(mk));
        collect(c, mk, body, p, len + 2, ncomp);
        segments.push({ marker: mk, name: markerName(mk), offset: p, length: len + 2 });
        p += 2 + len;
      }
      if (sod < 0 && !truncated) throw corrupt(`no SOD in tile-part ${sot.part} of tile ${sot.tile}`);
      const dataOffset = sod < 0 ? limit : sod;
      out.push({
        tile: sot.tile,
        part: sot.part,
        parts: sot.parts,
        offset: pos,
        length,
        headerLength: dataOffset - pos,
        dataOffset,
        dataLength: pos + length - dataOffset,
        segments,
        header: {
          ...(c.cod ? { cod: c.cod } : {}),
          coc: c.coc,
          ...(c.qcd ? { qcd: c.qcd } : {}),
          qcc: c.qcc,
          rgn: c.rgn,
          poc: c.poc,
          comments: c.comments,
          plt: sortByIndex(c.plt),
          ppt: sortByIndex(c.ppt),
        },
        truncated,
      });
      if (truncated || sot.length === 0) break;
      pos += length;
    }
    return out;
  }
}
