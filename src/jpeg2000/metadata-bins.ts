// JPIP metadata data-bins of a JP2/JPX file (ISO/IEC 15444-9 A.3.6, I.3.2): bin 0 holds the
// file's top-level boxes in order, except that each contiguous codestream box (jp2c) is
// replaced by a placeholder box (phld) flagged as a codestream, its content being delivered as
// header and precinct bins, and that boxes larger than a threshold are replaced by placeholders
// pointing to their own bins (sent when `metareq` asks for them). A raw codestream has an empty
// bin 0. Bins are described by pieces (file ranges or bytes made here); nothing large is read.

import { contentLength, contentOffset, type Box, type BoxStructure } from './boxes.js';
import { readExactly, type ByteSource } from './source.js';

export type MetadataPiece = { readonly offset: number; readonly length: number } | { readonly bytes: Buffer };

export interface MetadataBin {
  readonly id: number;
  readonly pieces: readonly MetadataPiece[];
  readonly length: number;
  /** For a bin holding one box's contents: that box's type (metareq selects by type). */
  readonly boxType?: string;
}

/** Boxes above this size go to their own bin (Kakadu uses 32 bytes; big XML/uuid boxes are the aim). */
export const PHLD_THRESHOLD = 1 << 16;

/** Placeholder flag bits (to check against ISO/IEC 15444-9 I.3.2): contents in bin OrigID; codestream. */
const PHLD_ORIGINAL = 1;
const PHLD_CODESTREAM = 4;

function u64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
}

/**
 * A placeholder box: Flags (4) | OrigID (8) | OrigBH (the original box header, 8 or 16 bytes) |
 * EquivID (8) | EquivBH (8, empty) | CSID (8). This is the layout esajpip writes for jp2c.
 */
export function placeholderBox(flags: number, origId: number, originalHeader: Buffer, csid: number): Buffer {
  const body = Buffer.concat([Buffer.alloc(4), u64(origId), originalHeader, u64(0), Buffer.alloc(8), u64(csid)]);
  body.writeUInt32BE(flags, 0);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length, 0);
  head.write('phld', 4, 'latin1');
  return Buffer.concat([head, body]);
}

/** Metadata bins of a file; `boxes` undefined means a raw codestream (one empty bin 0). */
export async function metadataBins(src: ByteSource, boxes: BoxStructure | undefined, threshold = PHLD_THRESHOLD): Promise<MetadataBin[]> {
  if (!boxes) return [{ id: 0, pieces: [], length: 0 }];
  const pieces: MetadataPiece[] = [];
  const bins: MetadataBin[] = [];
  let codestream = 0;
  const header = (b: Box): Promise<Buffer> => readExactly(src, b.offset, b.headerLength, `${b.type} box header`);
  for (const box of boxes.boxes) {
    if (box.type === 'jp2c') {
      pieces.push({ bytes: placeholderBox(PHLD_CODESTREAM, 0, await header(box), codestream++) });
    } else if (box.length > threshold) {
      const id = bins.length + 1;
      bins.push({
        id,
        pieces: [{ offset: contentOffset(box), length: contentLength(box) }],
        length: contentLength(box),
        boxType: box.type,
      });
      pieces.push({ bytes: placeholderBox(PHLD_ORIGINAL, id, await header(box), 0) });
    } else {
      pieces.push({ offset: box.offset, length: box.length });
    }
  }
  const length = pieces.reduce((n, p) => n + ('bytes' in p ? p.bytes.length : p.length), 0);
  return [{ id: 0, pieces, length }, ...bins];
}
