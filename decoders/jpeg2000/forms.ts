// Codestream forms for sparse JPEG 2000 decodes (./sparse.ts): which packets of the file go, in
// which order, behind which headers. The file's own form; the reduced form (the top resolutions
// and the undecoded layers left out, headers rewritten by ./reduce.ts); the merged form (the
// lowest level of a tiled file as one tile); the cut form (an untiled image cut to the precincts
// a region needs). A form maps every packet it holds to its slot in the packet index, so that
// ./sparse.ts can read the bytes from the file; no form changes a packet's bytes.

import { tilesAcross } from '../../src/jpeg2000/index.js';
import type { Siz } from '../../src/jpeg2000/markers.js';
import type { PacketIndex } from '../../src/jpeg2000/packet-index.js';
import { forEachPacket } from '../../src/jpeg2000/packets.js';
import { precinctRect, tileLayout, type TileCoding, type TileLayout } from '../../src/jpeg2000/precincts.js';
import type { PrecinctPick } from '../../src/protocols/jpip/window.js';
import { NotReducible, reducedSiz, rewriteHeader } from './reduce.js';

/** A cut image (croppedForm) is used when it is at most this share of the whole. */
const CROP_MAX_SHARE = 0.5;

export interface TileOrder {
  /** Packet slots in codestream order. */
  readonly slots: Uint32Array;
  /** Tile header marker segments (no SOT/SOD/PLT), as bytes. */
  readonly header: Buffer;
  readonly sop: boolean;
  readonly eph: boolean;
}

/** A codestream form: main header and, per tile, its header and packet order. */
export interface Form {
  readonly main: Buffer;
  /** The form's image and tile geometry, and per tile its precinct layout. */
  readonly siz: Siz;
  readonly layouts: readonly TileLayout[];
  readonly orders: readonly TileOrder[];
}

/** What a form is made from: the packet index, the file's main header and its tile orders. */
export interface FormSource {
  readonly index: PacketIndex;
  /** Main header bytes (SOC to the first SOT) without TLM/PLM. */
  readonly mainHeader: Buffer;
  /** Tile t's header and packet order in the file. */
  order(t: number): TileOrder;
}

/** The file's own form. */
export function fileForm(src: FormSource): Form {
  const index = src.index;
  return {
    main: src.mainHeader,
    siz: index.siz,
    layouts: Array.from({ length: index.tileCount }, (_, t) => index.layout(t)),
    orders: Array.from({ length: index.tileCount }, (_, t) => src.order(t)),
  };
}

/**
 * The codestream form at reduction d with at most `layers` layers (0: all) (./reduce.ts):
 * rewritten headers, and per tile the packet order of resolutions 0…NL−d and layers below
 * `layers`, mapped to the file's slots (the lowest level of a tiled file as one merged tile when
 * it can be). Null when the codestream cannot be reduced by d.
 */
export function reducedForm(src: FormSource, d: number, layers: number): Form | null {
  const index = src.index;
  let form: Form | null = mergedForm(src, d, layers);
  const siz: Siz | null = d === 0 ? index.siz : d <= index.minLevels ? reducedSiz(index.siz, d) : null;
  if (siz && !form) {
    try {
      const how = { reduce: d, components: index.components, layers: layers || undefined };
      const orders: TileOrder[] = [];
      const layouts: TileLayout[] = [];
      for (let t = 0; t < index.tileCount; t++) {
        const full = src.order(t);
        const layout = index.layout(t);
        const small = tileLayout(siz, t, reducedCoding(layout.coding, d, layers));
        const slots = packetSlots(index, t, siz, small, (c, r, p) => layout.components[c].resolutions[r].first + p);
        orders.push({ ...full, slots, header: rewriteHeader(full.header, how) });
        layouts.push(small);
      }
      form = { main: rewriteHeader(src.mainHeader, { ...how, siz: d > 0 ? siz : undefined }), siz, layouts, orders };
    } catch (err) {
      if (!(err instanceof NotReducible)) throw err;
    }
  }
  return form;
}

