// File-system failures met while opening or reading an image, as server errors. The path
// goes to the log-only detail, never to the message a client sees.

import { ImageServerError } from '../src/core/errors.js';

export function fileError(err: unknown, path: string): ImageServerError {
  if (err instanceof ImageServerError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const detail = `${path}: ${err instanceof Error ? err.message : String(err)}`;
  if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return new ImageServerError('NOT_FOUND', undefined, detail);
  if (code === 'EACCES' || code === 'EPERM') return new ImageServerError('FORBIDDEN_PATH', undefined, detail);
  return new ImageServerError('CORRUPT_IMAGE', undefined, detail);
}
