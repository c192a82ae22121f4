// Pyramid geometry, the one place that relates levels, tile grids, regions and output sizes,
// and the level and tile numbers of each protocol (IIIF scale factors, IIP resolutions,
// Zoomify and DeepZoom levels).
// Levels count from full resolution (0) down; IIP's smallest-first numbering is converted at
// the protocol edge. Level sizes are the file's own, never assumed to be powers of two.

import { ImageServerError } from './errors.js';
import type { ImageInfo, Level } from './image-info.js';
import type { Rect, RegionSpec, Rotation, SizeSpec, UpscaleRule } from './view.js';

export interface Size {
  readonly width: number;
  readonly height: number;
}

export interface TileGrid {
  readonly cols: number;
  readonly rows: number;
}

export function tileGrid(level: Level): TileGrid {
  return { cols: Math.ceil(level.width / level.tileWidth), rows: Math.ceil(level.height / level.tileHeight) };
}

/** The tile's rectangle in its level's pixels; edge tiles are cropped to the level, never padded. */
export function tileRect(level: Level, col: number, row: number): Rect {
  const x = col * level.tileWidth;
  const y = row * level.tileHeight;
  return {
    x,
    y,
    width: Math.min(level.tileWidth, level.width - x),
    height: Math.min(level.tileHeight, level.height - y),
  };
}

export function isTileInRange(level: Level, col: number, row: number): boolean {
  const grid = tileGrid(level);
  return Number.isInteger(col) && Number.isInteger(row) && col >= 0 && row >= 0 && col < grid.cols && row < grid.rows;
}

/**
 * The downsampling factor of each level relative to full resolution, as IIIF `scaleFactors`.
 * iipsrv uses floor(W / w), which gives 1, 3, 7 for a 2001-wide pyramid of 1001, 501, 251;
 * rounding gives the 1, 2, 4 that clients need to compute tile regions.
 */
export function scaleFactors(levels: readonly Level[]): number[] {
  const full = levels[0];
  return levels.map((l) => Math.max(1, Math.round(Math.max(full.width / l.width, full.height / l.height))));
}

/** IIIF `sizes`: every level except full resolution, smallest first (one entry for one level). */
export function iiifSizes(levels: readonly Level[]): Size[] {
  const list = levels.length > 1 ? levels.slice(1) : levels;
  return list.map((l) => ({ width: l.width, height: l.height })).reverse();
}

/** Resolves a region request against the full image; clips it, rejects empty or outside ones. */
export function resolveRegion(spec: RegionSpec, width: number, height: number): Rect {
  let x: number, y: number, w: number, h: number;
  switch (spec.type) {
    case 'full':
      return { x: 0, y: 0, width, height };
    case 'square': {
      const side = Math.min(width, height);
      return { x: Math.floor((width - side) / 2), y: Math.floor((height - side) / 2), width: side, height: side };
    }
    case 'pixels':
      ({ x, y, w, h } = spec);
      break;
    case 'fraction':
      x = spec.x * width;
      y = spec.y * height;
      w = spec.w * width;
      h = spec.h * height;
      break;
  }
  if (![x, y, w, h].every(Number.isFinite) || w <= 0 || h <= 0 || x < 0 || y < 0) {
    throw new ImageServerError('BAD_REGION', 'Invalid region: width and height must be positive');
  }
  const left = Math.round(x);
  const top = Math.round(y);
  if (left >= width || top >= height) {
    throw new ImageServerError('BAD_REGION', 'Invalid region: it lies outside the image');
  }
  const right = Math.min(width, Math.round(x + w));
  const bottom = Math.min(height, Math.round(y + h));
  if (right <= left || bottom <= top) {
    throw new ImageServerError('BAD_REGION', 'Invalid region: it has no pixels');
  }
  return { x: left, y: top, width: right - left, height: bottom - top };
}

export interface SizeLimits {
  /** Largest width and height; -1 or 0 or less means unlimited. */
  readonly maxWidth: number;
  readonly maxHeight: number;
  /** Largest width×height; 0 or less means unlimited. */
  readonly maxArea: number;
  readonly allowUpscaling: boolean;
}

/** MAX_CVT (and ALLOW_UPSCALING) as size limits: the planner, canonical links and info.json agree. */
export function cvtLimits(maxCvt: number, allowUpscaling: boolean): SizeLimits {
  const m = maxCvt > 0 && Number.isFinite(maxCvt) ? maxCvt : -1;
  return { maxWidth: m, maxHeight: m, maxArea: m > 0 ? m * m : 0, allowUpscaling };
}

const positive = (n: number): boolean => Number.isFinite(n) && n > 0;

/**
 * The output size for a region of `rw`×`rh` full-resolution pixels. Sizes beyond the limits
 * are scaled down keeping their proportions (iipsrv squares distorted sizes; we do not).
 */
