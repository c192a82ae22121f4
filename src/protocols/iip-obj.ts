// IIP OBJ responses (behaviour spec §4.2): the body lines byte for byte as iipsrv writes them
// (CRLF line ends, `Name:value` without a space, `Min-Max-sample-values` with its double
// spaces, resolutions smallest first), the single metadata fields, and the `metadata` JSON,
// which unlike iipsrv's is built with JSON.stringify so every value is escaped.

import type { ImageInfo } from '../core/image-info.js';
import type { Rotation } from '../core/view.js';
import type { ImageMember, ProtocolOptions } from './protocol.js';
import { swapsAxes } from '../core/geometry.js';

export const NETFPX = 'application/vnd.netfpx';
export const CRLF = '\r\n';
/** The version named by `OBJ=IIP,1.0`, sent as the response header `IIP: 1.3`. */
export const IIP_PROTOCOL_VERSION = '1.3';
export const IIP_SERVER = 'IIP-server:3.65';
export const IIP_OPT_COMM = 'IIP-opt-comm:CVT CNT QLT JTL JTLS WID HEI RGN MINMAX SHD CMP INV CTW';
export const IIP_OPT_OBJ = 'IIP-opt-obj:Horizontal-views Vertical-views Tile-size Bits-per-channel Min-Max-sample-values Resolutions';

/** Metadata fields answered with their raw value (text/plain; application/xml for xmp). */
export const METADATA_FIELDS: readonly string[] = [
  'rights',
  'title',
  'description',
  'creator',
  'keywords',
  'comment',
  'last-author',
  'rev-number',
  'edit-time',
  'last-printed',
  'date',
  'last-save-dtm',
  'software',
  'make',
  'model',
  'xmp',
  'scale',
];

/** `summary-info` is these fields, one line each. */
const SUMMARY_FIELDS = ['rights', 'description', 'creator', 'date', 'software'];

/** Objects answered without an image. */
const IMAGE_FREE = new Set(['iip-server', 'iip-opt-comm', 'iip-opt-obj']);

const IMAGE_OBJECTS = new Set([
  'basic-info',
  'max-size',
  'resolution-number',
  'tile-size',
  'bits-per-channel',
  'horizontal-views',
  'vertical-views',
  'min-max-sample-values',
  'resolutions',
  'dpi',
  'stack',
  'metadata',
  'summary-info',
  ...METADATA_FIELDS,
]);

/** `OBJ=IIP,<anything>`: the protocol version header rather than a body line. */
export const isIipVersionObject = (obj: string): boolean => obj.startsWith('iip,');

/** True for every object this server answers (the argument is lower-case). */
export function isKnownObject(obj: string): boolean {
  return isIipVersionObject(obj) || IMAGE_FREE.has(obj) || IMAGE_OBJECTS.has(obj) || obj.includes('colorspace');
}

/** True when answering the object needs an image (FIF). */
export function objectNeedsImage(obj: string): boolean {
  return !isIipVersionObject(obj) && !IMAGE_FREE.has(obj);
}

