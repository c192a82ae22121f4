// The shape every protocol module has. A protocol is pure: it parses its part of a request
// into a neutral answer (metadata to format, a view to render, a redirect) and formats
// metadata and errors. It never touches files, caches or sockets.

import type { ImageServerError } from '../core/errors.js';
import type { ImageInfo } from '../core/image-info.js';
import type { ViewRequest } from '../core/view.js';

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
  readonly options: ProtocolOptions;
}

export interface FormattedBody {
  readonly contentType: string;
  readonly body: string;
  /** Extra response headers (e.g. Link, Cache-Control: private for a negotiated version). */
  readonly headers?: ReadonlyArray<readonly [string, string]>;
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
    }
  | { readonly kind: 'redirect'; readonly location: string };

export interface Protocol {
  /** The query-string key (case-insensitive) and URI_MAP protocol name, e.g. `IIIF`. */
  readonly name: string;
  parse(input: ProtocolInput): ProtocolAnswer;
  /** Error body in the protocol's own form; the status comes from the error's code. */
  formatError(err: ImageServerError, input: ProtocolInput | undefined): FormattedBody;
}
