// Lazy TIFF structure reader: header, IFD chain, SubIFDs and tile/strip locations, read with
// positioned reads through one FileHandle. It never reads pixel data except the raw bytes of
// a tile asked for (passthrough). Classic TIFF and BigTIFF, both byte orders.
//
// Why our own: the npm TIFF readers either read the whole file (tiff, utif), cannot do BigTIFF,
// or do not list SubIFD pyramids (geotiff) — see peers.md §7.2. Opening a 20000² pyramid must
// cost a few KB of reads, not the file: entry tables are read per IFD, out-of-line values only
// for the tags the decoder needs, and the (possibly large) tile offset/byte-count arrays only
// on first use of a tile of that IFD.

import { open, type FileHandle } from 'node:fs/promises';
import { ImageServerError } from '../../src/core/errors.js';

/** TIFF tag numbers used by the server. */
export const Tag = {
  NewSubfileType: 254,
  ImageWidth: 256,
  ImageLength: 257,
  BitsPerSample: 258,
  Compression: 259,
  Photometric: 262,
  DocumentName: 269,
  ImageDescription: 270,
  Make: 271,
  Model: 272,
  StripOffsets: 273,
  SamplesPerPixel: 277,
  RowsPerStrip: 278,
  StripByteCounts: 279,
  XResolution: 282,
  YResolution: 283,
  PlanarConfig: 284,
  PageName: 285,
  ResolutionUnit: 296,
  Software: 305,
  DateTime: 306,
  Artist: 315,
  TileWidth: 322,
  TileLength: 323,
  TileOffsets: 324,
  TileByteCounts: 325,
  SubIFDs: 330,
  ExtraSamples: 338,
  SampleFormat: 339,
  SMinSampleValue: 340,
  SMaxSampleValue: 341,
  JPEGTables: 347,
  YCbCrSubsampling: 530,
  XMLPacket: 700,
  Copyright: 33432,
  InterColorProfile: 34675,
  /** TIFF/EP StoNits: iipsrv's scale of an image-stack member. */
  StoNits: 37439,
} as const;

/** Text tags exposed by `Ifd.textTags()`, by a short name. */
export const TEXT_TAGS = {
  documentName: Tag.DocumentName,
  imageDescription: Tag.ImageDescription,
  make: Tag.Make,
  model: Tag.Model,
  pageName: Tag.PageName,
  software: Tag.Software,
  dateTime: Tag.DateTime,
  artist: Tag.Artist,
  copyright: Tag.Copyright,
  xmp: Tag.XMLPacket,
} as const;
export type TextTagName = keyof typeof TEXT_TAGS;

// Field types → byte size. 13 IFD, 16 LONG8, 17 SLONG8, 18 IFD8 (BigTIFF).
const TYPE_SIZE: Readonly<Record<number, number>> = {
  1: 1,
  2: 1,
  3: 2,
  4: 4,
  5: 8,
  6: 1,
  7: 1,
  8: 2,
  9: 4,
  10: 8,
  11: 4,
  12: 8,
  13: 4,
  16: 8,
  17: 8,
  18: 8,
};

/** Limits against hostile files: a real pyramid has tens of IFDs, not thousands. */
const MAX_IFDS = 4096;
const MAX_ENTRIES = 4096;
/** No value the server reads eagerly is this large; bigger counts mean a corrupt entry. */
const MAX_EAGER_VALUE_BYTES = 1 << 20;
/** Out-of-line values within this span are fetched in one read (small: reads are cheap, bytes not free). */
const COALESCE_SPAN = 4096;

export interface TiffEntry {
  readonly tag: number;
  readonly type: number;
  readonly count: number;
  /** Byte length of the value, or -1 for an unknown type. */
  readonly byteLength: number;
  /** The value bytes when stored inside the entry, else null. */
  readonly inline: Buffer | null;
  /** Absolute file offset of the value when not inline. */
  readonly valueOffset: number;
}

export interface TileLocation {
  readonly offset: number;
  readonly length: number;
}