export function resolveSize(spec: SizeSpec, rw: number, rh: number, limits: SizeLimits, rule: UpscaleRule): Size {
  let w: number, h: number;
  switch (spec.type) {
    case 'max':
      w = rw;
      h = rh;
      break;
    case 'width':
      if (!positive(spec.w)) throw new ImageServerError('BAD_SIZE', 'Invalid size: width must be positive');
      w = spec.w;
      h = Math.max(1, Math.round((spec.w * rh) / rw));
      break;
    case 'height':
      if (!positive(spec.h)) throw new ImageServerError('BAD_SIZE', 'Invalid size: height must be positive');
      h = spec.h;
      w = Math.max(1, Math.round((spec.h * rw) / rh));
      break;
    case 'percent':
      if (!positive(spec.pct)) throw new ImageServerError('BAD_SIZE', 'Invalid size: percentage must be positive');
      w = Math.max(1, Math.round((rw * spec.pct) / 100));
      h = Math.max(1, Math.round((rh * spec.pct) / 100));
      break;
    case 'exact':
      if (!positive(spec.w) || !positive(spec.h)) {
        throw new ImageServerError('BAD_SIZE', 'Invalid size: width and height must be positive');
      }
      w = spec.w;
      h = spec.h;
      break;
    case 'fit': {
      if (!positive(spec.w) || !positive(spec.h)) {
        throw new ImageServerError('BAD_SIZE', 'Invalid size: width and height must be positive');
      }
      const scale = Math.min(spec.w / rw, spec.h / rh);
      w = Math.max(1, Math.min(spec.w, Math.round(rw * scale)));
      h = Math.max(1, Math.min(spec.h, Math.round(rh * scale)));
      break;
    }
  }
  w = Math.round(w);
  h = Math.round(h);
  if (!positive(w) || !positive(h)) throw new ImageServerError('BAD_SIZE', 'Invalid size');

  const upscaling = w > rw || h > rh;
  if (upscaling && rule === 'caret' && !spec.upscale) {
    throw new ImageServerError('UPSCALE_NOT_ALLOWED', 'Invalid size: upscaling must be prefixed with ^');
  }
  if (upscaling && !limits.allowUpscaling) {
    // Clamp to the region's own size, keeping the requested proportions.
    const s = Math.min(rw / w, rh / h);
    w = Math.max(1, Math.round(w * s));
    h = Math.max(1, Math.round(h * s));
  }
  if (spec.type === 'max' && spec.upscale) {
    // `^max` may grow up to the limits; without limits it is the region size.
    const s = growToLimits(w, h, limits);
    if (s > 1 && limits.allowUpscaling) {
      w = Math.round(w * s);
      h = Math.round(h * s);
    }
  }
  return clampToLimits({ width: w, height: h }, limits);
}

function growToLimits(w: number, h: number, limits: SizeLimits): number {
  let s = Infinity;
  if (limits.maxWidth > 0) s = Math.min(s, limits.maxWidth / w);
  if (limits.maxHeight > 0) s = Math.min(s, limits.maxHeight / h);
  if (limits.maxArea > 0) s = Math.min(s, Math.sqrt(limits.maxArea / (w * h)));
  return Number.isFinite(s) ? s : 1;
}

/** Scales a size down by one factor so that it fits every limit. */
export function clampToLimits(size: Size, limits: SizeLimits): Size {
  const s = growToLimits(size.width, size.height, limits);
  if (s >= 1) return size;
  return {
    width: Math.max(1, Math.floor(size.width * s)),
    height: Math.max(1, Math.floor(size.height * s)),
  };
}

/** The region, in the coordinates of `level`, that covers `rect` of the full image. */
export function regionAtLevel(levels: readonly Level[], level: number, rect: Rect): Rect {
  const full = levels[0];
  const l = levels[level];
  const sx = l.width / full.width;
  const sy = l.height / full.height;
  const x = Math.min(l.width - 1, Math.floor(rect.x * sx + 1e-9));
  const y = Math.min(l.height - 1, Math.floor(rect.y * sy + 1e-9));
  const right = Math.min(l.width, Math.max(x + 1, Math.ceil((rect.x + rect.width) * sx - 1e-9)));
  const bottom = Math.min(l.height, Math.max(y + 1, Math.ceil((rect.y + rect.height) * sy - 1e-9)));
  return { x, y, width: right - x, height: bottom - y };
}

/**
 * The smallest level that still has at least the output's number of pixels across the region,
 * so decoding cost follows output size (iipsrv's rule, with real level sizes). A level whose
 * region is short of the output by at most one pixel counts as sufficient, which absorbs
 * levels that were rounded down when the pyramid was built.
 */
export function chooseLevel(levels: readonly Level[], rect: Rect, out: Size): number {
  const full = levels[0];
  for (let i = levels.length - 1; i > 0; i--) {
    const l = levels[i];
    const rw = (rect.width * l.width) / full.width;
    const rh = (rect.height * l.height) / full.height;
    if (rw + 1 >= out.width && rh + 1 >= out.height) return i;
  }
  return 0;
}

/**
 * When a region at a size is exactly one tile of some level (as IIIF clients ask for tiles),
 * that tile; otherwise null. Edge tiles count at their cropped size.
 */
export function matchTile(levels: readonly Level[], rect: Rect, out: Size): { level: number; col: number; row: number } | null {
  const factors = scaleFactors(levels);
  const full = levels[0];
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i];
    const f = factors[i];
    const spanW = l.tileWidth * f;
    const spanH = l.tileHeight * f;
    if (rect.x % spanW !== 0 || rect.y % spanH !== 0) continue;
    const col = rect.x / spanW;
    const row = rect.y / spanH;
    if (!isTileInRange(l, col, row)) continue;
    const t = tileRect(l, col, row);
    const expectW = Math.min(spanW, full.width - rect.x);
    const expectH = Math.min(spanH, full.height - rect.y);
    if (rect.width !== expectW || rect.height !== expectH) continue;
    if (out.width === t.width && out.height === t.height) return { level: i, col, row };
  }
  return null;
}

// Protocol numbering: IIP resolutions, row-major tile indices, Zoomify and DeepZoom levels.

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
