// Percent-decoding of identifiers and query values, for every protocol: `%XX` runs are UTF-8
// and decoded exactly once; a `%` without two hex digits stays literal (a carelessly unencoded
// `100%.tif` still names its file); bytes that are not UTF-8 once decoded cannot name a file
// and are a 400. `+` is a space only in form-encoded query values.

import { ImageServerError } from '../core/errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** `s` decoded; `label` names the protocol in the error. */
export function decodePercent(s: string, label: string, plusIsSpace: boolean): string {
  const spaced = plusIsSpace ? s.replace(/\+/g, ' ') : s;
  if (!spaced.includes('%')) return spaced;
  return spaced.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    const bytes = new Uint8Array(run.length / 3);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(run.slice(i * 3 + 1, i * 3 + 3), 16);
    try {
      return utf8.decode(bytes);
    } catch {
      throw new ImageServerError('BAD_REQUEST', `${label}: the request is not valid UTF-8 once percent-decoded`);
    }
  });
}