/**
 * The lowest resolution of a tiled image as one tile: with every DWT level taken away (d = NL)
 * a tile's samples are its LL band's code-blocks, with no filtering across anything, so tiles
 * whose edges fall on precinct edges are, packet for packet, the precincts of one big tile.
 * OpenJPEG then sets up one tile instead of hundreds (a 400-tile image: ~2 ms less). Only for
 * plain layouts: one coding for every tile and no tile-header markers (COD, QCD, RGN… could
 * differ per tile), no SOP markers (their sequence numbers would be off), the image, tile
 * grid and components at the origin and unsubsampled. Null otherwise.
 */
export function mergedForm(src: FormSource, d: number, layers: number): Form | null {
  const index = src.index;
  const full = index.siz;
  if (index.tileCount < 2 || index.data.codings.length !== 1 || d !== index.minLevels) return null;
  const coding = index.data.codings[0];
  if (coding.sop || coding.components.some((c) => c.levels !== d)) return null;
  if (full.x0 !== 0 || full.y0 !== 0 || full.tileX0 !== 0 || full.tileY0 !== 0 || full.components.some((c) => c.dx !== 1 || c.dy !== 1))
    return null;
  for (let t = 0; t < index.tileCount; t++) if (src.order(t).header.length !== 0) return null;
  const reduced = reducedSiz(full, d);
  if (!reduced) return null;
  const tw = reduced.tileWidth;
  const th = reduced.tileHeight;
  const { ppx, ppy } = coding.components[0].precincts[0];
  if (coding.components.some((c) => c.precincts[0].ppx !== ppx || c.precincts[0].ppy !== ppy) || tw % 2 ** ppx || th % 2 ** ppy)
    return null;
  const siz: Siz = { ...reduced, tileWidth: reduced.xsiz, tileHeight: reduced.ysiz };
  const layout = tileLayout(siz, 0, reducedCoding(coding, d, layers));
  const across = tilesAcross(full);
  const slots = new Uint32Array(layout.packets);
  let i = 0;
  forEachPacket(siz, layout, (l, _r, c, p) => {
    const res = layout.components[c].resolutions[0];
    const col = p % res.across;
    const row = Math.floor(p / res.across);
    const t = Math.floor((row * 2 ** ppy) / th) * across + Math.floor((col * 2 ** ppx) / tw);
    const own = index.layout(t).components[c].resolutions[0];
    const local = col - Math.floor(own.rect.x0 / 2 ** ppx) + (row - Math.floor(own.rect.y0 / 2 ** ppy)) * own.across;
    slots[i++] = index.slot(t, c, own.first + local, l);
  });
  try {
    const main = rewriteHeader(src.mainHeader, { reduce: d, components: index.components, siz, layers: layers || undefined });
    const order: TileOrder = { slots, header: Buffer.alloc(0), sop: false, eph: coding.eph };
    return { main, siz, layouts: [layout], orders: [order] };
  } catch (err) {
    if (err instanceof NotReducible) return null;
    throw err;
  }
}

/**
 * An untiled form cut down to the rectangle around the precincts a region needs, or null when
 * that saves little. OpenJPEG sets up every code-block of a tile, needed or not (~150 ms for a
 * 20000² image); a codestream of a smaller image costs what that image costs. The cut falls on
 * precinct boundaries of every resolution (the largest precinct footprint on the grid), so each
 * precinct inside keeps its code-blocks and its packets their bytes; the samples of the region
 * do not change because the precincts it needs (filter margins included) are all inside.
 * `d` is the form's reduction (its grid is the original's divided by 2^d).
 */
