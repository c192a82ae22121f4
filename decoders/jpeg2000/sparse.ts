// Sparse codestreams for region decodes of JPEG 2000 files. OpenJPEG reads and parses a whole
// tile-part, and sets up every code-block of every resolution of a tile, before it decodes any
// part of it: a 256×256 region of an untiled 20000×20000 image costs the whole 120 MB tile. The
// packet index (src/jpeg2000/packet-index.ts, built once per version of a file) tells where each
// packet lies; for a region we read only the packets of the precincts it needs (with the
// synthesis filter margins, src/protocols/jpip/window.ts) and hand OpenJPEG a codestream in
// memory: the main header without TLM/PLM, then per tile one tile-part (SOT with the new Psot,
// the tile header without PLT, SOD) whose packets follow the codestream's progression order,
// every packet not needed replaced by an empty one (0x00, with SOP/EPH markers when the coding
// style has them), as JPIP clients do (ISO/IEC 15444-9 Annex A; shared/tools/jpip/jpp2j2k.py).
// Which packets go in which order behind which headers is the form's business (./forms.ts): at a
// reduction or with fewer layers, the codestream of the reduced image; the lowest level of a
// tiled file as one tile; an untiled image cut to the precincts the region needs. These make
// OpenJPEG's set-up cost follow the region rather than the image.

import { readSync } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import { FileSource, readExactly, reducedSize, type GridRect } from '../../src/jpeg2000/index.js';
import { IndexStore } from '../../src/jpeg2000/index-store.js';
import type { PacketIndex } from '../../src/jpeg2000/packet-index.js';
import { windowContent } from '../../src/protocols/jpip/window.js';
import { croppedForm, fileForm, packetSlots, reducedForm, type Form, type FormSource, type TileOrder } from './forms.js';

const SOT = 0xff90;
const SOD = 0xff93;
const EOC = 0xffd9;
const TLM = 0xff55;
const PLM = 0xff57;
/** Ranges of needed packets closer than this in the file are read in one go. */
const READ_GAP = 8 * 1024;
/**
 * Reads are made synchronously when they are many and small (more than SYNC_READS, fewer than
 * SYNC_READ_BYTES in all), or few bytes in all (fewer than SYNC_SMALL): a pread from the page
 * cache costs microseconds, a round trip through the thread pool much more.
 */
const SYNC_READS = 32;
const SYNC_READ_BYTES = 4 * 1024 * 1024;
const SYNC_SMALL = 512 * 1024;

/** A sparse codestream and how to decode it for the area and reduction it was built for. */
export interface SparseCodestream {
  readonly data: Buffer;
  /** The decode area on this codestream's reference grid. */
  readonly area: GridRect;
  /** The reduction to ask for (0 when the codestream already is the reduced image). */
  readonly reduce: number;
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
  /** Forms without the top d resolutions and the last layers, by `d:layers` (null: cannot be made). */
  private readonly reduced = new Map<string, Form | null>();
  /** The file's own form (every tile's order is read at open). */
  private whole?: Form;

  private constructor(
    readonly path: string,
    readonly index: PacketIndex,
    private readonly mainHeader: Buffer,
    /** Time spent building (or loading) the index, ms. */
    readonly buildMs: number,
    /** Whether the index was loaded from the store's folder rather than built from the codestream. */
    readonly loaded: boolean,
  ) {}

  /**
   * The sparse-codestream maker for `path` (throws for codestreams that cannot be indexed: POC,
   * PPM/PPT, …). The packet index comes from `indexes` (./src/jpeg2000/index-store.ts: built
   * once per file version, kept in memory and persisted in its folder, shared with JPIP), or,
   * given a folder or nothing, from a store of its own over that folder (memory only without).
   */
  static async open(path: string, indexes?: IndexStore | string): Promise<SparseCodestreams> {
    const t0 = performance.now();
    // Without the server's store, a store of our own (sparseCodestreamsFor remembers the result).
    const store = typeof indexes === 'object' ? indexes : new IndexStore({ dir: indexes ?? '' });
    const real = await realpath(path);
    const st = await stat(real);
    const target = await store.target({ path: real, size: st.size, mtimeMs: st.mtimeMs });
    const entry = await store.codestream(target, 0);
    const index = entry.index;
    const src = await FileSource.open(real);
    try {
      const main = stripMainHeader(await readExactly(src, index.data.mainHeader.offset, index.data.mainHeader.length, 'main header'));
      const self = new SparseCodestreams(path, index, main, performance.now() - t0, entry.loaded);
      for (let t = 0; t < index.tileCount; t++) await self.tileOrder(t, (o, n) => readExactly(src, o, n, `tile ${t} header`));
      return self;
    } finally {
      await src.close();
    }
  }

