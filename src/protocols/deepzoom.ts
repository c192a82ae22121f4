// The DeepZoom protocol (behaviour spec §7 with the fixes of §13 #29): `<image>.dzi` and
// `<image>_files/<L>/<x>_<y>.<ext>`. Levels inside the pyramid keep iipsrv's mapping and are
// served from the stored tiles; levels below the smallest pyramid level (and levels a pyramid
// does not have at the DeepZoom size) are rendered at the true DeepZoom size (tiling.ts).
// The extension is honoured: `.png` gives PNG, an extension we cannot encode is a 400.
// DeepZoom only knows square tiles: images tiled otherwise get a square virtual tiling of
// side = the tile width. Pure.

import { ImageServerError } from '../core/errors.js';
import type { ImageInfo } from '../core/image-info.js';
import { FORMAT_BY_EXTENSION, NO_ROTATION } from '../core/view.js';
import { decodeValue } from './iip-commands.js';
import { plainTextError, type FormattedBody, type Protocol, type ProtocolAnswer, type ProtocolInput } from './protocol.js';
import { deepZoomTileView, squareTileSize } from './tiling.js';

export const DEEPZOOM_XMLNS = 'http://schemas.microsoft.com/deepzoom/2008';

/** The DeepZoom tile size: the full-resolution tile width (square tiles). */
export const deepZoomTileSize = squareTileSize;

/** The `.dzi` document as iipsrv writes it (no XML declaration, no trailing newline). */
export function dziDocument(info: ImageInfo, format = 'jpg'): string {
  return (
    `<Image xmlns="${DEEPZOOM_XMLNS}" TileSize="${deepZoomTileSize(info)}" Overlap="0" Format="${format}">` +
    `<Size Width="${info.width}" Height="${info.height}"/></Image>`
  );
}

/** `<L>/<x>_<y>.<ext>` → numbers and the extension; null when malformed. */
export function parseTilePath(rest: string): { level: number; x: number; y: number; ext: string } | null {
  const m = /^(\d+)\/(\d+)_(\d+)\.([A-Za-z0-9]+)$/.exec(rest);
  return m ? { level: Number(m[1]), x: Number(m[2]), y: Number(m[3]), ext: m[4].toLowerCase() } : null;
}

function identifierOf(raw: string, input: ProtocolInput): string {
  const id = decodeValue(raw, input.via === 'query');
  if (id === '') throw new ImageServerError('BAD_REQUEST', 'DeepZoom: missing image identifier');
  return id;
}

function parse(input: ProtocolInput): ProtocolAnswer {
  const argument = input.argument;
  if (argument.toLowerCase().endsWith('.dzi')) {
    return {
      kind: 'info',
      identifier: identifierOf(argument.slice(0, -4), input),
      variant: 'dzi',
      format: (info): FormattedBody => ({ contentType: 'application/xml', body: dziDocument(info) }),
    };
  }
  const at = argument.lastIndexOf('_files/');
  const tile = at < 0 ? null : parseTilePath(argument.slice(at + 7));
  if (!tile) throw new ImageServerError('BAD_REQUEST', 'DeepZoom: expected <image>.dzi or <image>_files/<level>/<x>_<y>.<jpg|png>');
  const format = FORMAT_BY_EXTENSION[tile.ext];
  if (!format || !input.options.formats.includes(format)) {
    throw new ImageServerError('BAD_FORMAT', `DeepZoom: unsupported tile format: ${tile.ext}`);
  }
  return {
    kind: 'image',
    identifier: identifierOf(argument.slice(0, at), input),
    isTile: true,
    view: (info) =>
      deepZoomTileView(info, deepZoomTileSize(info), tile.level, tile.x, tile.y, { format, quality: 'default', rotation: NO_ROTATION }),
  };
}

export const deepzoom: Protocol = {
  name: 'DeepZoom',
  parse,
  formatError: plainTextError,
};
