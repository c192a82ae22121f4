// JPEG 2000 reference-grid geometry (ISO/IEC 15444-1 Annex B): resolution-level sizes, the
// tile grid, tile-component and resolution rectangles, precinct counts and JPIP precinct
// data-bin identifiers. Pure arithmetic on SIZ/COD values; every rectangle is half-open.

import type { Siz } from './markers.js';

/** A half-open rectangle [x0, x1) × [y0, y1) in some grid's coordinates. */
export interface GridRect {
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
}

/** ceil(a / 2^k) for non-negative integers below 2^53. */
export function ceilPow2(a: number, k: number): number {
  return Math.ceil(a / 2 ** k);
}

export function ceilDiv(a: number, b: number): number {
  return Math.ceil(a / b);
}

/** The image area on the reference grid. */
export function imageArea(siz: Siz): GridRect {
  return { x0: siz.x0, y0: siz.y0, x1: siz.xsiz, y1: siz.ysiz };
}

/**
 * Size of the image reduced by `k` resolution levels (discard level k, OpenJPEG's `reduce`):
 * ceil(Xsiz/2^k) − ceil(XOsiz/2^k), likewise for y. k = 0 is full resolution.
 */
export function reducedSize(siz: Siz, k: number): { width: number; height: number } {
  return {
    width: ceilPow2(siz.xsiz, k) - ceilPow2(siz.x0, k),
    height: ceilPow2(siz.ysiz, k) - ceilPow2(siz.y0, k),
  };
}

export function tilesAcross(siz: Siz): number {
  return Math.ceil((siz.xsiz - siz.tileX0) / siz.tileWidth);
}

export function tilesDown(siz: Siz): number {
  return Math.ceil((siz.ysiz - siz.tileY0) / siz.tileHeight);
}

/** Tile t's rectangle on the reference grid, clipped to the image area (B.3). */
export function tileRect(siz: Siz, t: number): GridRect {
  const across = tilesAcross(siz);
  const p = t % across;
  const q = Math.floor(t / across);
  return {
    x0: Math.max(siz.tileX0 + p * siz.tileWidth, siz.x0),
    y0: Math.max(siz.tileY0 + q * siz.tileHeight, siz.y0),
    x1: Math.min(siz.tileX0 + (p + 1) * siz.tileWidth, siz.xsiz),
    y1: Math.min(siz.tileY0 + (q + 1) * siz.tileHeight, siz.ysiz),
  };
}

/** Tile t of component c in that component's sample grid (B.4). */
export function tileComponentRect(siz: Siz, t: number, c: number): GridRect {
  const r = tileRect(siz, t);
  const { dx, dy } = siz.components[c];
  return { x0: ceilDiv(r.x0, dx), y0: ceilDiv(r.y0, dy), x1: ceilDiv(r.x1, dx), y1: ceilDiv(r.y1, dy) };
}

/** A tile-component at resolution r (0 = lowest, `levels` = full), given NL = `levels` (B.5). */
export function resolutionRect(tc: GridRect, levels: number, r: number): GridRect {
  const k = levels - r;
  return { x0: ceilPow2(tc.x0, k), y0: ceilPow2(tc.y0, k), x1: ceilPow2(tc.x1, k), y1: ceilPow2(tc.y1, k) };
}

/** Precincts across and down a resolution rectangle with precincts 2^ppx × 2^ppy (B.6). */
export function precinctCount(res: GridRect, ppx: number, ppy: number): { across: number; down: number } {
  const across = res.x1 > res.x0 ? ceilPow2(res.x1, ppx) - Math.floor(res.x0 / 2 ** ppx) : 0;
  const down = res.y1 > res.y0 ? ceilPow2(res.y1, ppy) - Math.floor(res.y0 / 2 ** ppy) : 0;
  return { across, down };
}

/**
 * JPIP precinct data-bin identifier I = t + (c + s·Csiz)·numTiles, where s is the precinct's
 * sequence number in its tile-component (lower resolutions first, raster order within one).
 */
export function precinctDataBinId(tile: number, component: number, sequence: number, components: number, tiles: number): number {
  return tile + (component + sequence * components) * tiles;
}

/** Indices of the tiles that intersect an area of the reference grid, in raster order. */
export function tilesInArea(siz: Siz, area: GridRect): number[] {
  const across = tilesAcross(siz);
  const down = tilesDown(siz);
  const c0 = Math.max(0, Math.floor((Math.max(area.x0, siz.x0) - siz.tileX0) / siz.tileWidth));
  const r0 = Math.max(0, Math.floor((Math.max(area.y0, siz.y0) - siz.tileY0) / siz.tileHeight));
  const c1 = Math.min(across, Math.ceil((Math.min(area.x1, siz.xsiz) - siz.tileX0) / siz.tileWidth));
  const r1 = Math.min(down, Math.ceil((Math.min(area.y1, siz.ysiz) - siz.tileY0) / siz.tileHeight));
  const out: number[] = [];
  for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out.push(r * across + c);
  return out;
}