/** C's `%.9g`: nine significant digits, trailing zeros dropped, exponent form outside 1e-4..1e9. */
export function formatG9(x: number): string {
  if (x === 0 || !Number.isFinite(x)) return x === 0 ? '0' : String(x);
  const exp = Math.floor(Math.log10(Math.abs(Number(x.toPrecision(9)))));
  if (exp < -4 || exp >= 9) {
    const [mant, e] = x.toExponential(8).split('e');
    const m = mant.includes('.') ? mant.replace(/0+$/, '').replace(/\.$/, '') : mant;
    const n = Number(e);
    return `${m}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  const fixed = x.toPrecision(9);
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

/** `Colorspace,0-<n−1>,0:<calibrated> 0 <type> <planes>`: 3 sRGB, 1 grey, 4 CIELAB (calibrated). */
export function colorspaceLine(info: ImageInfo): string {
  const last = info.levels.length - 1;
  switch (info.colourSpace) {
    case 'cielab':
      return `Colorspace,0-${last},0:1 0 4 3 0 1 2`;
    case 'grey':
    case 'binary':
      return `Colorspace,0-${last},0:0 0 1 1 0`;
    default:
      return `Colorspace,0-${last},0:0 0 3 3 0 1 2`;
  }
}

/** Pixels per metre from the file's resolution, as iipsrv's `DPI` line reports it. */
function pixelsPerMetre(info: ImageInfo): { x: number; y: number } | undefined {
  const r = info.resolution;
  if (!r || !(r.x > 0) || !(r.y > 0) || !Number.isFinite(r.x) || !Number.isFinite(r.y)) return undefined;
  const f = r.unit === 'in' ? 1 / 0.0254 : 100;
  return { x: r.x * f, y: r.y * f };
}

/** A metadata field, with COPYRIGHT standing in for missing rights (as FIF does in iipsrv). */
function field(info: ImageInfo, name: string, options: ProtocolOptions): string {
  const v = info.metadata[name] ?? '';
  if (name === 'rights' && v.trim() === '') return options.copyright;
  return v;
}

/**
 * `OBJ=metadata`: iipsrv's layout (`{`, one tab-indented `"key": "value"` line per non-empty
 * field in key order, `}`) with keys and values escaped by JSON.stringify. `icc`, `xmp` and the
 * binary `exif` are left out.
 */
export function metadataJson(info: ImageInfo, options: ProtocolOptions): string {
  const all: Record<string, string> = { ...info.metadata };
  const rights = field(info, 'rights', options);
  if (rights) all.rights = rights;
  const lines = Object.keys(all)
    .filter((k) => !['icc', 'xmp', 'exif'].includes(k) && typeof all[k] === 'string' && all[k] !== '')
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((k) => `\t${JSON.stringify(k)}: ${JSON.stringify(all[k])}`);
  return lines.length === 0 ? '{\n}' : `{\n${lines.join(',\n')}\n}`;
}

/**
 * `OBJ=stack` (§4.3): the members of an image stack as a JSON array of `{"id", "name",
 * "scale"}`, one member per line, every key always there (an unnamed member's name is empty,
 * an unknown scale 1).
 */
export function stackJson(info: ImageInfo): string {
  const members = (info.stack ?? []).map((m, id) => `\t{"id": ${id}, "name": ${JSON.stringify(m.name ?? '')}, "scale": ${m.scale ?? 1}}`);
  return members.length === 0 ? '[\n]' : `[\n${members.join(',\n')}\n]`;
}

export interface ObjContext {
  /** Absent when the request has no FIF; only image-free objects are asked for then. */
  readonly info?: ImageInfo;
  readonly rotation: Rotation;
  readonly member?: ImageMember;
  readonly options: ProtocolOptions;
}

export interface ObjBody {
  readonly contentType: string;
  readonly body: string;
  /** True when `OBJ=IIP,…` was asked for: the `IIP: 1.3` header goes with the body. */
  readonly iipHeader: boolean;
}

/**
 * The combined body of several OBJ commands, in request order. The content type is netfpx
 * unless a metadata field or `metadata` set another (the last one wins, as in iipsrv).
 * Unknown objects must have been rejected (error `3 2`) before.
 */
export function formatObjects(objects: readonly string[], ctx: ObjContext): ObjBody {
  const lines: string[] = [];
  let contentType = NETFPX;
  let iipHeader = false;
  const info = ctx.info;
  const need = (): ImageInfo => {
    if (!info) throw new Error('OBJ: an image is needed for this object');
    return info;
  };
  const maxSize = (): string => {
    const i = need();
    return swapsAxes(ctx.rotation) ? `Max-size:${i.height} ${i.width}` : `Max-size:${i.width} ${i.height}`;
  };
  const metadataField = (name: string): void => {
    const v = field(need(), name, ctx.options);
    if (v === '') return; // an empty field writes nothing
    contentType = name === 'xmp' ? 'application/xml' : 'text/plain';
    lines.push(v);
  };
  for (const obj of objects) {
    if (isIipVersionObject(obj)) {
      iipHeader = true;
      continue;
    }
    switch (obj) {
      case 'iip-server':
        lines.push(IIP_SERVER);
        break;
      case 'iip-opt-comm':
        lines.push(IIP_OPT_COMM);
        break;
      case 'iip-opt-obj':
        lines.push(IIP_OPT_OBJ);
        break;
      case 'basic-info':
        lines.push(IIP_SERVER, maxSize(), `Resolution-number:${need().levels.length}`, colorspaceLine(need()));
        break;
      case 'max-size':
        lines.push(maxSize());
        break;
      case 'resolution-number':
        lines.push(`Resolution-number:${need().levels.length}`);
        break;
      case 'tile-size': {
        // The full-resolution level's real tile width and height (§13 #1).
        const l = need().levels[0];
        lines.push(`Tile-size:${l.tileWidth} ${l.tileHeight}`);
        break;
      }
      case 'bits-per-channel':
        lines.push(`Bits-per-channel:${need().bitsPerSample}`);
        break;
      case 'horizontal-views':
        // A sequence lists its angles; a single image is its one view, (0, 90).
        lines.push(`Horizontal-views:${(need().views?.horizontal ?? [0]).join(' ')}`);
        break;
      case 'vertical-views':
        lines.push(`Vertical-views:${(need().views?.vertical ?? [90]).join(' ')}`);
        break;
      case 'min-max-sample-values': {
        const i = need();
        let s = 'Min-Max-sample-values:';
        for (let ch = 0; ch < i.channels; ch++) {
          s += ` ${formatG9(i.minValues[ch] ?? 0)} `;
          s += ` ${formatG9(i.maxValues[ch] ?? 0)} `;
        }
        lines.push(s.slice(0, -1));
        break;
      }
      case 'resolutions':
        lines.push(
          `Resolutions:${need()
            .levels.map((l) => `${l.width} ${l.height}`)
            .reverse()
            .join(',')}`,
        );
        break;
      case 'dpi': {
        const ppm = pixelsPerMetre(need());
        if (ppm) lines.push(`DPI:${ppm.x.toFixed(6)} ${ppm.y.toFixed(6)}`);
        break;
      }
      case 'stack': {
        // Only image stacks have one; a single image writes nothing.
        const info = need();
        if (info.stack) {
          contentType = 'application/json';
          lines.push(stackJson(info));
        }
        break;
      }
      case 'metadata':
        contentType = 'application/json';
        lines.push(metadataJson(need(), ctx.options));
        break;
      case 'summary-info':
        for (const f of SUMMARY_FIELDS) metadataField(f);
        break;
      default:
        if (METADATA_FIELDS.includes(obj)) metadataField(obj);
        else if (obj.includes('colorspace')) lines.push(colorspaceLine(need()));
    }
  }
  return { contentType, body: lines.map((l) => l + CRLF).join(''), iipHeader };
}
