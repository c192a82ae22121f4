// From a JPIP view-window (fsiz, roff, rsiz) to what a response must carry: the discard level
// chosen by the fsiz rounding rule, the region scaled to that frame and clipped, and the
// precincts of every tile, component and resolution the decoder needs to reconstruct that
// region exactly. The region is followed down the resolutions with the synthesis filters'
// support added at each step (2 for the 5/3 wavelet, 3 for 9/7, in subband samples), so pixels
// inside the window decode identically to a decode of the whole file. Pure arithmetic.

import { ceilPow2, precinctDataBinId, reducedSize, tilesInArea, type GridRect } from '../../jpeg2000/geometry.js';
import type { Siz } from '../../jpeg2000/markers.js';
import type { PacketIndex } from '../../jpeg2000/packet-index.js';
import { precinctsIn } from '../../jpeg2000/precincts.js';
import { inRanges, type Range, type Rounding } from './fields.js';

export interface Frame {
  /** Discard level: resolutions dropped from the top (0 = full size). */
  readonly discard: number;
  readonly width: number;
  readonly height: number;
}

/**
 * The frame for `fsiz=fx,fy,round`. round-down: the largest frame not exceeding fx×fy (the
 * smallest frame if none does); round-up: the smallest frame at least fx×fy (full size if none
 * is); closest: the frame whose area is nearest fx·fy (the larger on a tie).
 */
export function chooseFrame(siz: Siz, maxDiscard: number, fx: number, fy: number, round: Rounding): Frame {
  const frames: Frame[] = [];
  for (let d = 0; d <= maxDiscard; d++) frames.push({ discard: d, ...reducedSize(siz, d) });
  if (round === 'round-down') return frames.find((f) => f.width <= fx && f.height <= fy) ?? frames[frames.length - 1];
  if (round === 'round-up') return [...frames].reverse().find((f) => f.width >= fx && f.height >= fy) ?? frames[0];
  let best = frames[0];
  for (const f of frames) if (Math.abs(f.width * f.height - fx * fy) < Math.abs(best.width * best.height - fx * fy)) best = f;
  return best;
}

