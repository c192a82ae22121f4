// IIP request parsing (behaviour spec §3.2, §4.1): the request string is split into commands
// as iipsrv splits it, and every command is folded into one neutral IipCommands value — the
// image, the view setters, the processing, the OBJ list and the one output command. Nothing
// here needs the image or does I/O; iip.ts turns the result into an answer.
//
// ORDER RULE. iipsrv runs commands in request order, so `JTL=1,0&QLT=5` ignores the QLT and
// two output commands write two responses back to back. We apply commands in one well-defined
// way whatever order they come in:
//   1. every setter (FIF, SDS, QLT, WID, HEI, RGN, ROT, LYR, MINMAX, CNT, GAM, INV, CMP, COL,
//      CTW, CNV, SHD, ICC) is collected first, wherever it appears; when a setter is repeated,
//      the last one wins (MINMAX accumulates per channel);
//   2. then ONE output command produces the response: the first of JTL, JTLS, PTL, WTL, ATL,
//      TTL, TIL, CVT, PFL, SPECTRA, IIIF, Zoomify, DeepZoom, or the OBJ group. All OBJ commands
//      together count as one output at the position of the first and combine into one body.
//      Later output commands are ignored and reported in `notes` (the handler logs them).
// So `JTL=1,0&QLT=5` does apply QLT, and setters placed before or after IIIF=, Zoomify= or
// DeepZoom= apply to those too.

import { ImageServerError, type ErrorCode } from '../core/errors.js';
import {
  FORMAT_BY_EXTENSION,
  NO_ROTATION,
  type Colormap,
  type OutputFormat,
  type Processing,
  type Quality,
  type Rotation,
  type TiffCodec,
} from '../core/view.js';
import { decodePercent } from './percent.js';
import type { ImageMember } from './protocol.js';

/** One line of an IIP error body: `<class> <number>` and its argument. */
export interface IipErrorLine {
  /** `2 1` malformed request, `2 2` unsupported command, `3 2` unsupported object, `1 3` no image. */
  readonly code: '1 3' | '2 1' | '2 2' | '3 2';
  readonly argument: string;
}

/** An error answered with IIP's `Error/<len>:<class> <number> <argument>` body (one line each). */
export class IipError extends ImageServerError {
  readonly lines: readonly IipErrorLine[];
  constructor(code: ErrorCode, lines: readonly IipErrorLine[], message?: string) {
    super(code, message ?? lines.map((l) => `IIP error ${l.code} ${l.argument}`).join('; '));
    this.lines = lines;
  }
}

/** Tile output commands and the format each one produces. */
export const TILE_COMMANDS = { JTL: 'jpg', PTL: 'png', WTL: 'webp', ATL: 'avif', TTL: 'tif' } as const satisfies Record<
  string,
  OutputFormat
>;
export type TileCommand = keyof typeof TILE_COMMANDS;

/** Output commands handled by another protocol module with the IIP setters applied. */
export const DELEGATED = ['IIIF', 'Zoomify', 'DeepZoom'] as const;
export type DelegatedCommand = (typeof DELEGATED)[number];

export type IipOutput =
  /** The OBJ group (see `objects`). */
  | { readonly command: 'OBJ' }
  | {
      readonly command: TileCommand | 'JTLS';
      readonly format: OutputFormat;
      readonly resolution: number;
      readonly tile: number;
      readonly argument: string;
    }
  | { readonly command: 'TIL'; readonly resolution: number; readonly start: number; readonly end: number; readonly argument: string }
  | { readonly command: 'CVT'; readonly format: OutputFormat; readonly argument: string }
  | {
      readonly command: 'PFL';
      readonly resolution: number;
      readonly x1: number;
      readonly y1: number;
      readonly x2: number;
      readonly y2: number;
      readonly argument: string;
    }
  | {
      readonly command: 'SPECTRA';
      readonly resolution: number;
      readonly tile: number;
      readonly x: number;
      readonly y: number;
      readonly argument: string;
    }
  | { readonly command: DelegatedCommand; readonly argument: string };

