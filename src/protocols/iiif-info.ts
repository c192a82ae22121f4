// IIIF service identity and description: how the `id` / `@id` base URL of an image is built
// (§5.7 with the fixes of §13 items 15/16) and the info.json documents for IIIF 3 and 2
// (§5.5, §5.6, with §13 items 6, 8, 19 fixed). Built with JSON.stringify, so every string is
// escaped properly, and never decoded or `%`-rewritten.

import { cvtLimits, iiifSizes, scaleFactors, type Size } from '../core/geometry.js';
import type { ImageInfo } from '../core/image-info.js';
import type { FormattedBody, ProtocolInput, ProtocolOptions } from './protocol.js';
import { EXTENSION_QUALITIES, isOutputFormat, type IiifVersion } from './iiif-parse.js';

export const contextUri = (version: IiifVersion): string => `http://iiif.io/api/image/${version}/context.json`;
export const profileUri = (version: IiifVersion): string => `http://iiif.io/api/image/${version}/level2.json`;
export const infoContentType = (version: IiifVersion): string => `application/ld+json;profile="${contextUri(version)}"`;
export const profileLink = (version: IiifVersion): string => `<${profileUri(version)}>;rel="profile"`;

/** What the request looked like, for building the base URL; `raw` is still percent-encoded. */
export interface IdRequest {
  readonly input: ProtocolInput;
  /** The identifier exactly as on the wire. */
  readonly rawIdentifier: string;
  /** The argument without its `?…` suffix. */
  readonly argument: string;
  /** How many `/`-segments follow the identifier in the argument (info: 1, image: 4, bare: 0). */
  readonly trailingSegments: number;
}