function corrupt(reason: string, detail: string): ImageServerError {
  return new ImageServerError('CORRUPT_IMAGE', `Corrupt TIFF: ${reason}`, detail);
}

/** Byte-order aware reading of numbers from a buffer. */
class Endian {
  constructor(readonly little: boolean) {}
  u16(b: Buffer, o: number): number {
    return this.little ? b.readUInt16LE(o) : b.readUInt16BE(o);
  }
  u32(b: Buffer, o: number): number {
    return this.little ? b.readUInt32LE(o) : b.readUInt32BE(o);
  }
  /** Unsigned 64-bit as a number; NaN when beyond 2^53 (no such offset or count is real). */
  u64(b: Buffer, o: number): number {
    const v = this.little ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.NaN : Number(v);
  }
  i64(b: Buffer, o: number): number {
    const v = this.little ? b.readBigInt64LE(o) : b.readBigInt64BE(o);
    return Number(v);
  }
  /** Element `i` of a value of field type `type` stored in `b` at `o`. */
  value(type: number, b: Buffer, o: number, i: number): number {
    switch (type) {
      case 1:
      case 2:
      case 7:
        return b[o + i];
      case 6:
        return b.readInt8(o + i);
      case 3:
        return this.u16(b, o + 2 * i);
      case 8:
        return this.little ? b.readInt16LE(o + 2 * i) : b.readInt16BE(o + 2 * i);
      case 4:
      case 13:
        return this.u32(b, o + 4 * i);
      case 9:
        return this.little ? b.readInt32LE(o + 4 * i) : b.readInt32BE(o + 4 * i);
      case 5:
        return this.u32(b, o + 8 * i) / this.u32(b, o + 8 * i + 4);
      case 10: {
        const n = this.little ? b.readInt32LE(o + 8 * i) : b.readInt32BE(o + 8 * i);
        const d = this.little ? b.readInt32LE(o + 8 * i + 4) : b.readInt32BE(o + 8 * i + 4);
        return n / d;
      }
      case 11:
        return this.little ? b.readFloatLE(o + 4 * i) : b.readFloatBE(o + 4 * i);
      case 12:
        return this.little ? b.readDoubleLE(o + 8 * i) : b.readDoubleBE(o + 8 * i);
      case 16:
      case 18:
        return this.u64(b, o + 8 * i);
      case 17:
        return this.i64(b, o + 8 * i);
      default:
        return Number.NaN;
    }
  }
}

/** An open TIFF file: header facts, the main IFD chain, and on-demand SubIFDs. */
export class TiffFile {
  private readonly subIfdCache = new Map<number, Promise<Ifd[]>>();
  private closed = false;

  private constructor(
    private readonly fh: FileHandle,
    /** Kept for error details only; never put into messages. */
    readonly path: string,
    readonly size: number,
    readonly littleEndian: boolean,
    readonly bigTiff: boolean,
    /** The main IFD chain (pages), in file order. */
    readonly ifds: readonly Ifd[],
    private readonly endian: Endian,
  ) {}

