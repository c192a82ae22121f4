// Precinct geometry for the packet level (ISO/IEC 15444-1 B.5–B.7) and JPIP precinct data-bin
// identifiers (ISO/IEC 15444-9 A.3.2.1), per tile-component: the effective coding style of a
// tile (tile-part COC > tile-part COD > main COC > main COD), each resolution's rectangle and
// precinct grid, sequence numbers, the code-block grid of each precinct's subbands (for
// packet-header parsing), and precinct ranges under a rectangle (for view-windows).
// Pure arithmetic over SIZ/COD/COC values; rectangles are half-open.

import type { HeaderMarkers, MainHeader } from './codestream.js';
import { ceilPow2, precinctCount, resolutionRect, tileComponentRect, tileRect, type GridRect } from './geometry.js';
import type { ComponentCodingStyle, ProgressionOrder, Siz } from './markers.js';

/** The coding parameters that hold in one tile (after tile-part header overrides). */
export interface TileCoding {
  readonly progression: ProgressionOrder;
  readonly layers: number;
  /** SOP marker segments may precede packets. */
  readonly sop: boolean;
  /** EPH markers follow packet headers. */
  readonly eph: boolean;
  /** One per component. */
  readonly components: readonly ComponentCodingStyle[];
}

/** Strips a coding style down to plain data (it is persisted in the index as JSON). */
function styleOf(s: ComponentCodingStyle): ComponentCodingStyle {
  return {
    levels: s.levels,
    codeBlockWidth: s.codeBlockWidth,
    codeBlockHeight: s.codeBlockHeight,
    codeBlockStyle: s.codeBlockStyle,
    transform: s.transform,
    customPrecincts: s.customPrecincts,
    precincts: s.precincts.map((p) => ({ ppx: p.ppx, ppy: p.ppy })),
  };
}

/**
 * The coding style of a tile. `tileHeaders` are the parsed headers of the tile's tile-parts in
 * part order (COD/COC may only appear in the first, but any is accepted).
 */
export function tileCoding(main: MainHeader, tileHeaders: readonly HeaderMarkers[], components: number): TileCoding {
  const tileCod = tileHeaders.find((h) => h.cod)?.cod;
  const cod = tileCod ?? main.cod;
  const out: ComponentCodingStyle[] = [];
  for (let c = 0; c < components; c++) {
    let tileCoc: ComponentCodingStyle | undefined;
    for (const h of tileHeaders) tileCoc = h.coc.find((x) => x.component === c)?.style ?? tileCoc;
    const mainCoc = main.coc.find((x) => x.component === c)?.style;
    out.push(styleOf(tileCoc ?? tileCod ?? mainCoc ?? main.cod));
  }
  return { progression: cod.progression, layers: cod.layers, sop: cod.sop, eph: cod.eph, components: out };
}

export interface ResolutionLayout {
  /** The tile-component at this resolution, in resolution-level coordinates. */
  readonly rect: GridRect;
  /** Precinct size exponents at this resolution. */
  readonly ppx: number;
  readonly ppy: number;
  readonly across: number;
  readonly down: number;
  /** Sequence number (within the tile-component) of this resolution's first precinct. */
  readonly first: number;
}

export interface TileComponentLayout {
  readonly component: number;
  /** The tile-component rectangle in the component's sample grid. */
  readonly rect: GridRect;
  readonly coding: ComponentCodingStyle;
  /** Resolution 0 (lowest) to `coding.levels` (full). */
  readonly resolutions: readonly ResolutionLayout[];
  /** Precincts of all resolutions. */
  readonly precincts: number;
}

export interface TileLayout {
  readonly tile: number;
  /** The tile on the reference grid, clipped to the image area. */
  readonly rect: GridRect;
  readonly coding: TileCoding;
  readonly components: readonly TileComponentLayout[];
  /** Highest resolution count over components (the r loop bound of the progressions). */
  readonly maxLevels: number;
  /** Packets in the tile: every precinct × layers. */
  readonly packets: number;
}

export function tileLayout(siz: Siz, tile: number, coding: TileCoding): TileLayout {
  const rect = tileRect(siz, tile);
  const components: TileComponentLayout[] = [];
  let maxLevels = 0;
  let packets = 0;
  for (let c = 0; c < siz.components.length; c++) {
    const style = coding.components[c];
    const tc = tileComponentRect(siz, tile, c);
    const resolutions: ResolutionLayout[] = [];
    let seq = 0;
    for (let r = 0; r <= style.levels; r++) {
      const res = resolutionRect(tc, style.levels, r);
      const { ppx, ppy } = style.precincts[r];
      const { across, down } = precinctCount(res, ppx, ppy);
      resolutions.push({ rect: res, ppx, ppy, across, down, first: seq });
      seq += across * down;
    }
    components.push({ component: c, rect: tc, coding: style, resolutions, precincts: seq });
    maxLevels = Math.max(maxLevels, style.levels);
    packets += seq * coding.layers;
  }
  return { tile, rect, coding, components, maxLevels, packets };
}

