// The packet level of a tile (ISO/IEC 15444-1 B.9–B.12): the order in which packets follow each
// other for all five progressions (LRCP, RLCP, RPCL, PCRL, CPRL; no POC), and the packet-header
// parser that finds each packet's length when the codestream has no PLT/PLM markers (tag trees,
// coding passes, Lblock, codeword segments for BYPASS/TERMALL, SOP and EPH). The packet index
// (./packet-index.ts) turns these into byte ranges per precinct and layer.

import { corrupt, unsupported } from './errors.js';
import { precinctBands, type BandBlocks, type TileLayout } from './precincts.js';
import type { Siz } from './markers.js';
import { HeaderOverrun, PacketBitReader, TagTree } from './tagtree.js';

export type PacketVisitor = (layer: number, resolution: number, component: number, precinct: number) => void;

/** Steps above any coordinate (< 2^32) behave alike; clamping keeps the arithmetic exact. */
const HUGE = 2 ** 40;
const scaled = (d: number, e: number): number => Math.min(HUGE, d * 2 ** e);

/**
 * Calls `visit` for every packet of the tile in codestream order. The position-driven orders
 * (RPCL, PCRL, CPRL) walk the tile on the reference grid in steps of the smallest precinct
 * footprint and emit precinct (c, r) where its footprint starts, as decoders do (B.12.1.3–5).
 */
export function forEachPacket(siz: Siz, layout: TileLayout, visit: PacketVisitor): void {
  const { layers, progression } = layout.coding;
  const comps = layout.components;
  const maxR = layout.maxLevels;
  if (progression === 'LRCP' || progression === 'RLCP') {
    const body = (l: number, r: number): void => {
      for (const tcl of comps) {
        if (r > tcl.coding.levels) continue;
        const res = tcl.resolutions[r];
        const n = res.across * res.down;
        for (let p = 0; p < n; p++) visit(l, r, tcl.component, p);
      }
    };
    if (progression === 'LRCP') {
      for (let l = 0; l < layers; l++) for (let r = 0; r <= maxR; r++) body(l, r);
    } else {
      for (let r = 0; r <= maxR; r++) for (let l = 0; l < layers; l++) body(l, r);
    }
    return;
  }
  const { x0: tx0, y0: ty0, x1: tx1, y1: ty1 } = layout.rect;
  let stepX = HUGE;
  let stepY = HUGE;
  for (const tcl of comps) {
    const { dx, dy } = siz.components[tcl.component];
    for (let r = 0; r <= tcl.coding.levels; r++) {
      const lev = tcl.coding.levels - r;
      const res = tcl.resolutions[r];
      stepX = Math.min(stepX, scaled(dx, res.ppx + lev));
      stepY = Math.min(stepY, scaled(dy, res.ppy + lev));
    }
  }
  /** The precinct of (c, r) that starts at reference-grid point (x, y), or -1. */
  const hit = (c: number, r: number, x: number, y: number): number => {
    const tcl = comps[c];
    if (r > tcl.coding.levels) return -1;
    const res = tcl.resolutions[r];
    if (res.across === 0 || res.down === 0) return -1;
    const { dx, dy } = siz.components[c];
    const lev = tcl.coding.levels - r;
    const rpx = res.ppx + lev;
    const rpy = res.ppy + lev;
    const { x0: trx0, y0: try0 } = res.rect;
    const rowStart = y % scaled(dy, rpy) === 0 || (y === ty0 && (try0 * 2 ** lev) % scaled(1, rpy) !== 0);
    if (!rowStart) return -1;
    const colStart = x % scaled(dx, rpx) === 0 || (x === tx0 && (trx0 * 2 ** lev) % scaled(1, rpx) !== 0);
    if (!colStart) return -1;
    const prci = Math.floor(Math.ceil(x / (dx * 2 ** lev)) / 2 ** res.ppx) - Math.floor(trx0 / 2 ** res.ppx);
    const prcj = Math.floor(Math.ceil(y / (dy * 2 ** lev)) / 2 ** res.ppy) - Math.floor(try0 / 2 ** res.ppy);
    if (prci < 0 || prcj < 0 || prci >= res.across || prcj >= res.down) return -1;
    return prci + prcj * res.across;
  };
  const emit = (c: number, r: number, x: number, y: number): void => {
    const p = hit(c, r, x, y);
    if (p >= 0) for (let l = 0; l < layers; l++) visit(l, r, c, p);
  };
  const next = (v: number, step: number): number => v + step - (v % step);
  if (progression === 'RPCL') {
    for (let r = 0; r <= maxR; r++)
      for (let y = ty0; y < ty1; y = next(y, stepY))
        for (let x = tx0; x < tx1; x = next(x, stepX)) for (let c = 0; c < comps.length; c++) emit(c, r, x, y);
  } else if (progression === 'PCRL') {
    for (let y = ty0; y < ty1; y = next(y, stepY))
      for (let x = tx0; x < tx1; x = next(x, stepX))
        for (let c = 0; c < comps.length; c++) for (let r = 0; r <= maxR; r++) emit(c, r, x, y);
  } else {
    for (let c = 0; c < comps.length; c++)
      for (let y = ty0; y < ty1; y = next(y, stepY))
        for (let x = tx0; x < tx1; x = next(x, stepX)) for (let r = 0; r <= maxR; r++) emit(c, r, x, y);
  }
}

