// The IIIF Image API protocol (versions 3 and 2, iipsrv-compatible, §5 of the behaviour spec):
// splits the request into identifier and parameters, negotiates the version, and answers with
// info.json, a neutral RegionView, or the base-URI redirect. Also the canonical/profile Link
// headers of image responses and the text/plain error body. Pure: no files, caches or sockets.

import { ImageServerError } from '../core/errors.js';
import { cvtLimits, resolveRegion, resolveSize, scaleFactors, tileRect } from '../core/geometry.js';
import type { Size, SizeLimits } from '../core/geometry.js';
import type { ImageInfo } from '../core/image-info.js';
import type { Rect, RegionView, ViewRequest } from '../core/view.js';
import { formatInfo, iiifBaseUri, profileLink } from './iiif-info.js';
import {
  parseFormat,
  parseQuality,
  parseRegion,
  parseRotation,
  parseSize,
  percentDecode,
  splitQualityFormat,
  type IiifVersion,
} from './iiif-parse.js';
import {
  plainTextError,
  type FormattedBody,
  type ImageMember,
  type Protocol,
  type ProtocolAnswer,
  type ProtocolInput,
  type ProtocolOptions,
} from './protocol.js';

/** IIIF_VERSION as a version we speak: 2, or 3 for anything else (iipsrv's default). */
export function defaultVersion(options: ProtocolOptions): IiifVersion {
  return options.iiifVersion === 2 ? 2 : 3;
}

/**
 * The version for this request: the one named by a context URI in `Accept` (as IIIF clients
 * send `application/ld+json;profile="http://iiif.io/api/image/3/context.json"`), else the default.
 */
export function negotiateVersion(input: ProtocolInput): { version: IiifVersion; negotiated: boolean } {
  const fallback = defaultVersion(input.options);
  const m = /https?:\/\/iiif\.io\/api\/image\/([23])\/context\.json/i.exec(input.headers.accept ?? '');
  const version: IiifVersion = m ? (m[1] === '2' ? 2 : 3) : fallback;
  return { version, negotiated: version !== fallback };
}

const missingIdentifier = (): ImageServerError => new ImageServerError('BAD_REQUEST', 'IIIF: missing identifier');

/**
 * IIIF_DELIMITER (§5.2 step 7): `<id><delimiter><n>`, at the last occurrence, names member n
 * of an image sequence, as IIP `SDS=n` does. Only a whole number after the whole delimiter
 * counts (iipsrv read from the delimiter's second character), so names that merely contain
 * the delimiter still open as files.
 */
function splitMember(identifier: string, options: ProtocolOptions): { identifier: string; member?: ImageMember } {
  const d = options.iiifDelimiter;
  const at = d ? identifier.lastIndexOf(d) : -1;
  if (!d || at <= 0) return { identifier };
  const n = identifier.slice(at + d.length);
  if (!/^\d{1,9}$/.test(n)) return { identifier };
  return { identifier: identifier.slice(0, at), member: { horizontal: Number(n), vertical: 90 } };
}

function parse(input: ProtocolInput): ProtocolAnswer {
  // A `?…` suffix is cache busting (`default.jpg?t=123`); a real `?` in an identifier is %3F.
  const q = input.argument.indexOf('?');
  const argument = q < 0 ? input.argument : input.argument.slice(0, q);
  // Split before decoding, so that `%2F` stays inside the identifier.
  const segments = argument.split('/');
  const last = segments[segments.length - 1];
  const { version, negotiated } = negotiateVersion(input);

  if (segments.length === 1) {
    if (argument === '' || last === 'info.json') throw missingIdentifier();
    percentDecode(argument); // reject undecodable identifiers here rather than after the redirect
    const base = iiifBaseUri({ input, rawIdentifier: argument, argument, trailingSegments: 0 });
    return { kind: 'redirect', location: `${base}/info.json` };
  }

  if (last.toLowerCase().startsWith('info')) {
    if (last !== 'info.json') {
      throw new ImageServerError('BAD_REQUEST', `IIIF: unsupported information request: ${last} (use info.json)`);
    }
    const rawIdentifier = segments.slice(0, -1).join('/');
    if (rawIdentifier === '') throw missingIdentifier();
    const { options } = input;
    const { identifier, member } = splitMember(percentDecode(rawIdentifier), options);
    const id = iiifBaseUri({ input, rawIdentifier, argument, trailingSegments: 1 });
    return {
      kind: 'info',
      identifier,
      ...(member ? { member } : {}),
      // The body depends on the version and the id (scheme, host, path, headers); nothing else
      // of the request reaches it.
      variant: `iiif${version}|${id}`,
      format: (info: ImageInfo): FormattedBody => formatInfo(info, id, version, options, negotiated),
    };
  }

  if (segments.length < 5) throw new ImageServerError('BAD_REQUEST', 'IIIF: Not enough parameters');
  const rawIdentifier = segments.slice(0, -4).join('/');
  if (rawIdentifier === '') throw missingIdentifier();
  const { identifier, member } = splitMember(percentDecode(rawIdentifier), input.options);

  // Parameters may arrive percent-encoded (`pct%3A`, `%5Emax`, `%21w,h`); they are decoded once
  // and lower-cased (`FULL`, `Default.JPG` are accepted like iipsrv).
  const [region, size, rotation, qualityFormat] = segments.slice(-4).map((s) => percentDecode(s).toLowerCase());
  const { quality, format } = splitQualityFormat(qualityFormat);
  const { options } = input;
  // Parsed in URL order, so that the first bad parameter is the one reported.
  const parsed = { region: parseRegion(region), size: parseSize(size, version), rotation: parseRotation(rotation) };
  const asked = parseQuality(quality, options.iiifExtensions);
  const view: RegionView = {
    kind: 'region',
    ...parsed,
    quality: asked.quality,
    ...(asked.processing ? { processing: asked.processing } : {}),
    format: parseFormat(format, options.formats),
    upscaleRule: version === 3 ? 'caret' : 'allowed',
  };
  const base = iiifBaseUri({ input, rawIdentifier, argument, trailingSegments: 4 });
  // The canonical form names an extension quality as asked, not the `default` it works on.
  const named = asked.processing ? quality : undefined;
  return {
    kind: 'image',
    identifier,
    ...(member ? { member } : {}),
    view: () => view,
    headers: (info, planned) => imageHeaders(info, planned, base, version, options, negotiated, named),
  };
}

