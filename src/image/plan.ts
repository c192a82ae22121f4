// The render plan: which level to read, which rectangle of it, the output size, and whether
// a stored tile can be sent as it is. Pure: it works from ImageInfo and a ViewRequest only.

import { ImageServerError } from '../core/errors.js';
import {
  chooseLevel,
  isTileInRange,
  matchTile,
  regionAtLevel,
  resolveRegion,
  resolveSize,
  tileRect,
  type SizeLimits,
} from '../core/geometry.js';
import type { ImageInfo } from '../core/image-info.js';
import {
  hasProcessing,
  processingKey,
  type OutputFormat,
  type Processing,
  type Quality,
  type Rect,
  type Rotation,
  type TiffCodec,
  type ViewRequest,
} from '../core/view.js';

export interface RenderPlan {
  /** Pyramid level to read (0 = full resolution). */
  readonly level: number;
  /** Rectangle to read, in that level's pixels. */
  readonly rect: Rect;
  /** Output size before rotation. */
  readonly width: number;
  readonly height: number;
  readonly rotation: Rotation;
  readonly quality: Quality;
  readonly format: OutputFormat;
  readonly encoderQuality?: number;
  readonly tiffCodec?: TiffCodec;
  readonly processing?: Processing;
  readonly layers?: number;
  /** Set when the output is exactly one stored tile: enables the tile cache key and passthrough. */
  readonly tile?: { readonly col: number; readonly row: number };
  /** True when no pixel may change, so a stored encoded tile can be sent unchanged. */
  readonly passthroughCandidate: boolean;
  /** Normalised description for cache keys: equal plans give equal bytes. */
  readonly key: string;
}

export interface PlanOptions {
  readonly limits: SizeLimits;
  readonly codecPassthrough: boolean;
}

function tilePlan(info: ImageInfo, view: ViewRequest, level: number, col: number, row: number, opts: PlanOptions): RenderPlan {
  const l = info.levels[level];
  const rect = tileRect(l, col, row);
  const untouched =
    view.rotation.degrees % 360 === 0 &&
    !view.rotation.mirror &&
    (view.quality === 'default' || view.quality === 'color') &&
    view.encoderQuality === undefined &&
    !hasProcessing(view.processing) &&
    view.layers === undefined;
  return {
    ...commonPlan(view, level, rect, rect.width, rect.height),
    tile: { col, row },
    // CIELAB is converted by the server (§11.4): its stored tiles are never sent as they are.
    passthroughCandidate:
      opts.codecPassthrough && untouched && view.format === 'jpg' && info.bitsPerSample === 8 && info.colourSpace !== 'cielab',
  };
}

/** What every plan carries over from the view, with its level, rectangle and output size. */
function commonPlan(view: ViewRequest, level: number, rect: Rect, width: number, height: number): Omit<RenderPlan, 'passthroughCandidate'> {
  return {
    level,
    rect,
    width,
    height,
    rotation: view.rotation,
    quality: view.quality,
    format: view.format,
    encoderQuality: view.encoderQuality,
    tiffCodec: view.tiffCodec,
    processing: view.processing,
    layers: view.layers,
    key: planKey(level, rect, width, height, view),
  };
}

function planKey(level: number, r: Rect, w: number, h: number, view: ViewRequest): string {
  const rot = `${view.rotation.mirror ? '!' : ''}${view.rotation.degrees}`;
  return (
    `L${level}:${r.x},${r.y},${r.width},${r.height}:${w}x${h}:${rot}:${view.quality}:${view.format}:` +
    `${view.encoderQuality ?? ''}:${view.layers ?? ''}:${processingKey(view.processing)}${view.tiffCodec ? `:${view.tiffCodec}` : ''}`
  );
}

export function planView(info: ImageInfo, view: ViewRequest, opts: PlanOptions): RenderPlan {
  if (view.kind === 'tile') {
    const l = info.levels[view.level];
    if (!l || !isTileInRange(l, view.col, view.row)) {
      throw new ImageServerError('BAD_TILE', `Tile ${view.col},${view.row} at level ${view.level} does not exist`);
    }
    return tilePlan(info, view, view.level, view.col, view.row, opts);
  }
  const region = resolveRegion(view.region, info.width, info.height);
  const out = resolveSize(view.size, region.width, region.height, opts.limits, view.upscaleRule);
  const tile = matchTile(info.levels, region, out);
  if (tile) return tilePlan(info, view, tile.level, tile.col, tile.row, opts);
  const level = chooseLevel(info.levels, region, out);
  const rect = regionAtLevel(info.levels, level, region);
  return { ...commonPlan(view, level, rect, out.width, out.height), passthroughCandidate: false };
}