const STYLE_BYPASS = 0x01;
const STYLE_TERMALL = 0x04;
const STYLE_HT = 0x40;

/** One subband's code-blocks with the state packet headers build up across layers. */
interface BandState {
  readonly nx: number;
  readonly ny: number;
  readonly inclusion?: TagTree;
  readonly zeroPlanes?: TagTree;
  readonly included: Uint8Array;
  readonly lblock: Uint8Array;
  /** Passes allowed in the current codeword segment (0 = no segment yet). */
  readonly segMax: Uint8Array;
  /** Passes already in the current codeword segment. */
  readonly segPasses: Uint16Array;
}

export interface PacketExtent {
  /** Bytes of SOP + packet header + EPH. */
  readonly header: number;
  /** Bytes of the packet body (sum of the code-block contributions). */
  readonly body: number;
}

/**
 * Decodes the successive packet headers of one precinct (one per layer, in order) to find each
 * packet's length. The tag trees, inclusion flags, Lblock and codeword-segment state carry over
 * from one layer to the next, so one parser must see all of the precinct's packets in order.
 */
export class PrecinctHeaderParser {
  private readonly bands: BandState[];
  /** Upper bound of one header's size, for callers that read the codestream in windows. */
  readonly maxHeaderBytes: number;

  constructor(
    blocks: readonly BandBlocks[],
    private readonly codeBlockStyle: number,
    private readonly sop: boolean,
    private readonly eph: boolean,
  ) {
    if (codeBlockStyle & STYLE_HT)
      throw unsupported('HTJ2K code-blocks in a codestream without PLT markers (packet lengths cannot be parsed)');
    let cbs = 0;
    this.bands = blocks.map(({ nx, ny }) => {
      const n = nx * ny;
      cbs += n;
      return {
        nx,
        ny,
        ...(n > 0 ? { inclusion: TagTree.create(nx, ny), zeroPlanes: TagTree.create(nx, ny) } : {}),
        included: new Uint8Array(n),
        lblock: new Uint8Array(n).fill(3),
        segMax: new Uint8Array(n),
        segPasses: new Uint16Array(n),
      };
    });
    // Per code-block at most: inclusion and zero bit-plane tag-tree bits, a 16-bit pass count,
    // Lblock increments and a few length fields (≤ 32 bits each); with stuffing, 64 bytes
    // covers it generously. Plus SOP, EPH and the empty-packet bit.
    this.maxHeaderBytes = 64 + 64 * cbs;
  }