  /** Reads tile t's header and works out its packet order (once, at open). */
  private async tileOrder(t: number, read: (offset: number, length: number) => Promise<Buffer>): Promise<void> {
    const index = this.index;
    const layout = index.layout(t);
    const slots = packetSlots(index, t, index.siz, layout, (c, r, p) => layout.components[c].resolutions[r].first + p);
    const pieces = index.data.tiles[t].header;
    const parts: Buffer[] = [];
    for (let k = 0; k < pieces.length; k += 2) parts.push(await read(pieces[k], pieces[k + 1]));
    this.orders.set(t, { slots, header: Buffer.concat(parts), sop: layout.coding.sop, eph: layout.coding.eph });
  }

  /** The codestream form at reduction d with at most `layers` layers (./forms.ts), memoised. */
  private form(d: number, layers: number): Form | null {
    const key = `${d}:${layers}`;
    if (!this.reduced.has(key)) this.reduced.set(key, reducedForm(this.source(), d, layers));
    return this.reduced.get(key)!;
  }

  private source(): FormSource {
    return { index: this.index, mainHeader: this.mainHeader, order: (t) => this.orders.get(t)! };
  }

  /**
   * The sparse codestream for reference-grid `area` decoded at reduction `reduce` with `layers`
   * quality layers (0 = all): every packet OpenJPEG needs for that area, the others empty.
   */
  async build(area: GridRect, reduce: number, layers: number, stats?: SparseStats): Promise<SparseCodestream> {
    const index = this.index;
    const siz = index.siz;
    const s = 2 ** reduce;
    const ox = Math.ceil(siz.x0 / s);
    const oy = Math.ceil(siz.y0 / s);
    const rx0 = Math.ceil(area.x0 / s);
    const ry0 = Math.ceil(area.y0 / s);
    const region = { x: rx0 - ox, y: ry0 - oy, w: Math.ceil(area.x1 / s) - rx0, h: Math.ceil(area.y1 / s) - ry0 };
    const fh = await open(this.path, 'r');
    try {
      // The codestream of the reduced image with only the layers decoded (OpenJPEG then sets up
      // only the resolutions it decodes and parses no packets it would drop); else the full one.
      const all = index.data.codings.every((c) => layers === 0 || layers >= c.layers);
      const small = reduce > 0 || !all ? this.form(reduce, all ? 0 : layers) : null;
      const base: Form = small ?? (this.whole ??= fileForm(this.source()));
      // Needed packets, by slot: the first `layers` packets of every precinct the region needs;
      // for the whole image, every packet of the form (when it holds only what is decoded).
      const need = new Uint8Array(index.data.lengths.length);
      const size = reducedSize(siz, reduce);
      let form = base;
      const exact = small !== null || (reduce === 0 && all);
      if (exact && region.x === 0 && region.y === 0 && region.w >= size.width && region.h >= size.height) {
        for (const o of base.orders) for (let i = 0; i < o.slots.length; i++) need[o.slots[i]] = 1;
      } else {
        const content = windowContent(index, { discard: reduce, width: 0, height: 0 }, region);
        for (const pick of content.precincts) {
          const L = index.layout(pick.tile).coding.layers;
          const first = index.slot(pick.tile, pick.component, pick.sequence, 0);
          need.fill(1, first, first + (layers === 0 ? L : Math.min(L, layers)));
        }
        form = croppedForm(this.source(), base, content.precincts, small ? reduce : 0) ?? base;
      }
      const orders = form.orders;
      // The packets to copy, then coalesced file reads; per needed slot, which read holds it
      // (`where`), so that packets are copied straight from the read buffers.
      const offsets = index.data.offsets;
      const lengths = index.data.lengths;
      let count = 0;
      for (const o of orders) for (let i = 0; i < o.slots.length; i++) if (need[o.slots[i]] !== 0) count++;
      // The needed slots in file order: the form's order when it is the file's, else the file's
      // own tile orders (a merged or reordered form), sorted only as a last resort.
      const collect = (from: readonly TileOrder[]): { wanted: Uint32Array; sorted: boolean } => {
        const wanted = new Uint32Array(count);
        let n = 0;
        let sorted = true;
        for (const o of from) {
          for (let i = 0; i < o.slots.length; i++) {
            const slot = o.slots[i];
            if (need[slot] === 0) continue;
            if (n > 0 && offsets[slot] < offsets[wanted[n - 1]]) sorted = false;
            wanted[n++] = slot;
          }
        }
        return { wanted, sorted };
      };
      let { wanted, sorted } = collect(orders);
      if (!sorted) ({ wanted, sorted } = collect(Array.from({ length: index.tileCount }, (_, t) => this.orders.get(t)!)));
      if (!sorted) wanted.sort((a, b) => offsets[a] - offsets[b]);
      const where = new Int32Array(need.length);
      const starts: number[] = [];
      const ends: number[] = [];
      let readBytes = 0;
      for (let i = 0; i < wanted.length;) {
        const start = offsets[wanted[i]];
        let end = start + lengths[wanted[i]];
        let j = i + 1;
        while (j < wanted.length && offsets[wanted[j]] <= end + READ_GAP) {
          end = Math.max(end, offsets[wanted[j]] + lengths[wanted[j]]);
          j++;
        }
        const r = starts.length;
        starts.push(start);
        for (let k = i; k < j; k++) where[wanted[k]] = r;
        ends.push(end);
        readBytes += end - start;
        i = j;
      }
      const buffers: Buffer[] = [];
      if ((starts.length > SYNC_READS && readBytes < SYNC_READ_BYTES) || readBytes < SYNC_SMALL) {
        // Many small reads (a low resolution of a tiled file: a few packets per tile-part), or
        // little to read: one pread each, here.
        for (let r = 0; r < starts.length; r++) buffers[r] = readAtSync(fh.fd, starts[r], ends[r] - starts[r]);
      } else {
        await Promise.all(starts.map(async (start, r) => (buffers[r] = await readAt(fh, start, ends[r] - start))));
      }
      if (stats) {
        stats.reads = starts.length;
        stats.readBytes = readBytes;
        stats.kept = wanted.length;
        stats.packets = orders.reduce((n, o) => n + o.slots.length, 0);
      }
      // Size, then fill.
      let total = form.main.length + 2;
      for (const o of orders) {
        const empty = 1 + (o.sop ? 6 : 0) + (o.eph ? 2 : 0);
        total += 12 + o.header.length + 2;
        for (let i = 0; i < o.slots.length; i++) total += need[o.slots[i]] !== 0 ? lengths[o.slots[i]] : empty;
      }
      const out = Buffer.allocUnsafe(total);
      let p = form.main.copy(out, 0);
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
          const slot = o.slots[i];
          if (need[slot] !== 0) {
            // One copy for the run of kept packets that follow each other in the file too.
            const r = where[slot];
            let end = offsets[slot] + lengths[slot];
            while (i + 1 < o.slots.length) {
              const next = o.slots[i + 1];
              if (need[next] === 0 || where[next] !== r || offsets[next] !== end) break;
              end += lengths[next];
              i++;
            }
            const from = offsets[slot] - starts[r];
            p += buffers[r].copy(out, p, from, from + end - offsets[slot]);
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
      if (!small) return { data: out, area, reduce };
      const up = (v: number): number => Math.ceil(v / s);
      return { data: out, area: { x0: up(area.x0), y0: up(area.y0), x1: up(area.x1), y1: up(area.y1) }, reduce: 0 };
    } finally {
      await fh.close();
    }
  }
}

function readAtSync(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, offset + got);
    if (n === 0) throw new Error(`file truncated at ${offset + got}`);
    got += n;
  }
  return buf;
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