/** MAX_CVT as geometry limits, the way the image planner applies them (-1: unlimited). */
export function sizeLimits(options: ProtocolOptions): SizeLimits {
  return cvtLimits(options.maxCvt, options.allowUpscaling);
}

function imageHeaders(
  info: ImageInfo,
  view: ViewRequest,
  base: string,
  version: IiifVersion,
  options: ProtocolOptions,
  negotiated: boolean,
  qualityName?: string,
): Array<readonly [string, string]> {
  const headers: Array<readonly [string, string]> = [];
  const canonical = canonicalParameters(info, view, version, options, qualityName);
  if (canonical) headers.push(['Link', `<${base}/${canonical}>;rel="canonical"`]);
  headers.push(['Link', profileLink(version)]);
  if (negotiated) headers.push(['Cache-Control', 'private']);
  return headers;
}

/**
 * The canonical `region/size/rotation/quality.format` of a view (IIIF 3 §4.7, IIIF 2.1 §4.7):
 * region `full` or `x,y,w,h`; size `max` (v3) / `full` (v2) or the exact output size; rotation
 * with `!` for mirroring; the quality and format asked for. Null when the view cannot be
 * resolved (the planner has rejected it then, so no response carries the header).
 */
export function canonicalParameters(
  info: ImageInfo,
  view: ViewRequest,
  version: IiifVersion,
  options: ProtocolOptions,
  qualityName: string = view.quality,
): string | null {
  let rect: Rect;
  let out: Size;
  let askedMax = false;
  try {
    if (view.kind === 'region') {
      rect = resolveRegion(view.region, info.width, info.height);
      out = resolveSize(view.size, rect.width, rect.height, sizeLimits(options), view.upscaleRule);
      askedMax = view.size.type === 'max' && !view.size.upscale;
    } else {
      // A tile planned from a region: its full-resolution footprint and its own size.
      const level = info.levels[view.level];
      if (!level) return null;
      const f = scaleFactors(info.levels)[view.level];
      const t = tileRect(level, view.col, view.row);
      const x = view.col * level.tileWidth * f;
      const y = view.row * level.tileHeight * f;
      rect = { x, y, width: Math.min(level.tileWidth * f, info.width - x), height: Math.min(level.tileHeight * f, info.height - y) };
      out = { width: t.width, height: t.height };
    }
  } catch (err) {
    if (err instanceof ImageServerError) return null;
    throw err;
  }
  const whole = rect.x === 0 && rect.y === 0 && rect.width === info.width && rect.height === info.height;
  const region = whole ? 'full' : `${rect.x},${rect.y},${rect.width},${rect.height}`;
  const native = out.width === rect.width && out.height === rect.height;
  let size: string;
  if (version === 3) {
    // `max` also when MAX_CVT shrank it: it names the same image as the request did.
    if (askedMax || native) size = 'max';
    else size = `${out.width > rect.width || out.height > rect.height ? '^' : ''}${out.width},${out.height}`;
  } else {
    // IIIF 2.1: `full` for the region's own size, `w,` when the aspect ratio is kept.
    const keepsAspect = Math.max(1, Math.round((out.width * rect.height) / rect.width)) === out.height;
    size = native ? 'full' : keepsAspect ? `${out.width},` : `${out.width},${out.height}`;
  }
  const rotation = `${view.rotation.mirror ? '!' : ''}${view.rotation.degrees}`;
  return `${region}/${size}/${rotation}/${qualityName}.${view.format}`;
}

export const iiif: Protocol = {
  name: 'IIIF',
  parse,
  /**
   * iipsrv's form: the message as text/plain (the handler sets the status). Messages of
   * ImageServerError never hold paths, so they are safe to send.
   */
  formatError: plainTextError,
};