/** A region as fractions (0..1) of the full image, as RGN gives it. */
export interface FractionRegion {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

/** Everything an IIP request asks for, independent of command order. */
export interface IipCommands {
  /** The request string the commands came from (the argument of error `2 1`). */
  readonly request: string;
  /** FIF: the image path, decoded. */
  readonly image?: string;
  /** SDS / JTLS angles; absent means the default view (0, 90). */
  readonly member?: ImageMember;
  /** OBJ arguments, lower-cased, in request order. */
  readonly objects: readonly string[];
  /** The one output command (see the order rule); absent when there is none. */
  readonly output?: IipOutput;
  readonly processing: Processing;
  /** COL: `gray` or `bitonal`. */
  readonly quality?: Quality;
  /** ROT */
  readonly rotation: Rotation;
  /** QLT, as given; each encoder clamps it to its own range. */
  readonly encoderQuality?: number;
  /** QLT=<codec>:<q>: the TIFF output compression asked for (lzw, deflate, jpeg, webp, zstd, none). */
  readonly tiffCompression?: TiffCodec;
  /** LYR */
  readonly layers?: number;
  /** WID, HEI: requested CVT size. */
  readonly width?: number;
  readonly height?: number;
  /** RGN, each value clamped to [0, 1]. */
  readonly region?: FractionRegion;
  /** Errors in iipsrv's classes; when any, the response is the error lines only. */
  readonly errors: readonly IipErrorLine[];
  /** Things deliberately ignored (later output commands, unusable values), for the log. */
  readonly notes: readonly string[];
}

export interface ParseOptions {
  /** Output formats the encoder can produce (PTL, WTL, ATL, TTL exist only for those). */
  readonly formats: readonly string[];
  /** URI_MAP with IIP: the image path from the request path, already decoded. */
  readonly image?: string;
}

// ---------------------------------------------------------------------------------------------
// Tokens and values

/**
 * iipsrv's tokenising (§3.2): split at `&`, each token at its first `=`; a token without `=` is
 * name = value = token (a bare `INV` works); pairs whose name or value is empty are dropped.
 */
export function tokenise(request: string): Array<readonly [string, string]> {
  const out: Array<readonly [string, string]> = [];
  for (const token of request.split('&')) {
    const eq = token.indexOf('=');
    const name = eq < 0 ? token : token.slice(0, eq);
    const value = eq < 0 ? token : token.slice(eq + 1);
    if (name === '' || value === '') continue;
    out.push([name, value]);
  }
  return out;
}

/** Decodes a query value: `+` is a space (form encoding) unless `plusIsSpace` is false (a path). */
export function decodeValue(s: string, plusIsSpace = true): string {
  return decodePercent(s, 'IIP', plusIsSpace);
}

/** A setter value decoded, or as sent when it does not decode. */
function lenientDecode(s: string): string {
  try {
    return decodeValue(s);
  } catch {
    return s;
  }
}

const INTEGER = /^\s*([+-]?\d+)\s*$/;
const NUMBER = /^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*$/;

/** A whole integer field (`12`, ` 3 `), else NaN. */
export function int(s: string | undefined): number {
  const m = s === undefined ? null : INTEGER.exec(s);
  return m ? Number(m[1]) : NaN;
}

/** A whole decimal field (`1.5`, `.5`, `2e-1`), else NaN. */
export function num(s: string | undefined): number {
  const m = s === undefined ? null : NUMBER.exec(s);
  return m ? Number(m[1]) : NaN;
}

/** Integers separated by `sep`, exactly `count` of them, else null. */
function ints(s: string, sep: string | RegExp, count: number): number[] | null {
  const parts = s.split(sep);
  if (parts.length !== count) return null;
  const values = parts.map(int);
  return values.every(Number.isFinite) ? values : null;
}

// ---------------------------------------------------------------------------------------------
// Processing values

const COLORMAPS: readonly Colormap[] = ['hot', 'cold', 'jet', 'blue', 'green', 'red'];

/**
 * The named CNV kernels (3×3, row-major): horizontal-gradient Sobel, Prewitt and Scharr, the
 * 8-neighbour Laplacian, a 3×3 Gaussian (normalised by its sum when applied), a sharpening
 * kernel and an emboss kernel, as iipsrv defines them.
 */
export const NAMED_KERNELS: Readonly<Record<string, readonly number[]>> = {
  sobel: [-1, 0, 1, -2, 0, 2, -1, 0, 1],
  prewitt: [1, 0, -1, 1, 0, -1, 1, 0, -1],
  scharr: [-3, 0, 3, -10, 0, 10, -3, 0, 3],
  laplace: [-1, -1, -1, -1, 8, -1, -1, -1, -1],
  gaussian: [1, 2, 1, 2, 4, 2, 1, 2, 1],
  sharpen: [0, -1, 0, -1, 5, -1, 0, -1, 0],
  emboss: [-2, -1, 0, -1, 1, 1, 0, 1, 2],
};

/** `[a,b,c;d,e,f]` → rows of numbers (brackets optional); null when any entry is not a number. */
export function parseMatrix(s: string): number[][] | null {
  const inner = s.trim().replace(/^\[/, '').replace(/\]$/, '');
  if (inner.trim() === '') return null;
  const rows = inner.split(';').map((row) => row.split(',').map(num));
  if (rows.some((r) => r.length === 0 || !r.every(Number.isFinite))) return null;
  return rows;
}

/** CNV: a named kernel, or an explicit square kernel of odd side up to 5; null when unusable. */
export function parseKernel(s: string): number[] | null {
  const name = s.trim().replace(/^\[/, '').replace(/\]$/, '').trim().toLowerCase();
  if (Object.hasOwn(NAMED_KERNELS, name)) return [...NAMED_KERNELS[name]];
  const rows = parseMatrix(s.replace(/;/g, ','));
  if (!rows) return null;
  const k = rows[0];
  const side = Math.round(Math.sqrt(k.length));
  if (side * side !== k.length || side % 2 === 0 || side > 5) return null;
  return k;
}

/** CTW: rows of equal length (one per output channel, one column per input channel). */
export function parseTwist(s: string): number[][] | null {
  const rows = parseMatrix(s);
  if (!rows || rows.some((r) => r.length !== rows[0].length)) return null;
  return rows;
}

/** ROT: `[!]deg`, quarter turns only (negative and ≥ 360 normalised); null for anything else. */
export function parseRot(s: string): Rotation | null {
  const mirror = s.startsWith('!');
  const n = num(mirror ? s.slice(1) : s);
  if (!Number.isFinite(n) || n % 90 !== 0) return null;
  return { degrees: (((n % 360) + 360) % 360) + 0, mirror };
}

// ---------------------------------------------------------------------------------------------
// The parser

const SETTERS = new Set([
  'fif',
  'qlt',
  'sds',
  'minmax',
  'cnt',
  'gam',
  'wid',
  'hei',
  'rgn',
  'rot',
  'icc',
  'shd',
  'cmp',
  'inv',
  'lyr',
  'ctw',
  'col',
  'cnv',
  'bit',
]);
const OUTPUTS = new Set(['obj', 'jtl', 'jtls', 'ptl', 'wtl', 'atl', 'ttl', 'til', 'cvt', 'pfl', 'spectra', 'iiif', 'zoomify', 'deepzoom']);

/** Whether `name` (any case) is an IIP command, setter or output (IIIF/Zoomify/DeepZoom included). */
export function isIipCommand(name: string): boolean {
  const n = name.toLowerCase();
  return SETTERS.has(n) || OUTPUTS.has(n);
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Builder = Omit<Mutable<IipCommands>, 'processing'> & { processing: Mutable<Processing> };

/** The delegated protocol name (`IIIF`, `Zoomify`, `DeepZoom`) for a command name in any case. */
export function delegatedName(name: string): DelegatedCommand | undefined {
  const lower = name.toLowerCase();
  return DELEGATED.find((d) => d.toLowerCase() === lower);
}

/**
 * Folds a request into IipCommands by the order rule above. Never throws for bad values:
 * unsupported commands become errors (`2 2`), unusable setter values are ignored (as iipsrv
 * ignores them) and noted, malformed output arguments become error `2 1`.
 */
export function parseIipCommands(request: string, options: ParseOptions): IipCommands {
  const c: Builder = {
    request,
    objects: [],
    processing: {},
    rotation: NO_ROTATION,
    errors: [],
    notes: [],
  };
  const errors: IipErrorLine[] = [];
  const notes: string[] = [];
  const objects: string[] = [];
  const minmax: Array<{ channel: number; min: number; max: number }> = [];
  if (options.image !== undefined) c.image = options.image;
  const ignore = (name: string, value: string, why: string): void => void notes.push(`${name}=${value} ignored: ${why}`);

  for (const [name, value] of tokenise(request)) {
    const cmd = name.toLowerCase();
    if (SETTERS.has(cmd)) {
      setter(c, minmax, cmd, name, value, ignore);
    } else if (OUTPUTS.has(cmd)) {
      if (cmd === 'obj') objects.push(lenientDecode(value).toLowerCase());
      if (c.output === undefined) {
        c.output = output(cmd, name, value, options, errors, request);
      } else if (!(cmd === 'obj' && c.output.command === 'OBJ')) {
        notes.push(`${name}=${value} ignored: only the first output command (${c.output.command}) is answered`);
      }
    } else {
      errors.push({ code: '2 2', argument: name });
    }
  }
  if (c.output?.command !== 'OBJ') {
    if (objects.length > 0) notes.push(`OBJ ignored: ${c.output?.command} is the output command`);
    objects.length = 0;
  }
  // JTLS sets the sequence angles for its own tile.
  if (c.output?.command === 'JTLS') c.member = jtlsMember(c.output.argument);
  if (minmax.length > 0) c.processing.minmax = minmax;
  c.objects = objects;
  c.errors = errors;
  c.notes = notes;
  return c;
}

function setter(
  c: Builder,
  minmax: Array<{ channel: number; min: number; max: number }>,
  cmd: string,
  name: string,
  raw: string,
  ignore: (name: string, value: string, why: string) => void,
): void {
  const p = c.processing;
  switch (cmd) {
    case 'fif':
      // A path must decode; everything else is lenient.
      c.image = decodeValue(raw);
      return;
    case 'icc':
      return; // accepted and ignored, as iipsrv
    case 'inv':
      p.invert = true;
      return;
  }
  const value = lenientDecode(raw).trim();
  const lower = value.toLowerCase();
  switch (cmd) {
    case 'qlt': {
      // `QLT=<q>` or `QLT=<codec>:<q>` (the codec is the TIFF output compression).
      const colon = value.indexOf(':');
      const q = int(colon < 0 ? value : value.slice(colon + 1));
      if (colon >= 0) {
        const codec = lower.slice(0, colon);
        c.tiffCompression = (['lzw', 'deflate', 'jpeg', 'webp', 'zstd'] as const).find((t) => t === codec) ?? 'none';
      }
      if (Number.isFinite(q)) c.encoderQuality = q;
      else if (colon < 0) ignore(name, raw, 'not an integer');
      return;
    }
    case 'sds': {
      const [h, v] = value.split(',');
      const horizontal = int(h);
      const vertical = v === undefined ? 90 : int(v); // one value keeps the default 90 (§13 #14)
      if (Number.isFinite(horizontal) && Number.isFinite(vertical)) c.member = { horizontal, vertical };
      else ignore(name, raw, 'expected SDS=<h>[,<v>]');
      return;
    }
    case 'minmax': {
      const m = /^(-|\d+):(.+),(.+)$/.exec(value);
      const min = num(m?.[2]);
      const max = num(m?.[3]);
      if (!m || !Number.isFinite(min) || !Number.isFinite(max)) return ignore(name, raw, 'expected MINMAX=<channel|->:<min>,<max>');
      const channel = m[1] === '-' ? -1 : Number(m[1]);
      // A later value for the same channel replaces the earlier one; `-` resets every channel.
      if (channel === -1) minmax.length = 0;
      const at = minmax.findIndex((e) => e.channel === channel);
      if (at >= 0) minmax.splice(at, 1);
      minmax.push({ channel, min, max });
      return;
    }
    case 'cnt': {
      if (lower === 'st' || lower === 'stretch') p.contrast = 'stretch';
      else if (lower === 'eq' || lower === 'equalization') p.contrast = 'equalization';
      else {
        const n = num(value);
        if (!Number.isFinite(n) || n < 0) return ignore(name, raw, 'expected a non-negative number, st or eq');
        // A contrast of 1 changes nothing: leaving it out keeps passthrough and the cache key.
        if (n === 1) delete p.contrast;
        else p.contrast = n;
      }
      return;
    }
    case 'gam': {
      if (lower === 'log' || lower === 'logarithm') p.gamma = 'log';
      else {
        const n = num(value);
        if (!Number.isFinite(n) || n <= 0) return ignore(name, raw, 'expected a positive number or log');
        if (n === 1) delete p.gamma;
        else p.gamma = n;
      }
      return;
    }
    case 'wid':
    case 'hei': {
      const n = int(value);
      if (!(n > 0)) return ignore(name, raw, 'expected a positive integer');
      if (cmd === 'wid') c.width = n;
      else c.height = n;
      return;
    }
    case 'rgn': {
      const parts = value.split(',').map(num);
      if (parts.length !== 4 || !parts.every(Number.isFinite)) return ignore(name, raw, 'expected RGN=x,y,w,h');
      const [x, y, w, h] = parts.map((v) => Math.min(1, Math.max(0, v)));
      if (!(w > 0 && h > 0)) return ignore(name, raw, 'width and height must be positive');
      c.region = { x, y, w, h };
      return;
    }
    case 'rot': {
      const r = parseRot(value);
      if (!r) return ignore(name, raw, 'only 0, 90, 180 and 270 degrees are implemented');
      c.rotation = r;
      return;
    }
    case 'shd': {
      const v = ints(value, ',', 2);
      if (!v) return ignore(name, raw, 'expected SHD=<h>,<v>');
      p.hillshade = { horizontal: v[0], vertical: v[1] };
      return;
    }
    case 'cmp': {
      const map = COLORMAPS.find((m) => m === lower);
      if (!map) return ignore(name, raw, `unknown colormap (${COLORMAPS.join(', ')})`);
      p.colormap = map;
      return;
    }
    case 'col': {
      if (lower === 'grey' || lower === 'gray') c.quality = 'gray';
      else if (lower === 'binary') c.quality = 'bitonal';
      else ignore(name, raw, 'expected grey, gray or binary');
      return;
    }
    case 'lyr': {
      const n = int(value);
      if (!(n >= 1)) return ignore(name, raw, 'expected a positive number of layers');
      c.layers = n;
      return;
    }
    case 'ctw': {
      const m = parseTwist(value);
      if (!m) return ignore(name, raw, 'expected CTW=[a,b,c;d,e,f;...] with rows of equal length');
      p.twist = m;
      return;
    }
    case 'cnv': {
      const k = parseKernel(value);
      if (!k) return ignore(name, raw, 'expected a kernel name or a square kernel of odd side up to 5');
      p.convolution = k;
      return;
    }
    case 'bit': {
      // An extension (iipsrv #215 asks for it): 16-bit samples in PNG and TIFF output.
      if (value === '16') p.bitDepth = 16;
      else if (value === '8') p.bitDepth = undefined;
      else ignore(name, raw, 'expected BIT=8 or BIT=16');
      return;
    }
  }
}

function output(cmd: string, name: string, raw: string, options: ParseOptions, errors: IipErrorLine[], request: string): IipOutput {
  // A malformed or unavailable output command still takes the output slot (later ones stay
  // ignored); its error line decides the response, so the placeholder is never answered.
  const malformed = (): IipOutput => {
    errors.push({ code: '2 1', argument: request });
    return { command: 'OBJ' };
  };
  const upper = cmd.toUpperCase();
  switch (cmd) {
    case 'obj':
      return { command: 'OBJ' };
    case 'iiif':
    case 'zoomify':
    case 'deepzoom':
      return { command: delegatedName(cmd)!, argument: raw };
  }
  const value = lenientDecode(raw);
  switch (cmd) {
    case 'jtl':
    case 'ptl':
    case 'wtl':
    case 'atl':
    case 'ttl': {
      const command = upper as TileCommand;
      const format = TILE_COMMANDS[command];
      // PTL, WTL, ATL and TTL exist only when this build can encode their format (as iipsrv's
      // compile-time codecs): otherwise the command is unsupported.
      if (!options.formats.includes(format)) {
        errors.push({ code: '2 2', argument: name });
        return { command: 'OBJ' };
      }
      const v = ints(value, ',', 2);
      if (!v) return malformed();
      return { command, format, resolution: v[0], tile: v[1], argument: value };
    }
    case 'jtls': {
      const v = ints(value, ',', 4);
      if (!v) return malformed();
      return { command: 'JTLS', format: 'jpg', resolution: v[1], tile: v[2], argument: value };
    }
    case 'til': {
      const m = /^([^,]+),([^-]+)(?:-(.+))?$/.exec(value);
      const resolution = int(m?.[1]);
      const start = int(m?.[2]);
      const end = m?.[3] === undefined ? start : int(m[3]);
      if (![resolution, start, end].every(Number.isFinite)) return malformed();
      return { command: 'TIL', resolution, start, end, argument: value };
    }
    case 'cvt': {
      // Anything unknown or not encodable here falls back to JPEG, as iipsrv does.
      const f = FORMAT_BY_EXTENSION[value.trim().toLowerCase()];
      return { command: 'CVT', format: f && options.formats.includes(f) ? f : 'jpg', argument: value };
    }
    case 'pfl': {
      const m = /^([^:]+):([^,]+),([^-]+)(?:-([^,]+),(.+))?$/.exec(value);
      const v = m ? [m[1], m[2], m[3], m[4] ?? m[2], m[5] ?? m[3]].map(int) : [];
      if (v.length !== 5 || !v.every(Number.isFinite)) return malformed();
      return { command: 'PFL', resolution: v[0], x1: v[1], y1: v[2], x2: v[3], y2: v[4], argument: value };
    }
    case 'spectra': {
      const v = ints(value, ',', 4);
      if (!v) return malformed();
      return { command: 'SPECTRA', resolution: v[0], tile: v[1], x: v[2], y: v[3], argument: value };
    }
  }
  return malformed();
}

/** The member a JTLS request names (its angles), which JTLS sets before its tile. */
export function jtlsMember(argument: string): ImageMember | undefined {
  const v = ints(argument, ',', 4);
  return v ? { horizontal: v[0], vertical: v[3] } : undefined;
}