/** A precinct's rectangle at its resolution (resolution-level coordinates, clipped to the tile). */
export function precinctRect(res: ResolutionLayout, p: number): GridRect {
  const px = p % res.across;
  const py = Math.floor(p / res.across);
  const x0 = (Math.floor(res.rect.x0 / 2 ** res.ppx) + px) * 2 ** res.ppx;
  const y0 = (Math.floor(res.rect.y0 / 2 ** res.ppy) + py) * 2 ** res.ppy;
  return {
    x0: Math.max(x0, res.rect.x0),
    y0: Math.max(y0, res.rect.y0),
    x1: Math.min(x0 + 2 ** res.ppx, res.rect.x1),
    y1: Math.min(y0 + 2 ** res.ppy, res.rect.y1),
  };
}

/**
 * The precincts of a resolution that meet `area` (resolution-level coordinates): column and row
 * ranges [px0, px1) × [py0, py1), empty when the area misses the resolution.
 */
export function precinctsIn(res: ResolutionLayout, area: GridRect): { px0: number; px1: number; py0: number; py1: number } | null {
  const x0 = Math.max(area.x0, res.rect.x0);
  const y0 = Math.max(area.y0, res.rect.y0);
  const x1 = Math.min(area.x1, res.rect.x1);
  const y1 = Math.min(area.y1, res.rect.y1);
  if (x1 <= x0 || y1 <= y0 || res.across === 0 || res.down === 0) return null;
  const bx = Math.floor(res.rect.x0 / 2 ** res.ppx);
  const by = Math.floor(res.rect.y0 / 2 ** res.ppy);
  return {
    px0: Math.floor(x0 / 2 ** res.ppx) - bx,
    px1: ceilPow2(x1, res.ppx) - bx,
    py0: Math.floor(y0 / 2 ** res.ppy) - by,
    py1: ceilPow2(y1, res.ppy) - by,
  };
}

/** Code-block grid of one subband of a precinct (0×0 when the precinct misses the subband). */
export interface BandBlocks {
  readonly nx: number;
  readonly ny: number;
}

/**
 * The code-block grids of precinct `p` of resolution `r`, one per subband in packet order (LL
 * at r = 0; HL, LH, HH above). Subband bounds follow B.5 (`ceil((tc − 2^(nb−1)·o) / 2^nb)`),
 * the precinct is halved in each subband for r > 0, and code-blocks are at most the precinct.
 */
export function precinctBands(tcl: TileComponentLayout, r: number, p: number): BandBlocks[] {
  const res = tcl.resolutions[r];
  const levels = tcl.coding.levels;
  const px = p % res.across;
  const py = Math.floor(p / res.across);
  const bands: Array<[number, number, number]> = r === 0 ? [[0, 0, levels]] : [1, 2, 3].map((b) => [b & 1, b >> 1, levels - r + 1]);
  const bppx = r === 0 ? res.ppx : res.ppx - 1;
  const bppy = r === 0 ? res.ppy : res.ppy - 1;
  const xcb = Math.min(Math.log2(tcl.coding.codeBlockWidth), bppx);
  const ycb = Math.min(Math.log2(tcl.coding.codeBlockHeight), bppy);
  const prx0 = (Math.floor(res.rect.x0 / 2 ** res.ppx) + px) * 2 ** bppx;
  const pry0 = (Math.floor(res.rect.y0 / 2 ** res.ppy) + py) * 2 ** bppy;
  const out: BandBlocks[] = [];
  for (const [xo, yo, nb] of bands) {
    const bound = (v: number, o: number): number => (nb > 0 ? Math.ceil((v - o * 2 ** (nb - 1)) / 2 ** nb) : v);
    const x0 = Math.max(prx0, bound(tcl.rect.x0, xo));
    const y0 = Math.max(pry0, bound(tcl.rect.y0, yo));
    const x1 = Math.min(prx0 + 2 ** bppx, bound(tcl.rect.x1, xo));
    const y1 = Math.min(pry0 + 2 ** bppy, bound(tcl.rect.y1, yo));
    if (x1 <= x0 || y1 <= y0) out.push({ nx: 0, ny: 0 });
    else out.push({ nx: ceilPow2(x1, xcb) - Math.floor(x0 / 2 ** xcb), ny: ceilPow2(y1, ycb) - Math.floor(y0 / 2 ** ycb) });
  }
  return out;
}

/** Where a precinct data-bin lies: tile, component, resolution and raster index in it. */
export interface PrecinctAddress {
  readonly tile: number;
  readonly component: number;
  readonly resolution: number;
  readonly precinct: number;
  /** Sequence number within the tile-component. */
  readonly sequence: number;
}

/**
 * Inverse of I = t + (c + s·Csiz)·numTiles for a known tile layout; undefined when `id` names
 * no precinct of that tile.
 */
export function precinctOfBin(id: number, tiles: number, layoutOf: (t: number) => TileLayout): PrecinctAddress | undefined {
  const tile = id % tiles;
  const rest = Math.floor(id / tiles);
  const layout = layoutOf(tile);
  const ncomp = layout.components.length;
  const component = rest % ncomp;
  const sequence = Math.floor(rest / ncomp);
  const tcl = layout.components[component];
  if (sequence >= tcl.precincts) return undefined;
  for (let r = 0; r < tcl.resolutions.length; r++) {
    const res = tcl.resolutions[r];
    if (sequence < res.first + res.across * res.down) return { tile, component, resolution: r, precinct: sequence - res.first, sequence };
  }
  return undefined;
}
