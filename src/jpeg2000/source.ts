// Positioned byte access for the JPEG 2000 parser. Structure is read with small reads at known
// offsets (box headers, marker segments, SOT headers), never by loading the file, so the cost
// of parsing does not grow with the size of the image data.

import { open, type FileHandle } from 'node:fs/promises';
import { corrupt } from './errors.js';

/** Random-access bytes: a file, or a buffer already in memory. */
export interface ByteSource {
  /** Total length in bytes. */
  readonly size: number;
  /**
   * Up to `length` bytes from `offset`; fewer only at the end of the source. Never more than
   * asked, never a view that later changes.
   */
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** A ByteSource over a Buffer (tests, small files, data already fetched). */
export class BufferSource implements ByteSource {
  constructor(private readonly buf: Buffer) {}
  get size(): number {
    return this.buf.length;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    const start = Math.min(Math.max(0, offset), this.buf.length);
    return this.buf.subarray(start, Math.min(this.buf.length, start + Math.max(0, length)));
  }
  async close(): Promise<void> {}
}

/** A ByteSource over an open file; each read is one pread. */
export class FileSource implements ByteSource {
  private constructor(
    private readonly fh: FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<FileSource> {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      return new FileSource(fh, st.size);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const n = Math.max(0, Math.min(length, this.size - offset));
    const buf = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await this.fh.read(buf, got, n - got, offset + got);
      if (bytesRead === 0) break; // the file shrank under us
      got += bytesRead;
    }
    return got === n ? buf : buf.subarray(0, got);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Exactly `length` bytes at `offset`, or a CORRUPT_IMAGE error naming `what` as truncated. */
export async function readExactly(src: ByteSource, offset: number, length: number, what: string): Promise<Buffer> {
  const b = await src.read(offset, length);
  if (b.length < length) throw corrupt(`${what} is truncated`, `need ${length} bytes at ${offset}, file has ${src.size}`);
  return b;
}
