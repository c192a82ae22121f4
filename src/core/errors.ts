// The one error type of the server and its code registry. Every failure that can reach a
// client is an ImageServerError with a registered code; the HTTP status and default message
// come from the registry, so a code can never be answered with two different statuses.
// Protocols format the body (IIIF text, IIP Error/...), the handler picks the status.

export const ERROR_CODES = {
  BAD_REQUEST: { status: 400, message: 'Bad request' },
  BAD_REGION: { status: 400, message: 'Invalid region' },
  BAD_SIZE: { status: 400, message: 'Invalid size' },
  BAD_ROTATION: { status: 400, message: 'Invalid rotation' },
  BAD_QUALITY: { status: 400, message: 'Unsupported quality' },
  BAD_FORMAT: { status: 400, message: 'Unsupported output format' },
  UPSCALE_NOT_ALLOWED: { status: 400, message: 'Upscaling is not allowed' },
  BAD_TILE: { status: 400, message: 'Tile or resolution out of range' },
  IIP_MALFORMED: { status: 400, message: 'Malformed request' },
  IIP_UNSUPPORTED_COMMAND: { status: 400, message: 'Unsupported command' },
  IIP_UNSUPPORTED_OBJ: { status: 400, message: 'Unsupported object' },
  IIP_NO_IMAGE: { status: 400, message: 'No image set' },
  FORBIDDEN_PATH: { status: 403, message: 'Forbidden' },
  NOT_FOUND: { status: 404, message: 'Image not found' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed' },
  TOO_LARGE: { status: 413, message: 'Requested output is too large' },
  UNSUPPORTED_IMAGE: { status: 415, message: 'Unsupported image type' },
  CORRUPT_IMAGE: { status: 500, message: 'Image file is corrupt or unreadable' },
  INTERNAL: { status: 500, message: 'Internal server error' },
  NOT_IMPLEMENTED: { status: 501, message: 'Feature not supported' },
  UNAVAILABLE: { status: 503, message: 'Service unavailable' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class ImageServerError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Internal detail for the log only; never sent to a client (it may hold paths). */
  readonly detail?: string;

  constructor(code: ErrorCode, message?: string, detail?: string) {
    super(message ?? ERROR_CODES[code].message);
    this.name = 'ImageServerError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.detail = detail;
  }
}

/** Wraps anything thrown into an ImageServerError without exposing its message to clients. */
export function toServerError(err: unknown): ImageServerError {
  if (err instanceof ImageServerError) return err;
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
  return new ImageServerError('INTERNAL', undefined, detail);
}
