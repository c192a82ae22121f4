// Sparse codestreams for region decodes of untiled (or few-huge-tile) JPEG 2000 files.
// OpenJPEG reads and parses a whole tile-part before it decodes any part of it, so a 256×256
// region of an untiled 20000×20000 image costs the whole 120 MB tile. Instead, the packet index
// (src/jpeg2000/packet-index.ts, built once per open image) tells where each packet lies; for a
// region we read only the packets of the precincts the region needs (with the synthesis filter
// margins, src/protocols/jpip/window.ts), and hand OpenJPEG a codestream in memory: the main
// header without TLM/PLM, then per tile one tile-part (SOT with the new Psot, the tile header
// without PLT, SOD) whose packets follow the codestream's own progression order, every packet not
// needed replaced by an empty one (0x00, with SOP/EPH markers when the coding style has them), as
// JPIP clients do (ISO/IEC 15444-9 Annex A; /work/shared/tools/jpip/jpp2j2k.py).

import { createHash } from 'node:crypto';
import { mkdir, open, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { openJpeg2000, type GridRect } from '../../src/jpeg2000/index.js';
import { deserializeIndex, serializeIndex, writeAtomically, type FileIdentity } from '../../src/jpeg2000/index-store.js';
import { buildPacketIndex, PacketIndex, type PacketIndexData } from '../../src/jpeg2000/packet-index.js';
import { forEachPacket } from '../../src/jpeg2000/packets.js';
import { windowContent } from '../../src/protocols/jpip/window.js';

const SOT = 0xff90;
const SOD = 0xff93;
const EOC = 0xffd9;
const TLM = 0xff55;
const PLM = 0xff57;
/** Ranges of needed packets closer than this in the file are read in one go. */
const READ_GAP = 8 * 1024;

interface TileOrder {
  /** Packet slots in codestream order. */
  readonly slots: Uint32Array;
  /** Tile header marker segments (no SOT/SOD/PLT), as bytes. */
  readonly header: Buffer;
  readonly sop: boolean;
  readonly eph: boolean;
}

export interface SparseStats {
  /** Packets copied from the file / packets in the sparse codestream. */
  kept: number;
  packets: number;
  /** Bytes read from the file, and in how many reads. */
  readBytes: number;
  reads: number;
}

/** Main header bytes (SOC to the first SOT) without TLM and PLM, which no longer hold. */
function stripMainHeader(buf: Buffer): Buffer {
  const out: Buffer[] = [buf.subarray(0, 2)];
  let p = 2;
  while (p + 4 <= buf.length) {
    const marker = buf.readUInt16BE(p);
    const len = 2 + buf.readUInt16BE(p + 2);
    if (marker !== TLM && marker !== PLM) out.push(buf.subarray(p, p + len));
    p += len;
  }
  return Buffer.concat(out);
}

/** The packet index of one image and what a sparse codestream needs of it, built once. */
export class SparseCodestreams {
  private readonly orders = new Map<number, TileOrder>();

  private constructor(
    readonly path: string,
    readonly index: PacketIndex,
    private readonly mainHeader: Buffer,
    /** Time spent building (or loading) the index, ms. */
    readonly buildMs: number,
    /** Whether the index came from `indexDir` rather than from the codestream. */
    readonly loaded: boolean,
  ) {}

  /**
   * Indexes `path` (throws for codestreams that cannot be indexed: POC, PPM/PPT, …). With
   * `indexDir`, the index is loaded from there when it describes this version of the file, else
   * built and saved there (the JPIP index store's file format and names: <sha1(real path)>-0.jpix).
   */
  static async open(path: string, indexDir?: string): Promise<SparseCodestreams> {
    const t0 = performance.now();
    const file = await openJpeg2000(path);
    try {
      const cs = file.codestream;
      let saved: { file: string; id: FileIdentity } | undefined;
      let data: PacketIndexData | undefined;
      if (indexDir) {
        const real = await realpath(path);
        const st = await stat(real);
        const id = { path: real, size: st.size, mtimeMs: st.mtimeMs };
        saved = { file: join(indexDir, `${createHash('sha1').update(real).digest('hex')}-0.jpix`), id };
        const buf = await readFile(saved.file).catch(() => undefined);
        data = buf && deserializeIndex(buf, id, 0);
      }
      const loaded = data !== undefined;
      if (!data) {
        data = await buildPacketIndex(cs);
        if (saved) {
          const { file: to, id } = saved;
          const bytes = serializeIndex(id, 0, data);
          // Best effort: a read-only or full disk only costs a rebuild next time.
          await mkdir(indexDir!, { recursive: true })
            .then(() => writeAtomically(to, bytes))
            .catch(() => undefined);
        }
      }
      const index = new PacketIndex(data, cs.siz);
      const main = stripMainHeader(await file.source.read(data.mainHeader.offset, data.mainHeader.length));
      const self = new SparseCodestreams(path, index, main, performance.now() - t0, loaded);
      for (let t = 0; t < index.tileCount; t++) await self.tileOrder(t, (o, n) => file.source.read(o, n));
      return self;
    } finally {
      await file.close().catch(() => undefined);
    }
  }

  private async tileOrder(t: number, read: (offset: number, length: number) => Promise<Buffer>): Promise<TileOrder> {
    let o = this.orders.get(t);
    if (o) return o;
    const index = this.index;
    const layout = index.layout(t);
    const slots = new Uint32Array(layout.packets);
    let i = 0;
    forEachPacket(index.siz, layout, (l, r, c, p) => {
      slots[i++] = index.slot(t, c, layout.components[c].resolutions[r].first + p, l);
    });
    const pieces = index.data.tiles[t].header;
    const parts: Buffer[] = [];
    for (let k = 0; k < pieces.length; k += 2) parts.push(await read(pieces[k], pieces[k + 1]));
    o = { slots, header: Buffer.concat(parts), sop: layout.coding.sop, eph: layout.coding.eph };
    this.orders.set(t, o);
    return o;
  }

  /**
   * The sparse codestream for reference-grid `area` decoded at reduction `reduce` with `layers`
   * quality layers (0 = all): every packet OpenJPEG needs for that area, the others empty.
   */
  async build(area: GridRect, reduce: number, layers: number, stats?: SparseStats): Promise<Buffer> {
    const index = this.index;
    const siz = index.siz;
    const s = 2 ** reduce;
    const ox = Math.ceil(siz.x0 / s);
    const oy = Math.ceil(siz.y0 / s);
    const rx0 = Math.ceil(area.x0 / s);
    const ry0 = Math.ceil(area.y0 / s);
    const region = { x: rx0 - ox, y: ry0 - oy, w: Math.ceil(area.x1 / s) - rx0, h: Math.ceil(area.y1 / s) - ry0 };
    const frame = { discard: reduce, width: 0, height: 0 };
    const content = windowContent(index, frame, region);
    // Needed packets, by slot: the first `layers` packets of every precinct the region needs.
    const need = new Uint8Array(index.data.lengths.length);
    for (const pick of content.precincts) {
      const L = index.layout(pick.tile).coding.layers;
      const first = index.slot(pick.tile, pick.component, pick.sequence, 0);
      need.fill(1, first, first + (layers === 0 ? L : Math.min(L, layers)));
    }
    const fh = await open(this.path, 'r');
    try {
      const orders: TileOrder[] = [];
      for (let t = 0; t < index.tileCount; t++) {
        orders.push(await this.tileOrder(t, async (o, n) => readAt(fh, o, n)));
      }
      // The packets to copy, then coalesced file reads.
      const wanted: number[] = [];
      const keep = (o: TileOrder, i: number): boolean => need[o.slots[i]] === 1;
      for (const o of orders) for (let i = 0; i < o.slots.length; i++) if (keep(o, i)) wanted.push(o.slots[i]);
      const offsets = index.data.offsets;
      const lengths = index.data.lengths;
      wanted.sort((a, b) => offsets[a] - offsets[b]);
      const bytesOf = new Map<number, Buffer>();
      const reads: Array<Promise<void>> = [];
      let readBytes = 0;
      for (let i = 0; i < wanted.length;) {
        const start = offsets[wanted[i]];
        let end = start + lengths[wanted[i]];
        let j = i + 1;
        while (j < wanted.length && offsets[wanted[j]] <= end + READ_GAP) {
          end = Math.max(end, offsets[wanted[j]] + lengths[wanted[j]]);
          j++;
        }
        const group = wanted.slice(i, j);
        readBytes += end - start;
        reads.push(
          readAt(fh, start, end - start).then((buf) => {
            for (const slot of group) bytesOf.set(slot, buf.subarray(offsets[slot] - start, offsets[slot] - start + lengths[slot]));
          }),
        );
        i = j;
      }
      await Promise.all(reads);
      if (stats) {
        stats.reads = reads.length;
        stats.readBytes = readBytes;
        stats.kept = wanted.length;
        stats.packets = orders.reduce((n, o) => n + o.slots.length, 0);
      }
      // Size, then fill.
      let total = this.mainHeader.length + 2;
      for (const o of orders) {
        const empty = 1 + (o.sop ? 6 : 0) + (o.eph ? 2 : 0);
        total += 12 + o.header.length + 2;
        for (let i = 0; i < o.slots.length; i++) total += keep(o, i) ? lengths[o.slots[i]] : empty;
      }
      const out = Buffer.allocUnsafe(total);
      let p = this.mainHeader.copy(out, 0);
      for (let t = 0; t < orders.length; t++) {
        const o = orders[t];
        const sot = p;
        out.writeUInt16BE(SOT, p);
        out.writeUInt16BE(10, p + 2);
        out.writeUInt16BE(t, p + 4);
        out[p + 10] = 0; // TPsot
        out[p + 11] = 1; // TNsot
        p += 12;
        p += o.header.copy(out, p);
        out.writeUInt16BE(SOD, p);
        p += 2;
        for (let i = 0; i < o.slots.length; i++) {
          if (keep(o, i)) {
            p += bytesOf.get(o.slots[i])!.copy(out, p);
            continue;
          }
          if (o.sop) {
            out.writeUInt32BE(0xff910004, p);
            out.writeUInt16BE(i & 0xffff, p + 4);
            p += 6;
          }
          out[p++] = 0;
          if (o.eph) {
            out.writeUInt16BE(0xff92, p);
            p += 2;
          }
        }
        out.writeUInt32BE(p - sot, sot + 6);
      }
      out.writeUInt16BE(EOC, p);
      p += 2;
      if (p !== total) throw new Error(`sparse codestream: wrote ${p} of ${total} bytes`);
      return out;
    } finally {
      await fh.close();
    }
  }
}

async function readAt(fh: Awaited<ReturnType<typeof open>>, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
    if (bytesRead === 0) throw new Error(`file truncated at ${offset + got}`);
    got += bytesRead;
  }
  return buf;
}
