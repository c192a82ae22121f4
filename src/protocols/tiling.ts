// Tile grids as the tiling protocols (IIP, Zoomify, DeepZoom) number them, on top of
// core/geometry: IIP resolution numbers (0 = smallest) against our level indices (0 = full),
// row-major tile indices, tiles of a rotated IIP grid, Zoomify's `discard` rule, DeepZoom's
// level numbers, and "virtual" tiles (non-square tilings, DeepZoom levels below the pyramid)
// that do not exist in the file and are rendered as region views. Pure arithmetic.

import { ImageServerError } from '../core/errors.js';
import { isTileInRange, tileRect, type TileGrid } from '../core/geometry.js';
import type { ImageInfo, Level } from '../core/image-info.js';
import type { Rect, RegionView, Rotation, TileView, ViewRequest } from '../core/view.js';

/** Everything of a view besides where it is: format, quality, rotation, processing... */
export type ViewStyle = Omit<TileView, 'kind' | 'level' | 'col' | 'row'>;

/** Our level index (0 = full resolution) for an IIP resolution number (0 = smallest); null when out of range. */
export function levelOfResolution(info: ImageInfo, resolution: number): number | null {
  const n = info.levels.length;
  if (!Number.isInteger(resolution) || resolution < 0 || resolution >= n) return null;
  return n - 1 - resolution;
}

/** A row-major tile index (`row * cols + col`) as a column and row; null when outside the grid. */
export function tilePosition(grid: TileGrid, index: number): { col: number; row: number } | null {
  if (!Number.isInteger(index) || index < 0 || index >= grid.cols * grid.rows) return null;
  return { col: index % grid.cols, row: Math.floor(index / grid.cols) };
}

/** True when a rotation swaps width and height (90 or 270 degrees). */
export function swapsAxes(rotation: Rotation): boolean {
  return ((rotation.degrees % 360) + 360) % 180 === 90;
}

/**
 * The tile grid a client sees for an IIP resolution under a rotation: the level's size with
 * width and height swapped for 90/270, cut into tiles of the level's own tile size (IIP's
 * `Tile-size` is not swapped, only `Max-size` is).
 */
export function rotatedGrid(level: Level, rotation: Rotation): { width: number; height: number; grid: TileGrid } {
  const swap = swapsAxes(rotation);
  const width = swap ? level.height : level.width;
  const height = swap ? level.width : level.height;
  return { width, height, grid: { cols: Math.ceil(width / level.tileWidth), rows: Math.ceil(height / level.tileHeight) } };
}

/**
 * The rectangle of the unrotated level that becomes tile (col, row) of the rotated grid, so that
 * rendering it and then mirroring and rotating it (the render order: mirror first, then rotate
 * clockwise) gives exactly that tile. Null when the tile is outside the rotated grid.
 */
export function sourceRectOfRotatedTile(level: Level, rotation: Rotation, col: number, row: number): Rect | null {
  const { width: rw, height: rh, grid } = rotatedGrid(level, rotation);
  if (!Number.isInteger(col) || !Number.isInteger(row) || col < 0 || row < 0 || col >= grid.cols || row >= grid.rows) return null;
  const t: Rect = {
    x: col * level.tileWidth,
    y: row * level.tileHeight,
    width: Math.min(level.tileWidth, rw - col * level.tileWidth),
    height: Math.min(level.tileHeight, rh - row * level.tileHeight),
  };
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
  const cols = Math.ceil(level.width / size);
  const rows = Math.ceil(level.height / size);
  if (!Number.isInteger(col) || !Number.isInteger(row) || col < 0 || row < 0 || col >= cols || row >= rows) return null;
  return {
    x: col * size,
    y: row * size,
    width: Math.min(size, level.width - col * size),
    height: Math.min(size, level.height - row * size),
  };
}

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

/**
 * iipsrv's `discard`: the number of levels whose width and height are both smaller than the tile
 * size, less one when there are any, so that the largest level fitting in one tile stays and
 * becomes Zoomify level 0. Zoomify level z is then IIP resolution z + discard.
 */
export function zoomifyDiscard(levels: readonly Level[], tileSize: number): number {
  const small = levels.filter((l) => l.width < tileSize && l.height < tileSize).length;
  return small > 0 ? small - 1 : 0;
}

/** Our level index for Zoomify level z; null when the image has no such level. */
export function zoomifyLevel(info: ImageInfo, tileSize: number, z: number): number | null {
  return levelOfResolution(info, z + zoomifyDiscard(info.levels, tileSize));
}

/** ImageProperties.xml NUMTILES: the square tiles of exactly the levels served (§13 #30). */
export function zoomifyTileCount(info: ImageInfo, tileSize: number): number {
  const served = info.levels.length - zoomifyDiscard(info.levels, tileSize);
  let n = 0;
  for (let i = 0; i < served; i++) {
    const l = info.levels[i];
    n += Math.ceil(l.width / tileSize) * Math.ceil(l.height / tileSize);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// DeepZoom

/** The highest DeepZoom level, ceil(log2(max(W, H))): the level at full size. */
export function deepZoomMaxLevel(width: number, height: number): number {
  const m = Math.max(width, height);
  let n = 0;
  while (2 ** n < m) n++;
  return n;
}

/** DeepZoom level L's true size: ceil(W / 2^s) × ceil(H / 2^s) with s = max − L. */
export function deepZoomLevelSize(width: number, height: number, L: number): { width: number; height: number; shift: number } {
  const shift = deepZoomMaxLevel(width, height) - L;
  const f = 2 ** shift;
  return { width: Math.ceil(width / f), height: Math.ceil(height / f), shift };
}

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