export function croppedForm(src: FormSource, form: Form, picks: readonly PrecinctPick[], d: number): Form | null {
  const index = src.index;
  if (index.tileCount !== 1 || picks.length === 0) return null;
  const fsiz = form.siz;
  const orig = index.layout(0);
  const small = form.layouts[0];
  let ax = 1;
  let ay = 1;
  for (const tcl of small.components) {
    const { dx, dy } = fsiz.components[tcl.component];
    for (let r = 0; r <= tcl.coding.levels; r++) {
      const res = tcl.resolutions[r];
      ax = Math.max(ax, dx * 2 ** (res.ppx + tcl.coding.levels - r));
      ay = Math.max(ay, dy * 2 ** (res.ppy + tcl.coding.levels - r));
    }
  }
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const pick of picks) {
    const tcl = orig.components[pick.component];
    const res = tcl.resolutions[pick.resolution];
    const rect = precinctRect(res, pick.sequence - res.first);
    const { dx, dy } = fsiz.components[pick.component];
    const f = 2 ** (tcl.coding.levels - d - pick.resolution);
    x0 = Math.min(x0, rect.x0 * f * dx);
    y0 = Math.min(y0, rect.y0 * f * dy);
    x1 = Math.max(x1, rect.x1 * f * dx);
    y1 = Math.max(y1, rect.y1 * f * dy);
  }
  const cx0 = Math.max(fsiz.x0, Math.floor(x0 / ax) * ax);
  const cy0 = Math.max(fsiz.y0, Math.floor(y0 / ay) * ay);
  const cx1 = Math.min(fsiz.xsiz, Math.ceil(x1 / ax) * ax);
  const cy1 = Math.min(fsiz.ysiz, Math.ceil(y1 / ay) * ay);
  if (cx1 <= cx0 || cy1 <= cy0 || (cx1 - cx0) * (cy1 - cy0) > CROP_MAX_SHARE * (fsiz.xsiz - fsiz.x0) * (fsiz.ysiz - fsiz.y0)) return null;
  const siz: Siz = {
    ...fsiz,
    x0: cx0,
    y0: cy0,
    xsiz: cx1,
    ysiz: cy1,
    tileX0: cx0,
    tileY0: cy0,
    tileWidth: cx1 - cx0,
    tileHeight: cy1 - cy0,
  };
  const layout = tileLayout(siz, 0, small.coding);
  const slots = packetSlots(index, 0, siz, layout, (c, r, p) => {
    const cut = layout.components[c].resolutions[r];
    const full = orig.components[c].resolutions[r];
    const px = (p % cut.across) + Math.floor(cut.rect.x0 / 2 ** cut.ppx) - Math.floor(full.rect.x0 / 2 ** full.ppx);
    const py = Math.floor(p / cut.across) + Math.floor(cut.rect.y0 / 2 ** cut.ppy) - Math.floor(full.rect.y0 / 2 ** full.ppy);
    return full.first + px + py * full.across;
  });
  const main = rewriteHeader(form.main, { reduce: 0, components: index.components, siz });
  return { main, siz, layouts: [layout], orders: [{ ...form.orders[0], slots }] };
}

/** A tile coding without its top `d` resolutions and with at most `layers` layers (0: all). */
function reducedCoding(coding: TileCoding, d: number, layers: number): TileCoding {
  return {
    ...coding,
    layers: layers > 0 ? Math.min(layers, coding.layers) : coding.layers,
    components: coding.components.map((c) => ({ ...c, levels: c.levels - d, precincts: c.precincts.slice(0, c.levels - d + 1) })),
  };
}

/**
 * The index slots of tile t's packets in the codestream order of `layout` (a layout of the same
 * tile on grid `siz`: the file's own, or one with fewer resolutions, fewer layers or a cut
 * image); `sequence` maps a precinct of `layout` to its sequence number in the file's layout.
 */
export function packetSlots(
  index: PacketIndex,
  t: number,
  siz: Siz,
  layout: TileLayout,
  sequence: (c: number, r: number, p: number) => number,
): Uint32Array {
  const slots = new Uint32Array(layout.packets);
  let i = 0;
  forEachPacket(siz, layout, (l, r, c, p) => {
    slots[i++] = index.slot(t, c, sequence(c, r, p), l);
  });
  return slots;
}