  private newSegment(b: BandState, k: number, first: boolean): void {
    let max: number;
    if (this.codeBlockStyle & STYLE_TERMALL) max = 1;
    else if (this.codeBlockStyle & STYLE_BYPASS) max = first ? 10 : b.segMax[k] === 1 || b.segMax[k] === 10 ? 2 : 1;
    else max = 255; // one segment (109 passes at most; the value only has to be larger)
    b.segMax[k] = max;
    b.segPasses[k] = 0;
  }

  /**
   * Parses the packet of layer `layer` that starts at buf[pos] (bytes up to `end` available).
   * Throws HeaderOverrun when the header needs bytes beyond `end`.
   */
  parse(buf: Uint8Array, pos: number, end: number, layer: number): PacketExtent {
    const start = pos;
    if (this.sop && pos + 1 < end && buf[pos] === 0xff && buf[pos + 1] === 0x91) pos += 6;
    const r = new PacketBitReader(buf, pos, end);
    let body = 0;
    if (r.bit()) {
      for (const b of this.bands) {
        if (!b.inclusion || !b.zeroPlanes) continue;
        for (let y = 0; y < b.ny; y++) {
          for (let x = 0; x < b.nx; x++) {
            const k = x + y * b.nx;
            const first = b.included[k] === 0;
            const inc = first ? b.inclusion.decode(r, x, y, layer + 1) : r.bit() === 1;
            if (!inc) continue;
            if (first) {
              let i = 1;
              while (!b.zeroPlanes.decode(r, x, y, i)) i++;
              b.included[k] = 1;
            }
            // Number of coding passes (Table B.4): 0 → 1, 10 → 2, 11xx → 3–5, 1111 xxxxx → 6–36,
            // 1111 11111 xxxxxxx → 37–164.
            let passes = 1;
            if (r.bit()) {
              passes = 2;
              if (r.bit()) {
                const v = r.bits(2);
                if (v !== 3) passes = 3 + v;
                else {
                  const w = r.bits(5);
                  passes = w !== 31 ? 6 + w : 37 + r.bits(7);
                }
              }
            }
            while (r.bit()) b.lblock[k]++;
            if (b.segMax[k] === 0) this.newSegment(b, k, true);
            else if (b.segPasses[k] >= b.segMax[k]) this.newSegment(b, k, false);
            let left = passes;
            for (;;) {
              const take = Math.min(b.segMax[k] - b.segPasses[k], left);
              body += r.bits(b.lblock[k] + Math.floor(Math.log2(take)));
              b.segPasses[k] += take;
              left -= take;
              if (left === 0) break;
              this.newSegment(b, k, false);
            }
          }
        }
      }
    }
    r.align();
    pos = r.pos;
    if (this.eph) {
      if (pos + 2 > end) throw new HeaderOverrun();
      if (buf[pos] !== 0xff || buf[pos + 1] !== 0x92) throw corrupt(`missing EPH marker after a packet header (layer ${layer})`);
      pos += 2;
    }
    return { header: pos - start, body };
  }
}

/** Precinct header parsers of a tile, made on first use and kept for the following layers. */
export class TileHeaderParsers {
  private readonly parsers = new Map<number, PrecinctHeaderParser>();
  constructor(private readonly layout: TileLayout) {}

  get(c: number, r: number, p: number): PrecinctHeaderParser {
    const tcl = this.layout.components[c];
    const key = tcl.resolutions[r].first + p + c * 0x100000000;
    let parser = this.parsers.get(key);
    if (!parser) {
      const { sop, eph } = this.layout.coding;
      parser = new PrecinctHeaderParser(precinctBands(tcl, r, p), tcl.coding.codeBlockStyle, sop, eph);
      this.parsers.set(key, parser);
    }
    return parser;
  }
}