  /** Opens `path`, reads the header and walks the main IFD chain (entry tables only). */
  static async open(path: string): Promise<TiffFile> {
    const fh = await open(path, 'r');
    try {
      const size = (await fh.stat()).size;
      const head = Buffer.alloc(16);
      const { bytesRead } = await fh.read(head, 0, 16, 0);
      if (bytesRead < 8) throw corrupt('file too short', `${path}: ${bytesRead} bytes`);
      const order = head.toString('latin1', 0, 2);
      if (order !== 'II' && order !== 'MM') throw corrupt('bad byte order mark', path);
      const e = new Endian(order === 'II');
      const magic = e.u16(head, 2);
      let bigTiff: boolean;
      let first: number;
      if (magic === 42) {
        bigTiff = false;
        first = e.u32(head, 4);
      } else if (magic === 43) {
        if (bytesRead < 16) throw corrupt('file too short', `${path}: ${bytesRead} bytes`);
        if (e.u16(head, 4) !== 8 || e.u16(head, 6) !== 0) throw corrupt('bad BigTIFF header', path);
        bigTiff = true;
        first = e.u64(head, 8);
      } else {
        throw corrupt('not a TIFF file', `${path}: magic ${magic}`);
      }
      const ifds: Ifd[] = [];
      const tiff = new TiffFile(fh, path, size, e.little, bigTiff, ifds, e);
      const visited = new Set<number>();
      let offset = first;
      if (offset === 0) throw corrupt('no image directory', path);
      while (offset !== 0) {
        if (visited.has(offset)) throw corrupt('IFD chain loops', `${path}: IFD ${ifds.length} at ${offset}`);
        if (ifds.length >= MAX_IFDS) throw corrupt('too many IFDs', `${path}: more than ${MAX_IFDS}`);
        visited.add(offset);
        const { ifd, next } = await tiff.readIfd(offset, ifds.length);
        ifds.push(ifd);
        offset = next;
      }
      return tiff;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }

  /** Reads exactly `length` bytes at `offset`, which must lie inside the file. */
  async read(offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw corrupt('data beyond end of file', `${this.path}: ${length} bytes at ${offset}, file size ${this.size}`);
    }
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) throw corrupt('unexpected end of file', `${this.path}: at ${offset + done}`);
      done += bytesRead;
    }
    return buf;
  }

  /**
   * The SubIFDs listed in `ifd`'s SubIFDs tag (each one directory; chains hanging off a SubIFD
   * are not followed — pyramid writers list every level in the tag). Parsed once, then cached.
   */
  subIfds(ifd: Ifd): Promise<Ifd[]> {
    let p = this.subIfdCache.get(ifd.offset);
    if (!p) {
      p = (async () => {
        const out: Ifd[] = [];
        const seen = new Set<number>(this.ifds.map((d) => d.offset));
        for (const off of ifd.subIfdOffsets) {
          if (seen.has(off)) throw corrupt('SubIFD loops', `${this.path}: SubIFD at ${off}`);
          seen.add(off);
          out.push((await this.readIfd(off, out.length, ifd)).ifd);
        }
        return out;
      })();
      this.subIfdCache.set(ifd.offset, p);
      p.catch(() => this.subIfdCache.delete(ifd.offset));
    }
    return p;
  }

  private async readIfd(offset: number, index: number, parent?: Ifd): Promise<{ ifd: Ifd; next: number }> {
    const where = `${this.path}: ${parent ? `SubIFD ${index} of IFD at ${parent.offset}` : `IFD ${index}`} at ${offset}`;
    const countSize = this.bigTiff ? 8 : 2;
    const entrySize = this.bigTiff ? 20 : 12;
    const ptrSize = this.bigTiff ? 8 : 4;
    if (!Number.isSafeInteger(offset) || offset < 8 || offset + countSize > this.size) {
      throw corrupt('IFD offset beyond end of file', `${where}, file size ${this.size}`);
    }
    // One speculative read usually covers the count, all entries and the next pointer.
    const guess = Math.min(this.size - offset, 2048);
    let buf = await this.read(offset, guess);
    const n = this.bigTiff ? this.endian.u64(buf, 0) : this.endian.u16(buf, 0);
    if (!(n > 0) || n > MAX_ENTRIES) throw corrupt('bad IFD entry count', `${where}: ${n} entries`);
    const tableLen = countSize + n * entrySize + ptrSize;
    if (offset + tableLen > this.size) throw corrupt('IFD beyond end of file', `${where}: ${n} entries`);
    if (tableLen > buf.length) buf = await this.read(offset, tableLen);

    const entries = new Map<number, TiffEntry>();
    const inlineSize = this.bigTiff ? 8 : 4;
    for (let i = 0; i < n; i++) {
      const o = countSize + i * entrySize;
      const tag = this.endian.u16(buf, o);
      const type = this.endian.u16(buf, o + 2);
      const count = this.bigTiff ? this.endian.u64(buf, o + 4) : this.endian.u32(buf, o + 4);
      const valueAt = o + (this.bigTiff ? 12 : 8);
      const unit = TYPE_SIZE[type];
      const byteLength = unit === undefined || !Number.isSafeInteger(count) ? -1 : unit * count;
      const isInline = byteLength >= 0 && byteLength <= inlineSize;
      const valueOffset = isInline ? -1 : this.bigTiff ? this.endian.u64(buf, valueAt) : this.endian.u32(buf, valueAt);
      // The first occurrence wins; a duplicated tag is a writer bug, not worth failing for.
      if (!entries.has(tag)) {
        entries.set(tag, {
          tag,
          type,
          count,
          byteLength,
          inline: isInline ? Buffer.from(buf.subarray(valueAt, valueAt + byteLength)) : null,
          valueOffset,
        });
      }
    }
    const nextAt = countSize + n * entrySize;
    const next = this.bigTiff ? this.endian.u64(buf, nextAt) : this.endian.u32(buf, nextAt);
    if (!Number.isSafeInteger(next)) throw corrupt('bad next-IFD offset', where);

    // Fetch the out-of-line values of the tags read eagerly, coalescing close ones.
    const values = new Map<number, number[]>();
    const wanted = EAGER_TAGS.map((t) => entries.get(t)).filter((e): e is TiffEntry => e !== undefined);
    const outOfLine: TiffEntry[] = [];
    for (const e of wanted) {
      this.checkEntry(e, where, MAX_EAGER_VALUE_BYTES);
      if (e.inline) values.set(e.tag, this.decode(e, e.inline, 0));
      // Writers often put values right after the entry table, inside the speculative read.
      else if (e.valueOffset >= offset && e.valueOffset + e.byteLength <= offset + buf.length) {
        values.set(e.tag, this.decode(e, buf, e.valueOffset - offset));
      } else outOfLine.push(e);
    }
    outOfLine.sort((a, b) => a.valueOffset - b.valueOffset);
    for (let i = 0; i < outOfLine.length;) {
      let j = i + 1;
      const start = outOfLine[i].valueOffset;
      let end = start + outOfLine[i].byteLength;
      while (j < outOfLine.length && outOfLine[j].valueOffset + outOfLine[j].byteLength - start <= COALESCE_SPAN) {
        end = Math.max(end, outOfLine[j].valueOffset + outOfLine[j].byteLength);
        j++;
      }
      const chunk = await this.read(start, end - start);
      for (let k = i; k < j; k++) values.set(outOfLine[k].tag, this.decode(outOfLine[k], chunk, outOfLine[k].valueOffset - start));
      i = j;
    }
    return { ifd: new Ifd(this, offset, entries, values, where), next };
  }

  /** Validates an entry's type, count and value position before its value is read. */
  checkEntry(e: TiffEntry, where: string, maxBytes: number): void {
    if (e.byteLength < 0) throw corrupt('bad tag type or count', `${where}: tag ${e.tag} type ${e.type} count ${e.count}`);
    if (e.byteLength > maxBytes || e.byteLength > this.size) {
      throw corrupt('tag value too large', `${where}: tag ${e.tag} count ${e.count}`);
    }
    if (!e.inline && (!Number.isSafeInteger(e.valueOffset) || e.valueOffset + e.byteLength > this.size)) {
      throw corrupt('tag value beyond end of file', `${where}: tag ${e.tag} at ${e.valueOffset}`);
    }
  }

  /** All elements of an entry's value as numbers. */
  decode(e: TiffEntry, b: Buffer, o: number): number[] {
    const out = new Array<number>(e.count);
    for (let i = 0; i < e.count; i++) out[i] = this.endian.value(e.type, b, o, i);
    return out;
  }

  /** The raw value bytes of an entry (inline or read from the file). */
  async entryBytes(e: TiffEntry, where: string, maxBytes: number): Promise<Buffer> {
    this.checkEntry(e, where, maxBytes);
    return e.inline ?? this.read(e.valueOffset, e.byteLength);
  }
}

