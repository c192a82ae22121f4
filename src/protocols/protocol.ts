// The shape every protocol module has. A protocol is pure: it parses its part of a request
// into a neutral answer (metadata to format, a view to render, several views to combine, raw
// samples to format, a fixed body, a redirect) and formats metadata and errors. It never
// touches files, caches or sockets; the handler does the I/O each answer kind asks for.

import type { ImageServerError } from '../core/errors.js';
import type { ImageInfo, RawImage } from '../core/image-info.js';
import type { Rect, ViewRequest } from '../core/view.js';
import type { IipCommands } from './iip-commands.js';

/** Server settings that change how protocols parse and format. */
export interface ProtocolOptions {
  /** MAX_CVT: largest output side; -1 means unlimited. */
  readonly maxCvt: number;
  readonly allowUpscaling: boolean;
  /** BASE_URL: prefix for IIIF ids and redirects; empty when unset. */
  readonly baseUrl: string;
  /** IIIF_VERSION: 2 or 3. */
  readonly iiifVersion: number;
  /** Output formats the encoder can produce, for info.json. */
  readonly formats: readonly string[];
  /** COPYRIGHT: rights statement when the image has none. */
  readonly copyright: string;
  /** IIIF_EXTENSIONS: qualities negative, stretch, equalization and log. */
  readonly iiifExtensions?: boolean;
  /** IIIF_DELIMITER: `<id><delimiter><n>` selects sequence member n; empty or absent = off. */
  readonly iiifDelimiter?: string;
  /** IIIF_EXTRA_INFO: members added to info.json. */
  readonly iiifExtraInfo?: Readonly<Record<string, unknown>>;
  /** CORS is configured (CORS headers are sent), so info.json may list the `cors` feature. */
  readonly cors?: boolean;
  /** IIP_ERROR_STATUS_200: send IIP `Error/` bodies with status 200 as iipsrv did (default 400). */
  readonly iipErrorStatus200?: boolean;
}

/** What a protocol sees of the HTTP request besides its own argument. */
export interface ProtocolInput {
  /** The protocol's argument, e.g. for `IIIF=a.tif/info.json` it is `a.tif/info.json`, still encoded. */
  readonly argument: string;
  /** How the request reached us: through the query string or a URI_MAP path. */
  readonly via: 'query' | 'path';
  readonly headers: Readonly<Record<string, string>>;
  readonly https: boolean;
  /** REQUEST_URI as sent. */
  readonly requestUri: string;
  /**
   * The whole request string (the query string, or the POST body when the query is empty), for
   * protocols made of several commands (IIP). In URI_MAP mode it is the query string, if any.
   */
  readonly request?: string;
  /** The request's IIP commands when the router has parsed them already (so IIP does not again). */
  readonly commands?: IipCommands;
  readonly options: ProtocolOptions;
}

export interface FormattedBody {
  readonly contentType: string;
  readonly body: string;
  /** Extra response headers (e.g. Link, Cache-Control: private for a negotiated version). */
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  /**
   * Status for an error body when it must differ from the error code's (IIP_ERROR_STATUS_200
   * keeps iipsrv's 200 for IIP `Error/` bodies). Ignored on success bodies.
   */
  readonly status?: number;
}

/** A binary body assembled by a protocol (e.g. IIP TIL's multi-tile stream). */
export interface BinaryBody {
  readonly contentType: string;
  readonly body: Buffer;
  readonly headers?: ReadonlyArray<readonly [string, string]>;
}

/** Decoded samples as the decoder returns them, for PFL and SPECTRA. */
export type RawSamples = RawImage;

/** The samples read from one view of an image: its horizontal angle, or its stack page (0 for plain files). */
export interface ViewSamples {
  readonly horizontal: number;
  /** A stack member's own name (its wavelength, say), when the file gives one. */
  readonly name?: string;
  readonly samples: RawSamples;
}

/**
 * Which member of an image sequence or stack a request is for (IIP SDS, IIIF_DELIMITER).
 * Absent means the default view: horizontal angle 0, vertical angle 90 (iipsrv's).
 */
export interface ImageMember {
  readonly horizontal: number;
  readonly vertical: number;
}

export type ProtocolAnswer =
  /** Metadata about one image: formatted once the image is open. */
  | {
      readonly kind: 'info';
      readonly identifier: string;
      readonly member?: ImageMember;
      /** Part of the cache key: everything besides the image that changes the body. */
      readonly variant: string;
      format(info: ImageInfo): FormattedBody;
    }
  /** Pixels: the view is computed from the image's structure, without I/O. */
  | {
      readonly kind: 'image';
      readonly identifier: string;
      readonly member?: ImageMember;
      view(info: ImageInfo): ViewRequest;
      /** Extra response headers for the image (e.g. IIIF canonical Link). */
      headers?(info: ImageInfo, view: ViewRequest): ReadonlyArray<readonly [string, string]>;
      /**
       * True when the response is one tile of the protocol's own grid (IIP JTL, Zoomify, DeepZoom)
       * even if the planner has to render it as a region: no `Content-Disposition` then.
       */
      readonly isTile?: boolean;
    }
  /**
   * Several views of one image in one response (IIP TIL): the handler renders each view exactly
   * as an `image` answer (same plan, cache and passthrough) and hands the encoded bodies, in the
   * order of `views`, to `combine`.
   */
  | {
      readonly kind: 'tiles';
      readonly identifier: string;
      readonly member?: ImageMember;
      views(info: ImageInfo): readonly ViewRequest[];
      combine(bodies: readonly Buffer[], info: ImageInfo): BinaryBody;
    }
  /**
   * Raw sample values (IIP PFL, SPECTRA): the handler reads `region` through the decoder without
   * any processing and the protocol formats the numbers.
   */
  | {
      readonly kind: 'samples';
      readonly identifier: string;
      readonly member?: ImageMember;
      /** Part of the validators: everything besides the image that changes the body. */
      readonly variant: string;
      /** Pyramid level (0 = full resolution) and rectangle in that level's pixels to read. */
      region(info: ImageInfo): { readonly level: number; readonly rect: Rect };
      /** JPEG 2000 quality layers to decode (IIP LYR); undefined means the server default. */
      readonly layers?: number;
      /**
       * Read the same region from every horizontal view of a sequence (IIP SPECTRA: the views
       * are wavelengths), at the member's vertical angle. For a plain file: the file alone.
       */
      readonly everyView?: boolean;
      /** `views`: the samples of each view read, in ascending angle order (one for plain files). */
      format(views: readonly ViewSamples[], info: ImageInfo): FormattedBody;
    }
  /** A body that needs no image (IIP `OBJ=IIP-server` without `FIF`). */
  | { readonly kind: 'fixed'; readonly body: FormattedBody }
  | { readonly kind: 'redirect'; readonly location: string };

export interface Protocol {
  /** The query-string key (case-insensitive) and URI_MAP protocol name, e.g. `IIIF`. */
  readonly name: string;
  parse(input: ProtocolInput): ProtocolAnswer;
  /** Error body in the protocol's own form; the status comes from the error's code. */
  formatError(err: ImageServerError, input: ProtocolInput | undefined): FormattedBody;
}

/** An error as plain text: its message (what iipsrv's Zoomify, DeepZoom and IIIF errors are). */
export function plainTextError(err: ImageServerError): FormattedBody {
  return { contentType: 'text/plain; charset=utf-8', body: err.message };
}
