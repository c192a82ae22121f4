// A ServerRequest as a front end would hand it to the handler, for in-process handler tests.

import type { ServerRequest, ServerResponse } from '../../src/handler-types.js';

export function req(uri: string, init: Partial<ServerRequest> = {}): ServerRequest {
  const q = uri.indexOf('?');
  return {
    method: 'GET',
    query: q < 0 ? '' : uri.slice(q + 1),
    requestUri: uri,
    headers: { host: 'example.org' },
    https: false,
    body: Buffer.alloc(0),
    ...init,
  };
}

/** A response header's value (names in any case). */
export const header = (res: ServerResponse, name: string): string | undefined =>
  res.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
