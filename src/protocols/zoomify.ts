// The Zoomify protocol (behaviour spec §6, §13 #1 and #30): `<image>/ImageProperties.xml` and
// `<image>/TileGroup<N>/<z>-<x>-<y>.jpg`. The TileGroup number is ignored (clients compute it
// differently), Zoomify level z is IIP resolution z + discard (tiling.ts), tiles are always
// JPEG. Zoomify only knows square tiles: images tiled otherwise are served from a square
// virtual tiling of side = the tile width, rendered from the level. Pure.

import { ImageServerError } from '../core/errors.js';
import type { ImageInfo } from '../core/image-info.js';
import { NO_ROTATION } from '../core/view.js';
import { decodeValue } from './iip-commands.js';
import { plainTextError, type FormattedBody, type Protocol, type ProtocolAnswer, type ProtocolInput } from './protocol.js';
import { zoomifyLevel, zoomifyTileCount } from '../core/geometry.js';
import { squareTileSize, squareTileView } from './tiling.js';

/** The side of the square tiles a Zoomify client is told about: the full-resolution tile width. */
export const zoomifyTileSize = squareTileSize;

/** ImageProperties.xml as iipsrv writes it: no XML declaration, no trailing newline. */
export function imageProperties(info: ImageInfo): string {
  const ts = zoomifyTileSize(info);
  return (
    `<IMAGE_PROPERTIES WIDTH="${info.width}" HEIGHT="${info.height}" NUMTILES="${zoomifyTileCount(info, ts)}"` +
    ` NUMIMAGES="1" VERSION="1.8" TILESIZE="${ts}"/>`
  );
}

const PROPERTIES = /\/ImageProperties\.xml$/i;
const TILE_GROUP = /\/TileGroup[^/]*\/([^/]+)$/i;

/** `z-x-y[.ext]` → three integers (the extension is ignored); null when malformed. */
export function parseTileName(name: string): { z: number; x: number; y: number } | null {
  const m = /^(\d+)-(\d+)-(\d+)(?:\.[^.]*)?$/.exec(name);
  return m ? { z: Number(m[1]), x: Number(m[2]), y: Number(m[3]) } : null;
}

function identifierOf(raw: string, input: ProtocolInput): string {
  // A query value is form-encoded (`+` is a space) as FIF's; a URI_MAP path is a path.
  const id = decodeValue(raw, input.via === 'query');
  if (id === '') throw new ImageServerError('BAD_REQUEST', 'Zoomify: missing image identifier');
  return id;
}

function parse(input: ProtocolInput): ProtocolAnswer {
  const argument = input.argument;
  if (PROPERTIES.test(argument)) {
    return {
      kind: 'info',
      identifier: identifierOf(argument.replace(PROPERTIES, ''), input),
      variant: 'zoomify',
      format: (info): FormattedBody => ({ contentType: 'application/xml', body: imageProperties(info) }),
    };
  }
  const m = TILE_GROUP.exec(argument);
  const tile = m && parseTileName(m[1]);
  if (!m || !tile) {
    throw new ImageServerError('BAD_REQUEST', 'Zoomify: expected <image>/ImageProperties.xml or <image>/TileGroup<N>/<z>-<x>-<y>.jpg');
  }
  return {
    kind: 'image',
    identifier: identifierOf(argument.slice(0, m.index), input),
    isTile: true,
    view: (info) => {
      const ts = zoomifyTileSize(info);
      const level = zoomifyLevel(info, ts, tile.z);
      if (level === null) throw new ImageServerError('BAD_TILE', `Zoomify: level ${tile.z} does not exist`);
      return squareTileView(info, level, ts, tile.x, tile.y, { format: 'jpg', quality: 'default', rotation: NO_ROTATION });
    },
  };
}

export const zoomify: Protocol = {
  name: 'Zoomify',
  parse,
  formatError: plainTextError,
};
