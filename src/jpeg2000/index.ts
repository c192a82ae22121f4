// Public API of the JPEG 2000 structure module, shared by the JPEG 2000 decoder (image
// structure: levels, tiles, layers) and the JPIP server (data-bins). Opens a JP2/JPX file or a
// raw codestream, parses the boxes and the main header with positioned reads, and walks the
// tile-parts on demand. No pixel is decoded here.

import { readBoxStructure, type BoxStructure } from './boxes.js';
import { Codestream } from './codestream.js';
import { corrupt, unsupported } from './errors.js';
import { MARKERS } from './markers.js';
import { FileSource, type ByteSource } from './source.js';

export * from './boxes.js';
export * from './codestream.js';
export * from './errors.js';
export * from './geometry.js';
export * from './markers.js';
export * from './source.js';

/** `jp2` and `jpx` are box-structured files; `j2k` is a raw codestream (.j2k, .j2c, .jpc). */
export type Jpeg2000Kind = 'jp2' | 'jpx' | 'j2k';

/** What the first bytes say: a JP2-family file, a raw codestream, or neither. */
export function sniffJpeg2000(head: Buffer): 'jp2' | 'j2k' | null {
  if (head.length >= 12 && head.readUInt32BE(0) === 12 && head.toString('latin1', 4, 8) === 'jP  ' && head.readUInt32BE(8) === 0x0d0a870a) {
    return 'jp2';
  }
  if (head.length >= 4 && head.readUInt16BE(0) === MARKERS.SOC && head.readUInt16BE(2) === MARKERS.SIZ) return 'j2k';
  return null;
}

export interface Jpeg2000File {
  readonly kind: Jpeg2000Kind;
  readonly source: ByteSource;
  /** Box structure of a JP2/JPX file (undefined for a raw codestream). */
  readonly boxes?: BoxStructure;
  /** The (first) codestream, its main header parsed. */
  readonly codestream: Codestream;
  /** Closes the source if this object opened it. */
  close(): Promise<void>;
}

/**
 * Opens a JPEG 2000 file by path (the file is opened and owned) or over a ByteSource (not
 * closed by `close()`). Throws ImageServerError CORRUPT_IMAGE / UNSUPPORTED_IMAGE for bad
 * files, and file-system errors as they are.
 */
export async function openJpeg2000(input: string | ByteSource): Promise<Jpeg2000File> {
  const owned = typeof input === 'string';
  const source = owned ? await FileSource.open(input) : input;
  try {
    const head = await source.read(0, 12);
    const sniffed = sniffJpeg2000(head);
    if (sniffed === null) throw unsupported('not a JP2, JPX or J2K file', `magic ${head.toString('hex')}`);
    let boxes: BoxStructure | undefined;
    let kind: Jpeg2000Kind = 'j2k';
    let offset = 0;
    let length = source.size;
    if (sniffed === 'jp2') {
      boxes = await readBoxStructure(source);
      kind = boxes.brand === 'jpx ' || (boxes.brand !== 'jp2 ' && boxes.compatibility.includes('jpx ')) ? 'jpx' : 'jp2';
      const jp2c = boxes.codestreams[0];
      if (!jp2c) {
        if (boxes.boxes.some((b) => b.type === 'ftbl')) throw unsupported('JPX with only external codestreams (fragment tables)');
        throw corrupt('no contiguous codestream box (jp2c)');
      }
      offset = jp2c.offset + jp2c.headerLength;
      length = jp2c.length - jp2c.headerLength;
    }
    const codestream = await Codestream.read(source, offset, length);
    return {
      kind,
      source,
      ...(boxes ? { boxes } : {}),
      codestream,
      close: async () => {
        if (owned) await source.close();
      },
    };
  } catch (err) {
    if (owned) await source.close().catch(() => undefined);
    throw err;
  }
}