/** Indexes of recently used files, by size, modification time and path (versionKey). */
const memo = new Map<string, { readonly promise: Promise<SparseCodestreams>; value?: SparseCodestreams }>();
const MEMO_SIZE = 8;

/** Forgets every remembered index (tests, benchmarks, SIGHUP). */
export function clearSparseIndexes(): void {
  memo.clear();
}

/** The memo key of a version of a file: a changed file gets a new index. */
export async function versionKey(path: string): Promise<string> {
  const st = await stat(path);
  return `${st.size}:${st.mtimeMs}:${path}`;
}

/**
 * The packet index of the version `key` (versionKey) of `path`: shared by every decoder of that
 * version (the registry reopens images), built on first use.
 */
export function sparseCodestreamsFor(path: string, key: string, indexes?: IndexStore | string): Promise<SparseCodestreams> {
  let entry = memo.get(key);
  if (entry) {
    memo.delete(key);
  } else {
    const promise = SparseCodestreams.open(path, indexes);
    const made: { promise: Promise<SparseCodestreams>; value?: SparseCodestreams } = { promise };
    // A failure is not remembered: the next decoder tries again.
    promise.then(
      (v) => (made.value = v),
      () => memo.delete(key),
    );
    entry = made;
  }
  memo.set(key, entry);
  for (const k of memo.keys()) {
    if (memo.size <= MEMO_SIZE) break;
    memo.delete(k);
  }
  return entry.promise;
}

/** The index of `key` if it is built already. */
export function builtSparseCodestreams(key: string): SparseCodestreams | undefined {
  return memo.get(key)?.value;
}
