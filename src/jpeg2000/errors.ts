// Errors of the JPEG 2000 structure parser. They are ImageServerErrors already, so a caller
// can pass them on; messages describe the codestream fault and never hold a file path (the
// parser does not know it: callers add the path to `detail`).

import { ImageServerError } from '../core/errors.js';

/** A malformed or truncated file (CORRUPT_IMAGE, 500). */
export function corrupt(what: string, detail?: string): ImageServerError {
  return new ImageServerError('CORRUPT_IMAGE', `Corrupt JPEG 2000 file: ${what}`, detail);
}

/** A well-formed file using something this server does not handle (UNSUPPORTED_IMAGE, 415). */
export function unsupported(what: string, detail?: string): ImageServerError {
  return new ImageServerError('UNSUPPORTED_IMAGE', `Unsupported JPEG 2000 file: ${what}`, detail);
}