/** Tags whose values every IFD needs; read when the IFD is parsed (they are tiny). */
const EAGER_TAGS: readonly number[] = [
  Tag.NewSubfileType,
  Tag.ImageWidth,
  Tag.ImageLength,
  Tag.BitsPerSample,
  Tag.Compression,
  Tag.Photometric,
  Tag.SamplesPerPixel,
  Tag.RowsPerStrip,
  Tag.XResolution,
  Tag.YResolution,
  Tag.PlanarConfig,
  Tag.ResolutionUnit,
  Tag.TileWidth,
  Tag.TileLength,
  Tag.SubIFDs,
  Tag.ExtraSamples,
  Tag.SampleFormat,
  Tag.SMinSampleValue,
  Tag.SMaxSampleValue,
  Tag.YCbCrSubsampling,
];

/** Largest tile/strip array we accept: 16M tiles is a 4-million-pixel-wide image at 256². */
const MAX_TILES = 1 << 24;
/** JPEGTables and text tags: generous, but bounded (XMP can be large, not gigabytes). */
const MAX_BLOB_BYTES = 16 << 20;

/** One image file directory. Scalar fields are decoded at parse time; blobs and arrays lazily. */
export class Ifd {
  readonly width: number;
  readonly height: number;
  readonly isTiled: boolean;
  /** Tile size for tiled IFDs; undefined for striped ones. */
  readonly tileWidth?: number;
  readonly tileHeight?: number;
  /** Rows per strip for striped IFDs (clamped to the height); undefined for tiled ones. */
  readonly rowsPerStrip?: number;
  readonly compression: number;
  /** PhotometricInterpretation; undefined when the tag is missing. */
  readonly photometric?: number;
  readonly samplesPerPixel: number;
  /** Per sample (length samplesPerPixel). */
  readonly bitsPerSample: readonly number[];
  /** Per sample: 1 uint, 2 int, 3 IEEE float, 4 void. */
  readonly sampleFormat: readonly number[];
  /** 1 contiguous (chunky), 2 separate planes. */
  readonly planarConfig: number;
  readonly newSubfileType: number;
  readonly extraSamples: readonly number[];
  readonly yCbCrSubsampling: readonly [number, number];
  readonly sMinSampleValue?: readonly number[];
  readonly sMaxSampleValue?: readonly number[];
  readonly xResolution?: number;
  readonly yResolution?: number;
  /** 1 none, 2 inch (the TIFF default), 3 centimetre. */
  readonly resolutionUnit: number;
  readonly subIfdOffsets: readonly number[];
  /** Tiles (or strips) across and down one plane. */
  readonly tilesAcross: number;
  readonly tilesDown: number;
  /** Number of tiles or strips: tilesAcross × tilesDown × (planes when planar-separate). */
  readonly tileCount: number;

