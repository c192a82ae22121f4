// The contract between front ends and the handler. Front ends (FastCGI, HTTP) turn their wire
// format into a ServerRequest and write back a ServerResponse; they know nothing of images.

export interface ServerRequest {
  /** Upper-case method: GET, HEAD, POST, OPTIONS, ... */
  readonly method: string;
  /** The query string without its `?`, still percent-encoded. */
  readonly query: string;
  /** The request target as sent (REQUEST_URI): path plus `?query`, still percent-encoded. */
  readonly requestUri: string;
  /** Header names in lower case (`if-modified-since`, `accept`, `x-iiif-id`, `host`, ...). */
  readonly headers: Readonly<Record<string, string>>;
  /** True when the client connection is TLS (FastCGI `HTTPS` = on/1). */
  readonly https: boolean;
  /** Request body (POST); empty when there is none. */
  readonly body: Buffer;
  /** Peer address for logs, when known. */
  readonly remoteAddress?: string;
}

export interface ServerResponse {
  readonly status: number;
  /** In order; names as they should appear on the wire. Content-Length is always present. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** The body; empty for HEAD, 204 and 304 (Content-Length still tells the GET length for HEAD). */
  readonly body: Buffer;
}

export type RequestHandler = (req: ServerRequest) => Promise<ServerResponse>;

export const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'OK',
  204: 'No Content',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  304: 'Not Modified',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
};
