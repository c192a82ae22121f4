// The views behind the tiling protocols' tile numbers (IIP, Zoomify, DeepZoom): tiles of a
// rotated IIP grid, and "virtual" tiles (non-square tilings, DeepZoom levels below the
// pyramid) that do not exist in the file and are rendered as region views. The numbering
// itself (resolutions, tile indices, Zoomify and DeepZoom levels) is in core/geometry, the
// one geometry module. Pure arithmetic.

import { ImageServerError } from '../core/errors.js';
import { deepZoomLevelSize, deepZoomMaxLevel, isTileInRange, swapsAxes, tileGrid, tileRect, type TileGrid } from '../core/geometry.js';
import type { ImageInfo, Level } from '../core/image-info.js';
import type { Rect, RegionView, Rotation, TileView, ViewRequest } from '../core/view.js';

/** Everything of a view besides where it is: format, quality, rotation, processing... */
export type ViewStyle = Omit<TileView, 'kind' | 'level' | 'col' | 'row'>;

/**
 * The tile grid a client sees for an IIP resolution under a rotation: the level's size with
 * width and height swapped for 90/270, cut into tiles of the level's own tile size (IIP's
 * `Tile-size` is not swapped, only `Max-size` is).
 */
export function rotatedGrid(level: Level, rotation: Rotation): { width: number; height: number; grid: TileGrid } {
  const swap = swapsAxes(rotation);
  const width = swap ? level.height : level.width;
  const height = swap ? level.width : level.height;
  return { width, height, grid: tileGrid({ ...level, width, height }) };
}

/**
 * The rectangle of the unrotated level that becomes tile (col, row) of the rotated grid, so that
 * rendering it and then mirroring and rotating it (the render order: mirror first, then rotate
 * clockwise) gives exactly that tile. Null when the tile is outside the rotated grid.
 */
export function sourceRectOfRotatedTile(level: Level, rotation: Rotation, col: number, row: number): Rect | null {
  const { width: rw, height: rh } = rotatedGrid(level, rotation);
  const rotated = { ...level, width: rw, height: rh };
  if (!isTileInRange(rotated, col, row)) return null;
  const t = tileRect(rotated, col, row);
  const lw = level.width;
  const lh = level.height;
  // Undo the clockwise rotation: a point (x, y) of the mirrored level goes to (lh - y, x) at 90°,
  // (lw - x, lh - y) at 180° and (y, lw - x) at 270°.
  const degrees = ((rotation.degrees % 360) + 360) % 360;
  let f: Rect;
  switch (degrees) {
    case 90:
      f = { x: t.y, y: lh - (t.x + t.width), width: t.height, height: t.width };
      break;
    case 180:
      f = { x: lw - (t.x + t.width), y: lh - (t.y + t.height), width: t.width, height: t.height };
      break;
    case 270:
      f = { x: lw - (t.y + t.height), y: t.x, width: t.height, height: t.width };
      break;
    default:
      f = t;
  }
  // Undo the horizontal mirror.
  return rotation.mirror ? { ...f, x: lw - (f.x + f.width) } : f;
}

/**
 * A view of `rect` (in the pixels of level `levelIndex`) at its own size. When the rectangle is
 * exactly one stored tile it is that TileView (tile cache key, passthrough); otherwise it is a
 * region of the same fractions of the full image, at exactly the rectangle's size, which the
 * planner reads from that same level.
 */
export function levelRectView(info: ImageInfo, levelIndex: number, rect: Rect, style: ViewStyle): ViewRequest {
  const level = info.levels[levelIndex];
  const col = rect.x / level.tileWidth;
  const row = rect.y / level.tileHeight;
  if (isTileInRange(level, col, row)) {
    const t = tileRect(level, col, row);
    if (t.width === rect.width && t.height === rect.height) return { kind: 'tile', level: levelIndex, col, row, ...style };
  }
  const region: RegionView = {
    kind: 'region',
    region: {
      type: 'fraction',
      x: rect.x / level.width,
      y: rect.y / level.height,
      w: rect.width / level.width,
      h: rect.height / level.height,
    },
    size: { type: 'exact', w: rect.width, h: rect.height, upscale: false },
    upscaleRule: 'allowed',
    ...style,
  };
  return region;
}

