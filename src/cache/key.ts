// Cache keys: a hash of a versioned, normalised description of the response, including the
// file's identity (path, size, modification time) so that a changed file is never served
// stale. Hashing keeps keys short enough for Memcached's 250-byte limit.

import { createHash } from 'node:crypto';

/** Bump when the meaning of cached bytes changes (encoder settings, header layout, ...). */
export const CACHE_FORMAT_VERSION = 1;

export interface FileIdentity {
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  /** Image-stack member: another image in the same file. */
  readonly page?: number;
}

export function cacheKey(file: FileIdentity, normalisedRequest: string): string {
  const page = file.page ? `#${file.page}` : '';
  const h = createHash('sha1')
    .update(`${CACHE_FORMAT_VERSION}\0${file.path}${page}\0${file.size}\0${file.mtimeMs}\0${normalisedRequest}`)
    .digest('base64url');
  return `iipsrv:${CACHE_FORMAT_VERSION}:${h}`;
}