  private locations?: Promise<{ offsets: Float64Array; lengths: Float64Array }>;
  private jpegTablesP?: Promise<Buffer | undefined>;
  private readonly textCache = new Map<number, Promise<string | undefined>>();

  constructor(
    private readonly file: TiffFile,
    /** File offset of this IFD; identifies it. */
    readonly offset: number,
    /** All entries, by tag. */
    readonly entries: ReadonlyMap<number, TiffEntry>,
    values: ReadonlyMap<number, number[]>,
    private readonly where: string,
  ) {
    const one = (tag: number, dflt?: number): number | undefined => values.get(tag)?.[0] ?? dflt;
    const width = one(Tag.ImageWidth);
    const height = one(Tag.ImageLength);
    if (!width || !height || width < 1 || height < 1 || !Number.isSafeInteger(width) || !Number.isSafeInteger(height)) {
      throw corrupt('missing or bad image size', `${where}: ${width}×${height}`);
    }
    this.width = width;
    this.height = height;
    this.samplesPerPixel = one(Tag.SamplesPerPixel, 1)!;
    const spp = this.samplesPerPixel;
    if (!(spp >= 1 && spp <= 64)) throw corrupt('bad SamplesPerPixel', `${where}: ${spp}`);
    // Per-sample tags may legally hold a single value meaning "all samples".
    const perSample = (tag: number, dflt: number): number[] => {
      const v = values.get(tag);
      if (!v || v.length === 0) return new Array<number>(spp).fill(dflt);
      return Array.from({ length: spp }, (_, i) => v[Math.min(i, v.length - 1)]);
    };
    this.bitsPerSample = perSample(Tag.BitsPerSample, 1);
    this.sampleFormat = perSample(Tag.SampleFormat, 1);
    this.compression = one(Tag.Compression, 1)!;
    this.photometric = one(Tag.Photometric);
    this.planarConfig = one(Tag.PlanarConfig, 1)!;
    this.newSubfileType = one(Tag.NewSubfileType, 0)!;
    this.extraSamples = values.get(Tag.ExtraSamples) ?? [];
    const ycc = values.get(Tag.YCbCrSubsampling);
    this.yCbCrSubsampling = [ycc?.[0] ?? 2, ycc?.[1] ?? 2];
    const smin = values.get(Tag.SMinSampleValue);
    const smax = values.get(Tag.SMaxSampleValue);
    if (smin) this.sMinSampleValue = perSample(Tag.SMinSampleValue, 0);
    if (smax) this.sMaxSampleValue = perSample(Tag.SMaxSampleValue, 0);
    const xr = one(Tag.XResolution);
    const yr = one(Tag.YResolution);
    if (xr !== undefined && Number.isFinite(xr) && xr > 0) this.xResolution = xr;
    if (yr !== undefined && Number.isFinite(yr) && yr > 0) this.yResolution = yr;
    this.resolutionUnit = one(Tag.ResolutionUnit, 2)!;
    this.subIfdOffsets = values.get(Tag.SubIFDs) ?? [];

    const tw = one(Tag.TileWidth);
    const th = one(Tag.TileLength);
    this.isTiled = tw !== undefined || th !== undefined || entries.has(Tag.TileOffsets);
    const planes = this.planarConfig === 2 ? spp : 1;
    if (this.isTiled) {
      if (!tw || !th || !Number.isSafeInteger(tw) || !Number.isSafeInteger(th) || tw < 1 || th < 1) {
        throw corrupt('bad tile size', `${where}: ${tw}×${th}`);
      }
      this.tileWidth = tw;
      this.tileHeight = th;
      this.tilesAcross = Math.ceil(width / tw);
      this.tilesDown = Math.ceil(height / th);
    } else {
      const rps = one(Tag.RowsPerStrip, height)!;
      this.rowsPerStrip = Math.min(rps >= 1 && Number.isSafeInteger(rps) ? rps : height, height);
      this.tilesAcross = 1;
      this.tilesDown = Math.ceil(height / this.rowsPerStrip);
    }
    this.tileCount = this.tilesAcross * this.tilesDown * planes;
    if (this.tileCount > MAX_TILES) throw corrupt('too many tiles', `${where}: ${this.tileCount}`);
  }