/** Square virtual tile (col, row) of side `size` on a level; null when outside it. */
export function squareTileRect(level: Level, size: number, col: number, row: number): Rect | null {
  const square = { ...level, tileWidth: size, tileHeight: size };
  return isTileInRange(square, col, row) ? tileRect(square, col, row) : null;
}

/** The square tile side Zoomify and DeepZoom advertise: the full-resolution level's tile width. */
export const squareTileSize = (info: ImageInfo): number => info.levels[0].tileWidth;

/** True when a level's stored tiles are the square tiles of side `size` a Zoomify/DeepZoom client expects. */
export function hasSquareTiles(level: Level, size: number): boolean {
  return level.tileWidth === size && level.tileHeight === size;
}

/**
 * Tile (col, row) of the square tiling of side `size` of level `levelIndex`: the stored tile when
 * the level is tiled that way, else a virtual tile rendered from the level. 400 outside the level.
 */
export function squareTileView(info: ImageInfo, levelIndex: number, size: number, col: number, row: number, style: ViewStyle): ViewRequest {
  const level = info.levels[levelIndex];
  if (hasSquareTiles(level, size)) {
    if (!isTileInRange(level, col, row)) throw outOfRange(col, row);
    return { kind: 'tile', level: levelIndex, col, row, ...style };
  }
  const rect = squareTileRect(level, size, col, row);
  if (!rect) throw outOfRange(col, row);
  return levelRectView(info, levelIndex, rect, style);
}

function outOfRange(col: number, row: number): ImageServerError {
  return new ImageServerError('BAD_TILE', `Tile ${col},${row} does not exist at this level`);
}

// ---------------------------------------------------------------------------------------------
// Zoomify

// ---------------------------------------------------------------------------------------------
// DeepZoom

/**
 * The view for DeepZoom tile (col, row) of level L with square tiles of side `size`.
 * iipsrv's mapping (IIP resolution r = L − (max − numRes) − 1, i.e. our level index max − L) is
 * kept where that level exists, matches the DeepZoom size within a pixel and is tiled in squares
 * of `size`: the stored tile is served. Anywhere else — levels below the smallest one of the
 * pyramid, pyramids that do not halve, other tilings — the tile is rendered from the full image's
 * region at exactly the DeepZoom size, ceil(W/2^s) × ceil(H/2^s) (§13 #29).
 */
export function deepZoomTileView(info: ImageInfo, size: number, L: number, col: number, row: number, style: ViewStyle): ViewRequest {
  const max = deepZoomMaxLevel(info.width, info.height);
  if (!Number.isInteger(L) || L < 0 || L > max) {
    throw new ImageServerError('BAD_TILE', `DeepZoom: level ${L} does not exist (0 to ${max})`);
  }
  const dz = deepZoomLevelSize(info.width, info.height, L);
  const level = info.levels[dz.shift];
  if (level && Math.abs(level.width - dz.width) <= 1 && Math.abs(level.height - dz.height) <= 1 && hasSquareTiles(level, size)) {
    if (!isTileInRange(level, col, row)) throw outOfRange(col, row);
    return { kind: 'tile', level: dz.shift, col, row, ...style };
  }
  const virtual: Level = { width: dz.width, height: dz.height, tileWidth: size, tileHeight: size };
  const rect = squareTileRect(virtual, size, col, row);
  if (!rect) throw outOfRange(col, row);
  // Whole DeepZoom pixels are 2^s full-resolution pixels; the last row and column are clipped.
  const f = 2 ** dz.shift;
  return {
    kind: 'region',
    region: {
      type: 'pixels',
      x: rect.x * f,
      y: rect.y * f,
      w: Math.min(rect.width * f, info.width - rect.x * f),
      h: Math.min(rect.height * f, info.height - rect.y * f),
    },
    size: { type: 'exact', w: rect.width, h: rect.height, upscale: false },
    upscaleRule: 'allowed',
    ...style,
  };
}
