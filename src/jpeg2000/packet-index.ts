// The packet index of one codestream: for every tile, where its tile-header marker segments and
// tile-parts lie, and for every precinct and quality layer, the file offset and length of its
// packet. Lengths come from PLT markers, else PLM, else from parsing the packet headers
// (./packets.ts). This is what JPIP serves data-bins from: a precinct data-bin is the
// concatenation of its packets over the layers, a tile-header bin the tile-parts' marker
// segments without SOT/SOD/PLT, a tile bin (JPT) the tile-parts themselves.
// The index is plain data (typed arrays plus JSON-able fields) so that ./index-store.ts can
// persist it; geometry is recomputed from the main header and the stored tile codings.

import type { Codestream, TilePart } from './codestream.js';
import { corrupt, unsupported } from './errors.js';
import { MARKERS, type Siz } from './markers.js';
import { forEachPacket, TileHeaderParsers } from './packets.js';
import { tileCoding, tileLayout, type TileCoding, type TileLayout } from './precincts.js';
import type { ByteSource } from './source.js';

/** Bumped whenever the layout of PacketIndexData (or how it is derived) changes. */
export const PACKET_INDEX_VERSION = 1;

export type LengthSource = 'PLT' | 'PLM' | 'packet headers';

export interface TileEntry {
  /** Index into `codings`. */
  readonly coding: number;
  /** Tile-header data-bin pieces in the file: [offset, length, offset, length, ...]. */
  readonly header: readonly number[];
  /** The tile-parts (SOT to the end of their data), in part order: [offset, length, ...]. */
  readonly parts: readonly number[];
  /** First packet slot of this tile in `offsets`/`lengths`. */
  readonly slotBase: number;
}

export interface PacketIndexData {
  readonly version: number;
  /** Where the codestream lies in the file. */
  readonly offset: number;
  readonly length: number;
  /** The main-header data-bin: SOC up to the first SOT. */
  readonly mainHeader: { readonly offset: number; readonly length: number };
  /** How the packet lengths were found (per codestream; the weakest source used by any tile). */
  readonly source: LengthSource;
  /** Distinct tile codings (most files have one). */
  readonly codings: readonly TileCoding[];
  readonly tiles: readonly TileEntry[];
  /**
   * Per packet slot: file offset and length. Slots of a tile are ordered component, then
   * precinct sequence number, then layer: slot = slotBase + compBase[c] + s·layers + l.
   */
  readonly offsets: Float64Array;
  readonly lengths: Uint32Array;
}

interface TileView {
  readonly layout: TileLayout;
  /** Slot offset of each component's first precinct, relative to the tile's slotBase. */
  readonly compBase: readonly number[];
}

/** Read access to a PacketIndexData with the geometry each tile needs. */
export class PacketIndex {
  private readonly views = new Map<number, TileView>();
  /** Fewest decomposition levels over every tile-component: the coarsest common reduction. */
  readonly minLevels: number;

  constructor(
    readonly data: PacketIndexData,
    readonly siz: Siz,
  ) {
    let m = Infinity;
    for (const c of data.codings) for (const s of c.components) m = Math.min(m, s.levels);
    this.minLevels = m;
  }

  get tileCount(): number {
    return this.data.tiles.length;
  }

  get components(): number {
    return this.siz.components.length;
  }

  /** Most quality layers of any tile. */
  get maxLayers(): number {
    return Math.max(...this.data.codings.map((c) => c.layers));
  }

  private view(t: number): TileView {
    let v = this.views.get(t);
    if (!v) {
      const layout = tileLayout(this.siz, t, this.data.codings[this.data.tiles[t].coding]);
      const compBase: number[] = [];
      let base = 0;
      for (const tcl of layout.components) {
        compBase.push(base);
        base += tcl.precincts * layout.coding.layers;
      }
      v = { layout, compBase };
      // Layouts are small, but a file can have many thousands of tiles.
      if (this.views.size >= 4096) this.views.clear();
      this.views.set(t, v);
    }
    return v;
  }