/** A Host header that can safely go into a URL and a header; anything else falls back to localhost. */
const HOST = /^[A-Za-z0-9._~-]+(?::\d+)?$|^\[[0-9A-Fa-f:.]+\](?::\d+)?$/;
// Control characters would break the header block of a Location or Link header.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * The image's IIIF base URI (without `/info.json` or parameters):
 * 1. `X-IIIF-ID` header verbatim (#71);
 * 2. else BASE_URL + the identifier as it appeared on the wire (concatenated as iipsrv does,
 *    so a BASE_URL ending in `?IIIF=` also works);
 * 3. else scheme + host + the request path up to the identifier, never decoded (iipsrv decodes,
 *    which turns `%2F` into a slash and breaks the id).
 */
export function iiifBaseUri(req: IdRequest): string {
  const { input, rawIdentifier } = req;
  const explicit = input.headers['x-iiif-id'];
  if (explicit && !CONTROL.test(explicit)) return explicit;
  if (input.options.baseUrl) return input.options.baseUrl + rawIdentifier;
  const host = input.headers.host && HOST.test(input.headers.host) ? input.headers.host : 'localhost';
  return `${input.https ? 'https' : 'http'}://${host}${requestBase(req)}`;
}

/** The part of REQUEST_URI that names the image: path (and `?IIIF=` for query access) up to the identifier. */
function requestBase({ input, rawIdentifier, argument, trailingSegments }: IdRequest): string {
  const uri = CONTROL.test(input.requestUri) ? '' : input.requestUri;
  const q = uri.indexOf('?');
  const path = q < 0 ? uri : uri.slice(0, q);
  if (input.via === 'query') {
    // Keep whatever precedes `IIIF=` (processing commands such as `CNT=` apply to the image).
    const m = /[?&]iiif=/i.exec(uri);
    if (m && uri.startsWith(argument, m.index + m[0].length)) {
      return uri.slice(0, m.index + m[0].length) + rawIdentifier;
    }
    return `${path || '/'}?IIIF=${rawIdentifier}`;
  }
  if (path.endsWith(argument)) return path.slice(0, path.length - argument.length) + rawIdentifier;
  // The front end changed the path on its way to us; drop the parameter segments instead.
  const segments = path.split('/');
  const base = trailingSegments > 0 ? segments.slice(0, -trailingSegments).join('/') : path;
  return base || `/${rawIdentifier}`;
}

// ---------------------------------------------------------------------------------------------
// info.json

const PROTOCOL = 'http://iiif.io/api/image';

/** Rights must be a URI in IIIF 3; a free-text COPYRIGHT (also used by IIP) is not one. */
const URI_LIKE = /^(?:https?:\/\/|urn:)\S+$/i;

/** The image's own rights statement (as iipsrv), else COPYRIGHT when it is a URI. */
export function rightsOf(info: ImageInfo, options: ProtocolOptions): string | undefined {
  const own = info.metadata.rights?.trim();
  if (own) return own;
  const copyright = options.copyright.trim();
  return URI_LIKE.test(copyright) ? copyright : undefined;
}

/** The physdim service (IIIF annex) when the file records a physical resolution. */
function physdim(info: ImageInfo): object[] | undefined {
  const r = info.resolution;
  if (!r || !(r.x > 0) || !Number.isFinite(r.x)) return undefined;
  return [
    {
      '@context': 'http://iiif.io/api/annex/services/physdim/1/context.json',
      profile: 'http://iiif.io/api/annex/services/physdim',
      physicalScale: 1 / r.x,
      physicalUnits: r.unit === 'in' ? 'in' : 'cm',
    },
  ];
}

/** maxWidth/maxHeight/maxArea from MAX_CVT; none when unlimited (iipsrv printed 4294967295). */
function limits(options: ProtocolOptions): { maxWidth: number; maxHeight: number; maxArea: number } | undefined {
  const { maxWidth, maxHeight, maxArea } = cvtLimits(options.maxCvt, options.allowUpscaling);
  return maxWidth > 0 ? { maxWidth, maxHeight, maxArea } : undefined;
}

/** The formats that really work (iipsrv advertised `tif` and then refused it). */
function outputFormats(options: ProtocolOptions): string[] {
  return [...new Set(options.formats.filter(isOutputFormat))];
}

function colourQualities(info: ImageInfo, options: ProtocolOptions): string[] {
  const own = info.channels >= 3 ? ['color', 'gray', 'bitonal'] : ['gray', 'bitonal'];
  return options.iiifExtensions ? [...own, ...Object.keys(EXTENSION_QUALITIES)] : own;
}

/**
 * IIIF_EXTRA_INFO members, after `rights` as in iipsrv. A `service` of its own is merged with
 * the physdim service rather than replacing it.
 */
function extraMembers(options: ProtocolOptions, service: object[] | undefined): Record<string, unknown> {
  const extra = options.iiifExtraInfo ?? {};
  const own = extra.service;
  const services = [...(own === undefined ? [] : Array.isArray(own) ? own : [own]), ...(service ?? [])];
  return { ...extra, ...(services.length > 0 ? { service: services } : {}) };
}

function sizesAndTiles(info: ImageInfo): { sizes: Size[]; tiles: object[] } {
  const full = info.levels[0];
  return {
    sizes: iiifSizes(info.levels),
    // Tile size of the full-resolution level, with its real (possibly rectangular) height.
    tiles: [{ width: full.tileWidth, height: full.tileHeight, scaleFactors: scaleFactors(info.levels) }],
  };
}

/** Features both versions list after their size features, under the same names. */
const SHARED_FEATURES = [
  'rotationBy90s',
  'rotationArbitrary',
  'mirroring',
  'baseUriRedirect',
  'canonicalLinkHeader',
  'profileLinkHeader',
  'jsonldMediaType',
] as const;

function sharedFeatures(options: ProtocolOptions): string[] {
  // `cors` only when the server actually sends CORS headers (CORS set).
  return SHARED_FEATURES.flatMap((f) => (f === 'jsonldMediaType' && options.cors ? ['cors', f] : [f]));
}

/** IIIF 3 info.json (§5.5), keys in iipsrv's order plus `maxArea`. */
export function infoV3(info: ImageInfo, id: string, options: ProtocolOptions): Record<string, unknown> {
  const features = ['regionByPct', 'regionSquare', 'sizeByPct', 'sizeByConfinedWh', 'sizeByWh'];
  if (options.allowUpscaling) features.push('sizeUpscaling');
  features.push(...sharedFeatures(options));
  const rights = rightsOf(info, options);
  const service = physdim(info);
  return {
    '@context': contextUri(3),
    protocol: PROTOCOL,
    width: info.width,
    height: info.height,
    ...sizesAndTiles(info),
    id,
    type: 'ImageService3',
    profile: 'level2',
    ...limits(options),
    extraQualities: colourQualities(info, options),
    // jpg and png are part of level 2 already.
    extraFormats: outputFormats(options).filter((f) => f !== 'jpg' && f !== 'png'),
    extraFeatures: features,
    ...(rights !== undefined ? { rights } : {}),
    ...extraMembers(options, service),
  };
}

/** IIIF 2 info.json (§5.6): `@id`, the profile array, `license`. */
export function infoV2(info: ImageInfo, id: string, options: ProtocolOptions): Record<string, unknown> {
  // iipsrv's list (without its non-feature "max"), with the 2.1 name of sizeByForcedWh and
  // what we add over iipsrv.
  const supports = ['regionByPct', 'regionSquare', 'sizeByConfinedWh', 'sizeByForcedWh', 'sizeByDistortedWh', 'sizeByWh'];
  if (options.allowUpscaling) supports.push('sizeAboveFull');
  supports.push(...sharedFeatures(options));
  const rights = rightsOf(info, options);
  const service = physdim(info);
  return {
    '@context': contextUri(2),
    protocol: PROTOCOL,
    width: info.width,
    height: info.height,
    ...sizesAndTiles(info),
    '@id': id,
    profile: [
      profileUri(2),
      {
        formats: outputFormats(options),
        qualities: ['default', ...colourQualities(info, options)],
        supports,
        ...limits(options),
      },
    ],
    ...(rights !== undefined ? { license: rights } : {}),
    ...extraMembers(options, service),
  };
}

/** The info.json response: body, content type and the headers that go with it. */
export function formatInfo(
  info: ImageInfo,
  id: string,
  version: IiifVersion,
  options: ProtocolOptions,
  negotiated: boolean,
): FormattedBody {
  const doc = version === 3 ? infoV3(info, id, options) : infoV2(info, id, options);
  const headers: Array<readonly [string, string]> = [];
  if (version === 3) headers.push(['Link', profileLink(3)]);
  // Same URL, different body: shared caches must not hand it to a client of the other version.
  if (negotiated) headers.push(['Cache-Control', 'private']);
  return { contentType: infoContentType(version), body: JSON.stringify(doc, null, 2) + '\n', headers };
}