/** A region of the chosen frame, in the frame's pixel coordinates; empty when w or h is 0. */
export interface Region {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

export interface ViewWindow {
  readonly frame: Frame;
  readonly region: Region;
  /** Response headers for what the server changed (JPIP-fsiz, JPIP-roff, JPIP-rsiz). */
  readonly headers: ReadonlyArray<[string, string]>;
}

/**
 * Resolves fsiz/roff/rsiz against a codestream. roff/rsiz are in the requested fsiz frame; when
 * the chosen frame differs they are scaled to it (rounding outwards), then clipped to it.
 */
export function resolveWindow(
  siz: Siz,
  maxDiscard: number,
  fsiz: { fx: number; fy: number; round: Rounding },
  roff?: { x: number; y: number },
  rsiz?: { w: number; h: number },
): ViewWindow {
  const frame = chooseFrame(siz, maxDiscard, fsiz.fx, fsiz.fy, fsiz.round);
  const sx = frame.width / fsiz.fx;
  const sy = frame.height / fsiz.fy;
  const ox = roff?.x ?? 0;
  const oy = roff?.y ?? 0;
  const ex = rsiz ? ox + rsiz.w : fsiz.fx;
  const ey = rsiz ? oy + rsiz.h : fsiz.fy;
  const clip = (v: number, max: number): number => Math.min(max, Math.max(0, v));
  const x0 = clip(Math.floor(ox * sx), frame.width);
  const y0 = clip(Math.floor(oy * sy), frame.height);
  const x1 = clip(Math.ceil(ex * sx), frame.width);
  const y1 = clip(Math.ceil(ey * sy), frame.height);
  const region = { x: x0, y: y0, w: Math.max(0, x1 - x0), h: Math.max(0, y1 - y0) };
  const headers: Array<[string, string]> = [];
  if (frame.width !== fsiz.fx || frame.height !== fsiz.fy) headers.push(['JPIP-fsiz', `${frame.width},${frame.height}`]);
  if (roff && (region.x !== roff.x || region.y !== roff.y)) headers.push(['JPIP-roff', `${region.x},${region.y}`]);
  if (rsiz && (region.w !== rsiz.w || region.h !== rsiz.h)) headers.push(['JPIP-rsiz', `${region.w},${region.h}`]);
  return { frame, region, headers };
}

/** One precinct data-bin a window needs. */
export interface PrecinctPick {
  readonly tile: number;
  readonly component: number;
  readonly resolution: number;
  /** Sequence number in the tile-component. */
  readonly sequence: number;
  /** In-class identifier I. */
  readonly id: number;
}

export interface WindowContent {
  /** Tiles meeting the region, raster order. */
  readonly tiles: readonly number[];
  /** Precincts needed, lowest resolution first (then tile, component, raster order). */
  readonly precincts: readonly PrecinctPick[];
  /** Per tile and component, the highest resolution needed (for JPT tile-part selection). */
  readonly topResolution: ReadonlyMap<number, readonly number[]>;
}

/** Synthesis filter support in subband samples: 5/3 (reversible) and 9/7 (irreversible). */
const support = (transform: number): number => (transform === 1 ? 2 : 3);

/** The reference-grid area of a region of frame `discard`. */
export function regionArea(siz: Siz, frame: Frame, region: Region): GridRect {
  const s = 2 ** frame.discard;
  const X0 = ceilPow2(siz.x0, frame.discard) + region.x;
  const Y0 = ceilPow2(siz.y0, frame.discard) + region.y;
  return {
    x0: Math.max(siz.x0, X0 * s),
    y0: Math.max(siz.y0, Y0 * s),
    x1: Math.min(siz.xsiz, (X0 + region.w) * s),
    y1: Math.min(siz.ysiz, (Y0 + region.h) * s),
  };
}

/**
 * The precincts needed for `region` of `frame`, restricted to components in `comps` (all when
 * undefined). Tiles are coded independently, so only tiles meeting the region take part, and
 * within a tile the filter margins stop at its edges (symmetric extension stays inside).
 */
export function windowContent(index: PacketIndex, frame: Frame, region: Region, comps?: readonly Range[]): WindowContent {
  const siz = index.siz;
  if (region.w === 0 || region.h === 0) return { tiles: [], precincts: [], topResolution: new Map() };
  const area = regionArea(siz, frame, region);
  const tiles = area.x1 > area.x0 && area.y1 > area.y0 ? tilesInArea(siz, area) : [];
  const byRes: PrecinctPick[][] = [];
  const topResolution = new Map<number, number[]>();
  for (const t of tiles) {
    const layout = index.layout(t);
    const tops: number[] = [];
    for (const tcl of layout.components) {
      const c = tcl.component;
      if (comps && !inRanges(comps, c)) {
        tops.push(-1);
        continue;
      }
      const { dx, dy } = siz.components[c];
      const levels = tcl.coding.levels;
      const top = Math.max(0, levels - frame.discard);
      tops.push(top);
      const k = levels - top;
      // The region at the top resolution, in that resolution's coordinates (B.5: ceil(x / (dx·2^k))).
      const fx = dx * 2 ** k;
      const fy = dy * 2 ** k;
      const topRect = tcl.resolutions[top].rect;
      let w: GridRect = {
        x0: Math.max(topRect.x0, Math.floor(area.x0 / fx)),
        y0: Math.max(topRect.y0, Math.floor(area.y0 / fy)),
        x1: Math.min(topRect.x1, Math.ceil(area.x1 / fx)),
        y1: Math.min(topRect.y1, Math.ceil(area.y1 / fy)),
      };
      const s = support(tcl.coding.transform);
      for (let r = top; r >= 0; r--) {
        const res = tcl.resolutions[r];
        if (w.x1 <= w.x0 || w.y1 <= w.y0) break;
        // Resolution r's precincts hold the detail subbands that rebuild it from r − 1: their
        // coefficients around the window ± s (subband samples), i.e. ± 2s + 1 here.
        const m = r > 0 ? 2 * s + 1 : 0;
        const hit = precinctsIn(res, { x0: w.x0 - m, y0: w.y0 - m, x1: w.x1 + m, y1: w.y1 + m });
        if (hit) {
          const list = (byRes[r] ??= []);
          for (let py = hit.py0; py < hit.py1; py++) {
            for (let px = hit.px0; px < hit.px1; px++) {
              const sequence = res.first + px + py * res.across;
              list.push({
                tile: t,
                component: c,
                resolution: r,
                sequence,
                id: precinctDataBinId(t, c, sequence, siz.components.length, index.tileCount),
              });
            }
          }
        }
        if (r === 0) break;
        // The low-pass band (resolution r − 1) needed to rebuild w, plus the filter support.
        const low = tcl.resolutions[r - 1].rect;
        w = {
          x0: Math.max(low.x0, Math.floor(w.x0 / 2) - s),
          y0: Math.max(low.y0, Math.floor(w.y0 / 2) - s),
          x1: Math.min(low.x1, Math.ceil(w.x1 / 2) + s),
          y1: Math.min(low.y1, Math.ceil(w.y1 / 2) + s),
        };
      }
    }
    topResolution.set(t, tops);
  }
  return { tiles, precincts: byRes.flat(), topResolution };
}