  layout(t: number): TileLayout {
    return this.view(t).layout;
  }

  /** Packet slot of (tile, component, precinct sequence number, layer). */
  slot(t: number, c: number, s: number, l: number): number {
    const v = this.view(t);
    return this.data.tiles[t].slotBase + v.compBase[c] + s * v.layout.coding.layers + l;
  }

  /** Bytes of a precinct data-bin's first `layers` packets (all layers by default). */
  binBytes(t: number, c: number, s: number, layers = Infinity): number {
    const L = this.view(t).layout.coding.layers;
    const first = this.slot(t, c, s, 0);
    let n = 0;
    for (let l = 0; l < Math.min(L, layers); l++) n += this.data.lengths[first + l];
    return n;
  }

  /**
   * Calls `fn` with the file ranges holding bytes [from, to) of a precinct data-bin, in bin
   * order (the packets of one precinct are contiguous in RPCL/PCRL/CPRL, scattered in LRCP/RLCP).
   */
  forEachBinRange(t: number, c: number, s: number, from: number, to: number, fn: (offset: number, length: number) => void): void {
    const L = this.view(t).layout.coding.layers;
    const first = this.slot(t, c, s, 0);
    let pos = 0;
    let runStart = -1;
    let runLength = 0;
    for (let l = 0; l < L && pos < to; l++) {
      const off = this.data.offsets[first + l];
      const len = this.data.lengths[first + l];
      const a = Math.max(from, pos);
      const b = Math.min(to, pos + len);
      if (b > a) {
        const fileStart = off + (a - pos);
        if (runStart >= 0 && runStart + runLength === fileStart) runLength += b - a;
        else {
          if (runStart >= 0) fn(runStart, runLength);
          runStart = fileStart;
          runLength = b - a;
        }
      }
      pos += len;
    }
    if (runStart >= 0) fn(runStart, runLength);
  }

  /** The file ranges holding bytes [from, to) of a precinct data-bin, as [offset, length] pairs. */
  binRanges(t: number, c: number, s: number, from: number, to: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    this.forEachBinRange(t, c, s, from, to, (o, n) => out.push([o, n]));
    return out;
  }

  /** Length of the tile-header data-bin of tile t. */
  tileHeaderBytes(t: number): number {
    return sumLengths(this.data.tiles[t].header);
  }

  /** Length of the tile data-bin (JPT) of tile t: all its tile-parts. */
  tileBytes(t: number): number {
    return sumLengths(this.data.tiles[t].parts);
  }
}

function sumLengths(pairs: readonly number[]): number {
  let n = 0;
  for (let i = 1; i < pairs.length; i += 2) n += pairs[i];
  return n;
}

/** Appends [offset, length] to flat pairs, merging with the previous piece when contiguous. */
function pushRange(out: number[], offset: number, length: number): void {
  const n = out.length;
  if (n >= 2 && out[n - 2] + out[n - 1] === offset) out[n - 1] += length;
  else out.push(offset, length);
}

/** Tile-header markers JPIP leaves out: they describe the original file's packet layout. */
const DROPPED_FROM_TILE_HEADER = new Set<number>([MARKERS.SOT, MARKERS.SOD, MARKERS.PLT]);

/** Positioned reads through a 1 MiB window, for walking packet headers sequentially. */
class ReadWindow {
  base = 0;
  buf: Buffer = Buffer.alloc(0);
  constructor(private readonly src: ByteSource) {}
  async cover(pos: number, length: number): Promise<void> {
    if (pos >= this.base && pos + length <= this.base + this.buf.length) return;
    this.buf = await this.src.read(pos, Math.max(length, 1 << 20));
    this.base = pos;
  }
}

/** Walks packet positions through a tile's tile-parts, given each packet's length. */
class PartCursor {
  private i = 0;
  pos: number;
  end: number;
  constructor(private readonly parts: readonly TilePart[]) {
    this.pos = parts[0].dataOffset;
    this.end = parts[0].dataOffset + parts[0].dataLength;
  }
  /** Moves to the next tile-part while the current one is used up. */
  settle(): void {
    while (this.pos >= this.end && this.i + 1 < this.parts.length) {
      this.i++;
      this.pos = this.parts[this.i].dataOffset;
      this.end = this.pos + this.parts[this.i].dataLength;
    }
  }
}

