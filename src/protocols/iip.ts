// The IIP protocol (behaviour spec §4), iipsrv-compatible with the fixes of §13: turns the
// neutral IipCommands (iip-commands.ts, which also states the ORDER RULE) into one answer —
// OBJ bodies (iip-obj.ts), one tile (JTL/PTL/WTL/ATL/TTL/JTLS), several tiles in FlashPix
// framing (TIL), a region (CVT) or raw samples (PFL, SPECTRA) — and formats IIP errors as
// complete `Error/<len>:<class> <number> <argument>` lines with well-formed headers.
// Resolutions are numbered 0 = smallest here and converted to our levels (0 = full) at once.
// Pure: no files, caches or sockets.

import { ImageServerError, type ErrorCode } from '../core/errors.js';
import { tileGrid, tileRect } from '../core/geometry.js';
import type { ImageInfo } from '../core/image-info.js';
import { hasProcessing, type OutputFormat, type Processing, type RegionView, type SizeSpec, type ViewRequest } from '../core/view.js';
import { IipError, decodeValue, parseIipCommands, type IipCommands, type IipErrorLine, type IipOutput } from './iip-commands.js';
import { CRLF, IIP_PROTOCOL_VERSION, NETFPX, formatObjects, isKnownObject, objectNeedsImage } from './iip-obj.js';
import {
  plainTextError,
  type BinaryBody,
  type FormattedBody,
  type Protocol,
  type ProtocolAnswer,
  type ProtocolInput,
  type ProtocolOptions,
  type RawSamples,
  type ViewSamples,
} from './protocol.js';
import { levelOfResolution, tilePosition } from '../core/geometry.js';
import { levelRectView, rotatedGrid, sourceRectOfRotatedTile, type ViewStyle } from './tiling.js';

/** The file name iipsrv gives every IIP error body. */
export const ERROR_DISPOSITION = 'inline;filename="IIPisAMadGameClosedToOurUnderstanding.netfpx"';

/** TIL answers at most this many tiles in one response (iipsrv has no limit; a whole level of a large image would be gigabytes). */
export const MAX_TIL_TILES = 1024;

/** TIL per-tile header bytes: compression type 2 (JPEG) and FlashPix subtype 0x00110000. */
const TIL_COMPRESSION_JPEG = Buffer.from([0x02, 0x00, 0x00, 0x00]);
const TIL_SUBTYPE = Buffer.from([0x00, 0x11, 0x00, 0x00]);
const CRLF_BYTES = Buffer.from(CRLF, 'latin1');

const CLASSIC_CODES: Readonly<Record<IipErrorLine['code'], ErrorCode>> = {
  '1 3': 'IIP_NO_IMAGE',
  '2 1': 'IIP_MALFORMED',
  '2 2': 'IIP_UNSUPPORTED_COMMAND',
  '3 2': 'IIP_UNSUPPORTED_OBJ',
};

/** One `Error/<len>:<class> <number> <argument>` line, complete; `<len>` counts UTF-8 bytes. */
export function errorLine(line: IipErrorLine): string {
  const text = `${line.code} ${line.argument}`;
  return `Error/${Buffer.byteLength(text)}:${text}${CRLF}`;
}

/** Encoder quality (QLT) in the range of the output format's encoder, as each iipsrv encoder clamps it. */
export function clampQuality(q: number, format: OutputFormat): number {
  const clamp = (lo: number, hi: number): number => Math.min(hi, Math.max(lo, Math.round(q)));
  switch (format) {
    case 'jpg':
      return clamp(1, 100);
    case 'png':
      return clamp(0, 9);
    case 'webp':
    case 'avif':
      return clamp(-1, 100);
    case 'tif':
      return clamp(0, 100);
  }
}

/** MINMAX entries for channels the image has (iipsrv ignores the others). */
function processingFor(p: Processing, info: ImageInfo): Processing {
  if (!p.minmax) return p;
  const minmax = p.minmax.filter((m) => m.channel === -1 || m.channel < info.channels);
  const { minmax: _drop, ...rest } = p;
  return minmax.length > 0 ? { ...rest, minmax } : rest;
}