  /** Tag numbers of the offset and byte-count arrays for this layout. */
  private get locationTags(): [number, number] {
    return this.isTiled ? [Tag.TileOffsets, Tag.TileByteCounts] : [Tag.StripOffsets, Tag.StripByteCounts];
  }

  /** Loads both location arrays once; concurrent callers share the read. */
  private loadLocations(): Promise<{ offsets: Float64Array; lengths: Float64Array }> {
    if (!this.locations) {
      this.locations = (async () => {
        const [offTag, lenTag] = this.locationTags;
        const read = async (tag: number): Promise<Float64Array> => {
          const e = this.entries.get(tag);
          if (!e) throw corrupt('missing tile or strip locations', `${this.where}: no tag ${tag}`);
          if (e.count < this.tileCount)
            throw corrupt('too few tile or strip locations', `${this.where}: tag ${tag} has ${e.count}, need ${this.tileCount}`);
          if (![3, 4, 16].includes(e.type)) throw corrupt('bad tile or strip location type', `${this.where}: tag ${tag} type ${e.type}`);
          // Only the first tileCount values are read: a count larger than the layout needs
          // (junk after the array) must not make us read more.
          this.file.checkEntry(e, this.where, Number.MAX_SAFE_INTEGER);
          const used: TiffEntry = { ...e, count: this.tileCount, byteLength: this.tileCount * TYPE_SIZE[e.type] };
          const bytes = e.inline ? e.inline.subarray(0, used.byteLength) : await this.file.read(e.valueOffset, used.byteLength);
          const vals = this.file.decode(used, bytes, 0);
          return Float64Array.from(vals);
        };
        const [offsets, lengths] = await Promise.all([read(offTag), read(lenTag)]);
        return { offsets, lengths };
      })();
      this.locations.catch(() => {
        this.locations = undefined;
      });
    }
    return this.locations;
  }