interface TilePlan {
  readonly parts: readonly TilePart[];
  readonly layout: TileLayout;
  readonly compBase: readonly number[];
  readonly slotBase: number;
}

/** Assigns offsets from a list of packet lengths in codestream order; false when they do not fit. */
function placeLengths(siz: Siz, plan: TilePlan, lengths: readonly number[], offsets: Float64Array, out: Uint32Array): boolean {
  if (lengths.length < plan.layout.packets) return false;
  const cur = new PartCursor(plan.parts);
  const L = plan.layout.coding.layers;
  let i = 0;
  let ok = true;
  forEachPacket(siz, plan.layout, (l, r, c, p) => {
    if (!ok) return;
    cur.settle();
    const len = lengths[i++];
    if (cur.pos + len > cur.end) {
      ok = false;
      return;
    }
    const slot = plan.slotBase + plan.compBase[c] + (plan.layout.components[c].resolutions[r].first + p) * L + l;
    offsets[slot] = cur.pos;
    out[slot] = len;
    cur.pos += len;
  });
  return ok;
}

/** Finds packet lengths by parsing every packet header of the tile. */
async function parseLengths(src: ByteSource, siz: Siz, t: number, plan: TilePlan, offsets: Float64Array, out: Uint32Array): Promise<void> {
  const packets: Array<[number, number, number, number]> = [];
  forEachPacket(siz, plan.layout, (l, r, c, p) => packets.push([l, r, c, p]));
  const parsers = new TileHeaderParsers(plan.layout);
  const win = new ReadWindow(src);
  const cur = new PartCursor(plan.parts);
  const L = plan.layout.coding.layers;
  for (let i = 0; i < packets.length; i++) {
    const [l, r, c, p] = packets[i];
    cur.settle();
    if (cur.pos >= cur.end) throw corrupt(`tile ${t} ends after ${i} of its ${packets.length} packets`);
    const parser = parsers.get(c, r, p);
    const want = Math.min(cur.end - cur.pos, parser.maxHeaderBytes);
    await win.cover(cur.pos, want);
    const limit = Math.min(cur.end, win.base + win.buf.length) - win.base;
    let ext;
    try {
      ext = parser.parse(win.buf, cur.pos - win.base, limit, l);
    } catch (err) {
      if ((err as Error).name === 'HeaderOverrun') throw corrupt(`packet header ${i} of tile ${t} runs past its tile-part`);
      throw err;
    }
    const len = ext.header + ext.body;
    if (cur.pos + len > cur.end) throw corrupt(`packet ${i} of tile ${t} runs past its tile-part`);
    const slot = plan.slotBase + plan.compBase[c] + (plan.layout.components[c].resolutions[r].first + p) * L + l;
    offsets[slot] = cur.pos;
    out[slot] = len;
    cur.pos += len;
    // Keep the event loop responsive while a large codestream is indexed.
    if (i % 4096 === 4095) await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Packet lengths per tile-part from PLM, in codestream order of the tile-parts. */
function plmLengths(cs: Codestream): number[][] | undefined {
  if (cs.header.plm.length === 0) return undefined;
  const out: number[][] = [];
  for (const seg of cs.header.plm) out.push(...seg.tileParts.map((x) => [...x]));
  return out;
}

export interface BuildOptions {
  /** `parse` ignores PLT/PLM and parses every packet header (tests compare both). */
  readonly lengths?: 'auto' | 'parse';
}

/**
 * Indexes a codestream. Throws UNSUPPORTED_IMAGE for codestreams JPIP cannot serve from their
 * packets as they are (POC, PPM/PPT, HTJ2K without PLT) and CORRUPT_IMAGE for damaged ones.
 */
export async function buildPacketIndex(cs: Codestream, options: BuildOptions = {}): Promise<PacketIndexData> {
  const markers = options.lengths !== 'parse';
  const siz = cs.siz;
  const main = cs.header;
  if (main.poc.length > 0) throw unsupported('progression order changes (POC) cannot be served over JPIP');
  if (main.ppm.length > 0) throw unsupported('packed packet headers (PPM) cannot be served over JPIP');
  const all = await cs.tileParts();
  const byTile: TilePart[][] = Array.from({ length: cs.tileCount }, () => []);
  for (const tp of all) {
    if (tp.truncated) throw corrupt(`tile-part ${tp.part} of tile ${tp.tile} is truncated`);
    byTile[tp.tile].push(tp);
  }
  const plm = plmLengths(cs);
  const partIndex = new Map<TilePart, number>(all.map((tp, i) => [tp, i]));
  const codings: TileCoding[] = [];
  const codingKeys = new Map<string, number>();
  const tiles: TileEntry[] = [];
  const plans: TilePlan[] = [];
  let slots = 0;
  for (let t = 0; t < byTile.length; t++) {
    // Codestream order, not TPsot order: the parts of a tile follow each other in the file, and
    // TPsot is one byte (encoders that write more than 255 parts let it wrap around).
    const parts = byTile[t];
    if (parts.length === 0) throw corrupt(`tile ${t} has no tile-part`);
    for (const tp of parts) {
      if (tp.header.poc.length > 0) throw unsupported('progression order changes (POC) cannot be served over JPIP');
      if (tp.header.ppt.length > 0) throw unsupported('packed packet headers (PPT) cannot be served over JPIP');
    }
    const coding = tileCoding(
      main,
      parts.map((p) => p.header),
      siz.components.length,
    );
    const key = JSON.stringify(coding);
    let ci = codingKeys.get(key);
    if (ci === undefined) {
      ci = codings.length;
      codings.push(coding);
      codingKeys.set(key, ci);
    }
    const layout = tileLayout(siz, t, coding);
    const compBase: number[] = [];
    let base = 0;
    for (const tcl of layout.components) {
      compBase.push(base);
      base += tcl.precincts * coding.layers;
    }
    const header: number[] = [];
    const ranges: number[] = [];
    for (const tp of parts) {
      for (const seg of tp.segments) if (!DROPPED_FROM_TILE_HEADER.has(seg.marker)) pushRange(header, seg.offset, seg.length);
      ranges.push(tp.offset, tp.length);
    }
    tiles.push({ coding: ci, header, parts: ranges, slotBase: slots });
    plans.push({ parts, layout, compBase, slotBase: slots });
    slots += layout.packets;
  }
  const offsets = new Float64Array(slots);
  const lengths = new Uint32Array(slots);
  let source: LengthSource = 'PLT';
  const rank: Record<LengthSource, number> = { PLT: 0, PLM: 1, 'packet headers': 2 };
  for (let t = 0; t < plans.length; t++) {
    const plan = plans[t];
    let used: LengthSource | undefined;
    if (markers && plan.parts.every((tp) => tp.header.plt.length > 0)) {
      const list = plan.parts.flatMap((tp) => tp.header.plt.flatMap((seg) => seg.lengths));
      if (placeLengths(siz, plan, list, offsets, lengths)) used = 'PLT';
    }
    if (!used && markers && plm && plm.length === all.length) {
      const list = plan.parts.flatMap((tp) => plm[partIndex.get(tp)!]);
      if (placeLengths(siz, plan, list, offsets, lengths)) used = 'PLM';
    }
    if (!used) {
      await parseLengths(cs.source, siz, t, plan, offsets, lengths);
      used = 'packet headers';
    }
    if (rank[used] > rank[source]) source = used;
  }
  return {
    version: PACKET_INDEX_VERSION,
    offset: cs.offset,
    length: cs.length,
    mainHeader: { offset: main.offset, length: main.length },
    source,
    codings,
    tiles,
    offsets,
    lengths,
  };
}