/** Format, quality, rotation, QLT, processing and LYR of an IIP request, for a view in `format`. */
export function viewStyle(c: IipCommands, format: OutputFormat, info: ImageInfo): ViewStyle {
  const processing = processingFor(c.processing, info);
  return {
    format,
    quality: c.quality ?? 'default',
    rotation: c.rotation,
    ...(c.encoderQuality !== undefined ? { encoderQuality: clampQuality(c.encoderQuality, format) } : {}),
    // Only TIFF output has a codec to choose; leaving it out elsewhere keeps cache keys shared.
    ...(c.tiffCompression !== undefined && format === 'tif' ? { tiffCodec: c.tiffCompression } : {}),
    ...(hasProcessing(processing) ? { processing } : {}),
    ...(c.layers !== undefined ? { layers: c.layers } : {}),
  };
}

/** Error `2 1` (nothing can be produced) for an out-of-range resolution, tile or argument; status 400. */
function invalid(c: IipCommands, code: ErrorCode, why: string): IipError {
  return new IipError(code, [{ code: '2 1', argument: c.request }], why);
}

/** Our level index for the output's IIP resolution, or a 400 naming the valid range. */
function levelFor(c: IipCommands, info: ImageInfo, command: string, resolution: number): number {
  const level = levelOfResolution(info, resolution);
  if (level === null) {
    throw invalid(c, 'BAD_TILE', `${command}: resolution ${resolution} does not exist (0 to ${info.levels.length - 1})`);
  }
  return level;
}

/**
 * Tile `index` of IIP resolution `resolution`, numbered row-major on the grid the client sees:
 * the level rotated by ROT (§13 #21: tiles of a 90°/270° view are remapped, not just turned).
 * A tile that is a stored tile stays a TileView; others are rendered from the level's region.
 */
export function iipTileView(
  c: IipCommands,
  info: ImageInfo,
  command: string,
  resolution: number,
  index: number,
  format: OutputFormat,
): ViewRequest {
  const level = levelFor(c, info, command, resolution);
  const l = info.levels[level];
  const pos = tilePosition(rotatedGrid(l, c.rotation).grid, index);
  const rect = pos && sourceRectOfRotatedTile(l, c.rotation, pos.col, pos.row);
  if (!pos || !rect) throw invalid(c, 'BAD_TILE', `${command}: tile ${index} does not exist at resolution ${resolution}`);
  return levelRectView(info, level, rect, viewStyle(c, format, info));
}

/** TIL's tiles: the rectangle spanned by tiles `start` and `end`, column-major (x outer, y inner). */
export function tilTiles(c: IipCommands, info: ImageInfo, out: Extract<IipOutput, { command: 'TIL' }>): number[] {
  const level = levelFor(c, info, 'TIL', out.resolution);
  const { grid } = rotatedGrid(info.levels[level], c.rotation);
  const end = out.end < out.start ? out.start : out.end;
  const a = tilePosition(grid, out.start);
  const b = tilePosition(grid, end);
  if (!a || !b) throw invalid(c, 'BAD_TILE', `TIL: tiles ${out.start}-${end} do not exist at resolution ${out.resolution}`);
  const [x0, x1] = a.col <= b.col ? [a.col, b.col] : [b.col, a.col];
  const count = (x1 - x0 + 1) * (b.row - a.row + 1);
  if (count > MAX_TIL_TILES) {
    throw new ImageServerError('TOO_LARGE', `TIL: ${count} tiles asked for; at most ${MAX_TIL_TILES} are sent in one response`);
  }
  const tiles: number[] = [];
  for (let x = x0; x <= x1; x++) for (let y = a.row; y <= b.row; y++) tiles.push(y * grid.cols + x);
  return tiles;
}

/** TIL's body: per tile `Tile,<res>,<n>,0/<len+8>:` + compression type + subtype + JPEG + CRLF (§4.4). */
export function frameTiles(resolution: number, tiles: readonly number[], bodies: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [];
  tiles.forEach((n, i) => {
    const jpeg = bodies[i];
    parts.push(Buffer.from(`Tile,${resolution},${n},0/${jpeg.length + 8}:`, 'latin1'), TIL_COMPRESSION_JPEG, TIL_SUBTYPE, jpeg, CRLF_BYTES);
  });
  return Buffer.concat(parts);
}