  /**
   * Where tile (or strip) `index` is stored (row-major; for planar-separate images the planes
   * follow each other). `length` 0 means the tile is absent (sparse file).
   */
  async tileLocation(index: number): Promise<TileLocation> {
    if (!Number.isInteger(index) || index < 0 || index >= this.tileCount) {
      throw new ImageServerError('BAD_TILE', undefined, `${this.where}: tile ${index} of ${this.tileCount}`);
    }
    const { offsets, lengths } = await this.loadLocations();
    const offset = offsets[index];
    const length = lengths[index];
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset + length > this.file.size) {
      throw corrupt('tile data beyond end of file', `${this.where}: tile ${index} at ${offset}+${length}, file size ${this.file.size}`);
    }
    return { offset, length };
  }

  /** The stored (still compressed) bytes of tile or strip `index`; empty when absent. */
  async readTile(index: number): Promise<Buffer> {
    const { offset, length } = await this.tileLocation(index);
    return length === 0 ? Buffer.alloc(0) : this.file.read(offset, length);
  }

  /** The JPEGTables tag contents (an abbreviated JPEG: SOI, DQT/DHT, EOI), if present. */
  jpegTables(): Promise<Buffer | undefined> {
    if (!this.jpegTablesP) {
      const e = this.entries.get(Tag.JPEGTables);
      this.jpegTablesP = e ? this.file.entryBytes(e, this.where, MAX_BLOB_BYTES) : Promise.resolve(undefined);
      this.jpegTablesP.catch(() => {
        this.jpegTablesP = undefined;
      });
    }
    return this.jpegTablesP;
  }

  /**
   * A text tag as a string (ASCII/UTF-8, up to the first NUL, trailing whitespace removed);
   * undefined when absent or empty. XMLPacket is stored as BYTE/UNDEFINED, also decoded as UTF-8.
   */
  text(tag: number): Promise<string | undefined> {
    let p = this.textCache.get(tag);
    if (!p) {
      const e = this.entries.get(tag);
      p = e
        ? this.file.entryBytes(e, this.where, MAX_BLOB_BYTES).then((b) => {
            const nul = b.indexOf(0);
            const s = b.toString('utf8', 0, nul < 0 ? b.length : nul).trimEnd();
            return s === '' ? undefined : s;
          })
        : Promise.resolve(undefined);
      this.textCache.set(tag, p);
      p.catch(() => this.textCache.delete(tag));
    }
    return p;
  }

  /** All present text tags of `TEXT_TAGS`, by short name. */
  async textTags(): Promise<Partial<Record<TextTagName, string>>> {
    const out: Partial<Record<TextTagName, string>> = {};
    await Promise.all(
      (Object.entries(TEXT_TAGS) as [TextTagName, number][]).map(async ([name, tag]) => {
        if (!this.entries.has(tag)) return;
        const v = await this.text(tag);
        if (v !== undefined) out[name] = v;
      }),
    );
    return out;
  }

  /** Any tag's value bytes as stored (an ICC profile, say); undefined when absent. */
  async bytes(tag: number): Promise<Buffer | undefined> {
    const e = this.entries.get(tag);
    return e ? this.file.entryBytes(e, this.where, MAX_BLOB_BYTES) : undefined;
  }

  /** Any tag's numeric values (reads out-of-line values on demand; not cached). */
  async values(tag: number): Promise<number[] | undefined> {
    const e = this.entries.get(tag);
    if (!e) return undefined;
    const b = await this.file.entryBytes(e, this.where, MAX_BLOB_BYTES);
    return this.file.decode(e, b, 0);
  }
}