/** CVT: the RGN region (or the whole image) at WID/HEI (§4.6, with §13 #13: no size → the region's own). */
export function cvtView(c: IipCommands, info: ImageInfo, format: OutputFormat): RegionView {
  let size: SizeSpec;
  if (c.width !== undefined && c.height !== undefined) size = { type: 'fit', w: c.width, h: c.height, upscale: false };
  else if (c.width !== undefined) size = { type: 'width', w: c.width, upscale: false };
  else if (c.height !== undefined) size = { type: 'height', h: c.height, upscale: false };
  else size = { type: 'max', upscale: false };
  return {
    kind: 'region',
    region: c.region ? { type: 'fraction', ...c.region } : { type: 'full' },
    size,
    upscaleRule: 'allowed',
    ...viewStyle(c, format, info),
  };
}

/** True on little-endian hosts: decoders hand 16- and 32-bit samples over in native order. */
const NATIVE_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Sample `i` (interleaved index) of raw samples, as a number. */
export function sampleAt(raw: RawSamples, i: number): number {
  const d = raw.data;
  if (raw.bitsPerSample === 8) return d[i];
  if (raw.bitsPerSample === 16) return NATIVE_LE ? d.readUInt16LE(i * 2) : d.readUInt16BE(i * 2);
  if (raw.sampleFormat === 'float') return NATIVE_LE ? d.readFloatLE(i * 4) : d.readFloatBE(i * 4);
  return NATIVE_LE ? d.readUInt32LE(i * 4) : d.readUInt32BE(i * 4);
}

/** PFL's JSON: every sample of the line, interleaved per pixel, in native depth (§4.9). */
export function formatProfile(raw: RawSamples): string {
  const n = raw.width * raw.height * raw.channels;
  const values: string[] = [];
  for (let i = 0; i < n; i++) {
    const v = sampleAt(raw, i);
    values.push(raw.sampleFormat === 'float' ? v.toFixed(9) : String(v));
  }
  return `{\n\t"profile": [${values.join(',')}]\n}`;
}

const XML_ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
const xmlEscape = (s: string): string => s.replace(/[&<>"']/g, (c) => XML_ENTITIES[c]);

/**
 * SPECTRA's XML (§4.9): one point per view, its horizontal angle (or a stack page's name) as
 * the wavelength, the first channel normalised to 0..1 for integer data.
 */
export function formatSpectra(views: readonly ViewSamples[]): string {
  const points = views.map(({ horizontal, name, samples }) => {
    const v = sampleAt(samples, 0);
    const reflectance = samples.bitsPerSample === 8 ? v / 255 : samples.bitsPerSample === 16 ? v / 65535 : v;
    return `\t<point>\n\t\t<wavelength>${name !== undefined ? xmlEscape(name) : horizontal}</wavelength>\n\t\t<reflectance>${reflectance.toFixed(6)}</reflectance>\n\t</point>\n`;
  });
  return '<?xml version="1.0" encoding="UTF-8"?>\n<spectra>\n' + points.join('') + '</spectra>';
}

const badPoint = (why: string): ImageServerError => new ImageServerError('BAD_REGION', why);

/** The answer for parsed IIP commands; throws IipError when the request is in error. */
export function answerFor(c: IipCommands, options: ProtocolOptions): ProtocolAnswer {
  const errors: IipErrorLine[] = [...c.errors];
  const out = c.output;
  if (out?.command === 'OBJ') {
    for (const o of c.objects) {
      if (!isKnownObject(o)) errors.push({ code: '3 2', argument: o });
      else if (c.image === undefined && objectNeedsImage(o)) errors.push({ code: '1 3', argument: o });
    }
  } else if (out && 'format' in out && c.image === undefined) {
    errors.push({ code: '1 3', argument: out.argument });
  } else if (out && (out.command === 'TIL' || out.command === 'PFL' || out.command === 'SPECTRA') && c.image === undefined) {
    // PFL without FIF crashed iipsrv (§13 #22).
    errors.push({ code: '1 3', argument: out.argument });
  }
  if (!out && errors.length === 0) errors.push({ code: '2 1', argument: c.request });
  if (errors.length > 0) throw new IipError(CLASSIC_CODES[errors[0].code], errors);
  if (!out) throw new Error('unreachable: no output and no error');

  const identifier = c.image ?? '';
  const member = c.member;
  const rot = `${c.rotation.mirror ? '!' : ''}${c.rotation.degrees}`;
  switch (out.command) {
    case 'OBJ': {
      const build = (info?: ImageInfo): FormattedBody => {
        const obj = formatObjects(c.objects, { info, rotation: c.rotation, member, options });
        if (obj.body === '' && !obj.iipHeader) throw new IipError('IIP_MALFORMED', [{ code: '2 1', argument: c.request }]);
        return {
          contentType: obj.contentType,
          body: obj.body,
          ...(obj.iipHeader ? { headers: [['IIP', IIP_PROTOCOL_VERSION] as const] } : {}),
        };
      };
      if (c.image === undefined) return { kind: 'fixed', body: build() };
      return {
        kind: 'info',
        identifier,
        ...(member ? { member } : {}),
        variant: `iip-obj|${c.objects.join('&')}|${rot}`,
        format: (info) => build(info),
      };
    }
    case 'JTL':
    case 'PTL':
    case 'WTL':
    case 'ATL':
    case 'TTL':
    case 'JTLS':
      return {
        kind: 'image',
        identifier,
        ...(member ? { member } : {}),
        isTile: true,
        view: (info) => iipTileView(c, info, out.command, out.resolution, out.tile, out.format),
      };
    case 'TIL':
      return {
        kind: 'tiles',
        identifier,
        ...(member ? { member } : {}),
        // TIL is always JPEG.
        views: (info) => tilTiles(c, info, out).map((n) => iipTileView(c, info, 'TIL', out.resolution, n, 'jpg')),
        combine: (bodies, info): BinaryBody => ({ contentType: NETFPX, body: frameTiles(out.resolution, tilTiles(c, info, out), bodies) }),
      };
    case 'CVT':
      return { kind: 'image', identifier, ...(member ? { member } : {}), view: (info) => cvtView(c, info, out.format) };
    case 'PFL':
      return {
        kind: 'samples',
        identifier,
        ...(member ? { member } : {}),
        ...(c.layers !== undefined ? { layers: c.layers } : {}),
        variant: `pfl|${c.layers ?? ''}|${out.resolution}:${out.x1},${out.y1}-${out.x2},${out.y2}`,
        region: (info) => {
          const level = levelFor(c, info, 'PFL', out.resolution);
          const { width: lw, height: lh } = info.levels[level];
          const { x1, y1, x2, y2 } = out;
          // Horizontal when x2 > x1, else vertical when y2 > y1, else one point; end-exclusive.
          const width = x2 > x1 ? x2 - x1 : 1;
          const height = x2 > x1 ? 1 : y2 > y1 ? y2 - y1 : 1;
          if (x1 < 0 || y1 < 0 || x1 + width > lw || y1 + height > lh) {
            throw badPoint(`PFL: invalid coordinates ${x1},${y1}-${x2},${y2} for a ${lw}×${lh} resolution`);
          }
          return { level, rect: { x: x1, y: y1, width, height } };
        },
        format: ([view]) => ({ contentType: 'application/json', body: formatProfile(view.samples) }),
      };
    case 'SPECTRA':
      return {
        kind: 'samples',
        identifier,
        ...(member ? { member } : {}),
        ...(c.layers !== undefined ? { layers: c.layers } : {}),
        variant: `spectra|${c.layers ?? ''}|${out.resolution},${out.tile},${out.x},${out.y}`,
        region: (info) => {
          const level = levelFor(c, info, 'SPECTRA', out.resolution);
          const l = info.levels[level];
          const pos = tilePosition(tileGrid(l), out.tile);
          if (!pos) throw invalid(c, 'BAD_TILE', `SPECTRA: tile ${out.tile} does not exist at resolution ${out.resolution}`);
          const t = tileRect(l, pos.col, pos.row);
          if (out.x < 0 || out.y < 0 || out.x >= t.width || out.y >= t.height) {
            throw badPoint('SPECTRA: x,y coordinates outside of tile boundaries');
          }
          return { level, rect: { x: t.x + out.x, y: t.y + out.y, width: 1, height: 1 } };
        },
        // Every horizontal view of a sequence is a wavelength, as iipsrv lists them.
        everyView: true,
        format: (views) => ({ contentType: 'application/xml', body: formatSpectra(views) }),
      };
    default:
      // IIIF=, Zoomify= and DeepZoom= are routed to their own modules by the handler.
      throw new ImageServerError('BAD_REQUEST', `IIP: ${out.command} requests are answered by the ${out.command} protocol`);
  }
}

/** A view with the IIP setters of `c` added where the view does not set them itself. */
function overlayView(view: ViewRequest, c: IipCommands, info: ImageInfo): ViewRequest {
  const own = Object.fromEntries(Object.entries(view.processing ?? {}).filter(([, v]) => v !== undefined)) as Processing;
  const processing: Processing = { ...processingFor(c.processing, info), ...own };
  const quality = view.quality === 'default' && c.quality ? c.quality : view.quality;
  const encoderQuality = view.encoderQuality ?? (c.encoderQuality !== undefined ? clampQuality(c.encoderQuality, view.format) : undefined);
  const layers = view.layers ?? c.layers;
  const tiffCodec = view.tiffCodec ?? (view.format === 'tif' ? c.tiffCompression : undefined);
  const { processing: _p, encoderQuality: _q, layers: _l, tiffCodec: _t, ...rest } = view;
  return {
    ...rest,
    quality,
    ...(encoderQuality !== undefined ? { encoderQuality } : {}),
    ...(tiffCodec !== undefined ? { tiffCodec } : {}),
    ...(hasProcessing(processing) ? { processing } : {}),
    ...(layers !== undefined ? { layers } : {}),
  };
}

/**
 * IIP setters around an IIIF=, Zoomify= or DeepZoom= command apply to it (§4.1), e.g.
 * `CNT=1.5&DeepZoom=…`: processing, COL, QLT and LYR are added to the delegated view where it
 * does not set them itself, and SDS selects the member. ROT is not applied: IIIF has its own
 * rotation, and a viewer of Zoomify or DeepZoom tiles would put turned tiles in unturned places.
 */
export function withIipSetters(answer: ProtocolAnswer, c: IipCommands): ProtocolAnswer {
  const member = c.member;
  switch (answer.kind) {
    case 'image':
      return {
        ...answer,
        ...(answer.member || !member ? {} : { member }),
        view: (info) => overlayView(answer.view(info), c, info),
      };
    case 'info':
      return answer.member || !member ? answer : { ...answer, member };
    default:
      return answer;
  }
}

function parse(input: ProtocolInput): ProtocolAnswer {
  // URI_MAP with IIP: the path names the image (a path: `+` is a plus) and the query string, if
  // any, carries the commands.
  const image = input.via === 'path' ? decodeValue(input.argument, false) : undefined;
  const request = input.request ?? (input.via === 'path' ? '' : input.argument);
  const commands = input.commands ?? parseIipCommands(request, { formats: input.options.formats, image });
  return answerFor(commands, input.options);
}

/**
 * IIP errors: IipError as `Error/` lines with the netfpx type and iipsrv's file name as a real
 * header (§13 #3, #4), status 400 — or 200 for the four classic codes when IIP_ERROR_STATUS_200
 * is set. Anything else (image not found, bad region, unsupported file) as text/plain with its
 * own status; those messages never hold paths.
 */
export function formatIipError(err: ImageServerError, input: ProtocolInput | undefined): FormattedBody {
  if (err instanceof IipError) {
    const classic = err.code.startsWith('IIP_');
    return {
      contentType: NETFPX,
      body: err.lines.map(errorLine).join(''),
      headers: [['Content-Disposition', ERROR_DISPOSITION]],
      ...(classic && input?.options.iipErrorStatus200 ? { status: 200 } : {}),
    };
  }
  return plainTextError(err);
}

export const iip: Protocol = {
  name: 'IIP',
  parse,
  formatError: formatIipError,
};
